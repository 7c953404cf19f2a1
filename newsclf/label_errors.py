"""Likely label errors: out-of-fold TF-IDF probabilities ranked by confident learning (cleanlab).

Every labelled article is scored by a :class:`~newsclf.baseline.TfidfBaseline` that did not see it in
training (stratified k-fold, seeded, near-duplicate groups kept inside one fold so a reprint cannot vouch
for its twin). cleanlab's ``find_label_issues`` then flags the articles whose given label disagrees with
what the rest of the data says (confident learning), and they are ranked by self-confidence: the lower the
out-of-fold probability of the given label, the more suspect. ``score`` = 1 - that probability.

``newsclf label-errors DATA --out FLAGS.jsonl`` writes one JSON line per flagged article, most suspect
first: ``id``, ``label`` (given), ``suggested`` (the most probable label), ``score``, ``title``,
``label_source`` (when known) and ``probs`` (the out-of-fold probability of each label).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["find_label_errors", "out_of_fold_probabilities", "write_label_errors"]

log = logging.getLogger(__name__)


def _column(ds: Any, name: str, n: int) -> list[Any]:
    """A column of a ``datasets.Dataset`` or a list of dicts; ``None`` for each row where it is missing."""
    if not hasattr(ds, "column_names"):
        return [row.get(name) for row in ds]
    return list(ds[name]) if name in ds.column_names else [None] * n


def out_of_fold_probabilities(
    texts: Sequence[str], y: Sequence[int], labels: Sequence[str], *, folds: int = 5, seed: int = 42,
    groups: np.ndarray | None = None,
) -> np.ndarray:
    """Out-of-fold baseline probabilities, shape (n, len(labels)); each row from a model that never saw it.

    Folds are stratified by ``y`` and, with ``groups``, never split a group (``StratifiedGroupKFold``).
    """
    import warnings

    from sklearn.model_selection import StratifiedGroupKFold

    from newsclf.baseline import TfidfBaseline

    n = len(texts)
    y = np.asarray(y)
    groups = np.arange(n) if groups is None else np.asarray(groups)
    n_groups = len(set(groups.tolist()))
    if n_groups < folds:
        raise ValueError(f"only {n_groups} distinct (near-duplicate-grouped) articles for {folds} folds; "
                         f"add articles or lower --folds")
    proba = np.zeros((n, len(labels)))
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # "least populated class has only 3 members": expected for rare labels
        warnings.filterwarnings("ignore", message=".*least populated class.*")
        splits = list(splitter.split(np.zeros(n), y, groups))
    texts = list(texts)
    for k, (train, held) in enumerate(splits, 1):
        train_labels = [labels[i] for i in y[train]]
        if len(set(train_labels)) < 2:
            raise ValueError(f"fold {k} has training examples of only one label; add articles of the other "
                             "labels or lower --folds")
        model = TfidfBaseline(labels, seed=seed).fit([texts[i] for i in train], train_labels)
        proba[held] = model.predict_proba([texts[i] for i in held])
        log.info("label errors: fold %d/%d scored (%d articles)", k, folds, len(held))
    sums = proba.sum(axis=1, keepdims=True)
    return proba / np.where(sums > 0, sums, 1.0)


def find_label_errors(
    articles_dataset: Any,
    labels: Sequence[str],
    *,
    folds: int = 5,
    seed: int = 42,
    group_threshold: float = 0.8,
    flagged_only: bool = True,
) -> list[dict[str, Any]]:
    """Articles whose label is likely wrong, most suspect first.

    ``articles_dataset`` is a ``datasets.Dataset`` (or list of dicts) with ``id``, ``title``, ``text`` and
    ``label``; rows without a label are skipped. Returns dicts with ``id``, ``label``, ``suggested``,
    ``score`` (1 - out-of-fold probability of the given label; higher = more suspect), ``flagged`` (cleanlab
    found it a label issue), ``title``, ``label_source`` (when the data has it) and ``probs``. With
    ``flagged_only`` (default) only flagged articles are returned; otherwise every labelled article, ranked.
    Raises ``ValueError`` for no labelled rows, one label only, fewer articles than folds or labels outside
    ``labels``.
    """
    from cleanlab.filter import find_label_issues

    from newsclf.data.splits import group_near_duplicates

    labels = list(labels)
    if len(labels) < 2 or len(set(labels)) != len(labels):
        raise ValueError(f"labels must be at least two unique names, found {labels}")
    if not isinstance(folds, int) or folds < 2:
        raise ValueError(f"folds must be an integer >= 2, found {folds!r}")
    if not 0 < group_threshold <= 1:
        raise ValueError(f"group_threshold must be in (0, 1], found {group_threshold!r}")
    n_all = len(articles_dataset)
    given = _column(articles_dataset, "label", n_all)
    keep = [i for i, lab in enumerate(given) if lab not in (None, "")]
    if not keep:
        raise ValueError(f"none of the {n_all} articles has a label; label-errors needs labelled data (a 'label' "
                         "field, or --config NAME to label a config's data with its gold files, rules and lexicons)")
    unknown = sorted({str(given[i]) for i in keep} - set(labels))
    if unknown:
        raise ValueError(f"labels {unknown[:10]} in the data are not in the label set {labels}; fix the data or "
                         "pass the full label set with --labels")
    present = sorted({given[i] for i in keep}, key=labels.index)
    if len(present) < 2:
        raise ValueError(f"all {len(keep)} labelled articles have the label {present[0]!r}; finding label errors "
                         "needs at least two labels")
    if len(keep) < folds:
        raise ValueError(f"only {len(keep)} labelled articles for {folds} folds; add articles or lower --folds")
    ids = [str(x) for x in _column(articles_dataset, "id", n_all)]
    titles = [str(t or "") for t in _column(articles_dataset, "title", n_all)]
    bodies = [str(t or "") for t in _column(articles_dataset, "text", n_all)]
    sources = _column(articles_dataset, "label_source", n_all)
    texts = [f"{titles[i]}\n{bodies[i]}" for i in keep]
    y = np.array([present.index(given[i]) for i in keep])
    groups = group_near_duplicates(texts, group_threshold)
    proba = out_of_fold_probabilities(texts, y, present, folds=folds, seed=seed, groups=groups)
    counts = Counter(y.tolist())
    if min(counts.values()) >= 2:
        issues = find_label_issues(y, proba, filter_by="prune_by_noise_rate")  # a boolean mask
        flagged = {int(j) for j in np.flatnonzero(issues)}
    else:  # cleanlab needs two examples of each label; a label with one is judged by the ranking alone
        flagged = {int(j) for j in np.flatnonzero(proba.argmax(axis=1) != y)}
    self_conf = proba[np.arange(len(y)), y]
    out: list[dict[str, Any]] = []
    for j, i in enumerate(keep):
        if flagged_only and j not in flagged:
            continue
        row = {
            "id": ids[i],
            "label": given[i],
            "suggested": present[int(proba[j].argmax())],
            "score": round(float(1.0 - self_conf[j]), 6),
            "flagged": j in flagged,
            "title": titles[i],
        }
        if sources[i] is not None:
            row["label_source"] = sources[i]
        row["probs"] = {lab: round(float(proba[j, present.index(lab)]), 6) if lab in present else 0.0
                        for lab in labels}
        out.append(row)
    out.sort(key=lambda r: (-r["score"], r["id"]))
    log.info("label errors: %d of %d labelled articles flagged", len(flagged), len(keep))
    return out


def write_label_errors(rows: Sequence[dict[str, Any]], out: str | Path) -> Path:
    """Write ``rows`` as JSONL atomically (a temp file beside ``out``, then renamed); returns the path."""
    from newsclf.queue import write_jsonl

    return write_jsonl(rows, out, example="flags.jsonl")


def load_labelled(data: Sequence[str] | None, *, config: str | None = None, field_map: dict | None = None,
                  format: str | None = None) -> tuple[Any, list[str] | None]:
    """The articles to check and the config's label set (None without ``config``).

    With ``config`` its data is loaded and labelled (gold files, rules, lexicons) as ``build_dataset`` does;
    otherwise ``data`` is read with :func:`~newsclf.data.loaders.load_articles` and must carry labels.
    """
    if config and data:
        raise ValueError("give either DATA files or --config NAME, not both")
    if config:
        from newsclf.config import load_config
        from newsclf.data.gold import load_articles_for_labelling
        from newsclf.data.labeling import label_articles

        cfg = load_config(config)
        return label_articles(load_articles_for_labelling(cfg), cfg), list(cfg.labels)
    if not data:
        raise ValueError("give labelled DATA files (JSONL, CSV, Parquet ...) or --config NAME")
    from newsclf.data.loaders import load_articles

    ds = load_articles(list(data), field_map=field_map, format=format)
    if "label_source" not in ds.column_names:  # labels given in the input count as gold, as label_articles says
        ds = ds.add_column("label_source", ["gold:input" if lab not in (None, "") else None for lab in ds["label"]])
    return ds, None
