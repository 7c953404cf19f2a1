"""Leak-free train/validation/test splits.

Near-duplicate articles (reprints, the same story carried by two outlets) are grouped first and every
group lands in one split, otherwise a test score partly measures memorised reprints. With dates, the
latest articles go to test (the model is used on articles newer than its training data); without
dates, a stratified group split keeps label proportions.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from typing import Any

import numpy as np
from datasets import Dataset, DatasetDict

from newsclf.config import Config

log = logging.getLogger(__name__)
KEEP_COLUMNS = ["id", "title", "text", "date", "source", "label", "label_source", "group"]
# Reprints share their opening; comparing the first few hundred characters finds them without
# paying for whole-article similarity on 20k articles.
DEDUP_CHARS = 400


def group_near_duplicates(texts: list[str], threshold: float = 0.8, chunk: int = 2000) -> np.ndarray:
    """Group ids such that texts whose character 4-gram TF-IDF cosine is ≥ ``threshold`` share a group."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from sklearn.feature_extraction.text import TfidfVectorizer

    n = len(texts)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    snippets = [t[:DEDUP_CHARS] for t in texts]
    try:
        vec = TfidfVectorizer(analyzer="char", ngram_range=(4, 4), min_df=2, sublinear_tf=True, dtype=np.float32)
        x = vec.fit_transform(snippets)
    except ValueError:  # no 4-gram occurs twice: nothing can be a near-duplicate
        return np.arange(n, dtype=np.int64)
    rows, cols = [], []
    for start in range(0, n, chunk):
        sims = (x[start : start + chunk] @ x.T).tocoo()
        keep = (sims.data >= threshold) & (sims.row + start < sims.col)
        rows.append(sims.row[keep] + start)
        cols.append(sims.col[keep])
    r = np.concatenate(rows)
    c = np.concatenate(cols)
    graph = coo_matrix((np.ones(len(r)), (r, c)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return labels.astype(np.int64)


def _stable_key(value: str, seed: int) -> str:
    return hashlib.sha256(f"{seed}:{value}".encode()).hexdigest()


def split_groups(
    labels: list[str],
    groups: np.ndarray,
    dates: list[str],
    *,
    split_by: str = "auto",
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 42,
) -> np.ndarray:
    """Assign each row to 0 = train, 1 = validation, 2 = test, never splitting a group."""
    n = len(labels)
    dated = sum(1 for d in dates if d)
    if split_by == "date" and dated < n:
        raise ValueError(
            f"split_by: date, but {n - dated} of {n} articles have no date; give every article a date, "
            "or set split_by: stratified (or auto)"
        )
    use_dates = split_by == "date" or (split_by == "auto" and dated >= 0.9 * n)
    assign = np.zeros(n, dtype=np.int64)
    if use_dates:
        group_date: dict[int, str] = {}
        for g, d in zip(groups.tolist(), dates):
            group_date[g] = max(group_date.get(g, ""), d or "")
        sizes = Counter(groups.tolist())
        # Newest first; ties broken by a seeded hash so equal dates don't split by input order.
        order = sorted(group_date, key=lambda g: (group_date[g], _stable_key(str(g), seed)), reverse=True)
        n_test, n_val = round(test_fraction * n), round(validation_fraction * n)
        split_of: dict[int, int] = {}
        taken = 0
        for g in order:
            if taken < n_test:
                split_of[g] = 2
            elif taken < n_test + n_val:
                split_of[g] = 1
            else:
                split_of[g] = 0
            taken += sizes[g]
        return np.array([split_of[g] for g in groups.tolist()], dtype=np.int64)

    from sklearn.model_selection import StratifiedGroupKFold

    def carve(idx: np.ndarray, fraction: float, rng_seed: int) -> np.ndarray:
        """Indices (into idx) of a group-respecting, stratified subset of about ``fraction``."""
        if fraction <= 0 or len(idx) < 2:
            return np.zeros(0, dtype=np.int64)
        n_splits = max(2, min(round(1 / fraction), len(set(groups[idx].tolist()))))
        y = np.array([labels[i] for i in idx])
        counts = Counter(y.tolist())
        if min(counts.values()) < n_splits:  # too few of a label to stratify: plain group split
            y = np.zeros(len(idx), dtype=np.int64)
        skf = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=rng_seed)
        _, held = next(skf.split(np.zeros(len(idx)), y, groups[idx]))
        return held

    all_idx = np.arange(n)
    test_pos = carve(all_idx, test_fraction, seed)
    assign[all_idx[test_pos]] = 2
    rest = all_idx[assign == 0]
    val_pos = carve(rest, validation_fraction / max(1e-9, 1 - test_fraction), seed + 1)
    assign[rest[val_pos]] = 1
    return assign


def dataset_fingerprint(ds: Dataset) -> str:
    """A content hash of (id, label, text) rows: the same training data gives the same fingerprint."""
    h = hashlib.sha256()
    for row in sorted(zip(ds["id"], ds["label"], ds["text"])):
        h.update(json.dumps(row, ensure_ascii=False).encode())
    return h.hexdigest()[:16]


def _cap_per_label(labelled: Dataset, cap: int, seed: int) -> Dataset:
    """Keep at most ``cap`` rows per label: gold rows first, then rule rows, then lexicon rows, random within each.

    The order is by trust. Gold labels were assigned by reading. Metadata rules were checked by reading the
    titles they fire on, and they mark article types that the hand-labelled sample skipped on purpose (the
    Xinwen Lianbo roundups: 1,431 in the corpus, a fifth of the dev set's `other`), so a purely random fill
    left only ~70 of them next to ~10,000 lexicon guesses.
    """
    rng = np.random.default_rng(seed)
    tiers: dict[str, list[list[int]]] = {}
    for i, (lab, src) in enumerate(zip(labelled["label"], labelled["label_source"])):
        src = str(src)
        tier = 0 if src.startswith("gold") else 1 if src.startswith("rule") else 2
        tiers.setdefault(lab, [[], [], []])[tier].append(i)
    keep: list[int] = []
    for lab in sorted(tiers):
        ordered: list[int] = []
        for rows in tiers[lab]:
            rng.shuffle(rows)
            ordered.extend(rows)
        keep.extend(ordered[:cap])
    return labelled.select(sorted(keep))


def build_dataset(config: Config | None = None) -> DatasetDict:
    """Load, label, de-duplicate and split the articles a config names; returns train/validation/test."""
    from newsclf.data.labeling import label_articles
    from newsclf.data.loaders import load_articles

    config = config or Config()
    articles = load_articles(
        config.data, field_map=config.field_map or None, on_bad_record=config.on_bad_record, min_chars=config.min_chars
    )
    labelled = label_articles(articles, config)
    n_all = len(labelled)
    labelled = labelled.filter(lambda lab: lab is not None, input_columns="label")
    if len(labelled) == 0:
        raise ValueError(
            f"none of the {n_all} articles from {config.data} got a label; add a gold file (gold:), "
            "label rules (label_rules:), or enable use_weak_labels"
        )
    unknown = sorted(set(labelled["label"]) - set(config.labels))
    if unknown:
        raise ValueError(
            f"labels {unknown} are not in the label set {config.labels}; add them to 'labels' in the config "
            "or fix the gold/rule files that produce them"
        )
    log.info("labelled %d of %d articles", len(labelled), n_all)
    # The data sample and split follow data_seed when it is set, so training seeds can be compared on one dataset.
    data_seed = config.seed if config.data_seed is None else config.data_seed
    if config.max_per_label:
        labelled = _cap_per_label(labelled, config.max_per_label, data_seed)
    texts = [f"{t}\n{x}" for t, x in zip(labelled["title"], labelled["text"])]
    groups = group_near_duplicates(texts, config.dedup_threshold)
    labelled = labelled.add_column("group", groups.tolist()) if "group" not in labelled.column_names else labelled
    assign = split_groups(
        list(labelled["label"]),
        groups,
        list(labelled["date"]),
        split_by=config.split_by,
        validation_fraction=config.validation_fraction,
        test_fraction=config.test_fraction,
        seed=data_seed,
    )
    labelled = labelled.select_columns([c for c in KEEP_COLUMNS if c in labelled.column_names])
    parts = {}
    for code, name in enumerate(["train", "validation", "test"]):
        idx = np.flatnonzero(assign == code).tolist()
        parts[name] = labelled.select(idx)
    if len(parts["train"]) == 0:
        raise ValueError(
            f"the training split is empty ({len(labelled)} labelled articles in all); add data or lower "
            "validation_fraction/test_fraction"
        )
    return DatasetDict(parts)


def split_report(dsd: DatasetDict, labels: list[str]) -> dict[str, Any]:
    """Counts per split and label, sources, date ranges and duplicate groups: the short label report."""
    report: dict[str, Any] = {}
    for name, ds in dsd.items():
        dates = [d for d in ds["date"] if d]
        counts = Counter(ds["label"])
        report[name] = {
            "articles": len(ds),
            "labels": {lab: counts.get(lab, 0) for lab in labels},
            "label_sources": dict(Counter(str(s).split(":")[0] for s in ds["label_source"]))
            if "label_source" in ds.column_names
            else {},
            "dates": [min(dates), max(dates)] if dates else None,
            "duplicate_groups": int(sum(1 for c in Counter(ds["group"]).values() if c > 1))
            if "group" in ds.column_names
            else 0,
        }
    return report


def format_split_report(report: dict[str, Any], labels: list[str]) -> str:
    """The split report as an aligned text table."""
    width = max(len(lab) for lab in labels + ["split"]) + 2
    lines = ["split".ljust(12) + "".join(lab.rjust(width) for lab in labels) + "total".rjust(8) + "  dates"]
    for name, r in report.items():
        dates = " .. ".join(r["dates"]) if r["dates"] else "-"
        lines.append(
            name.ljust(12)
            + "".join(str(r["labels"][lab]).rjust(width) for lab in labels)
            + str(r["articles"]).rjust(8)
            + f"  {dates}"
        )
    return "\n".join(lines)


def build_dataset_to_disk(config: Config, out: str | None = None) -> tuple[str, str]:
    """Build the splits, ``save_to_disk`` them with a label report beside them; returns (folder, report text)."""
    from pathlib import Path

    dsd = build_dataset(config)
    target = Path(out) if out else config.run_dir() / "dataset"
    report = split_report(dsd, config.labels)
    text = format_split_report(report, config.labels)
    tmp = target.with_name(target.name + ".tmp")
    dsd.save_to_disk(str(tmp))
    (tmp / "label_report.json").write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    (tmp / "label_report.txt").write_text(text + "\n", encoding="utf-8")
    if target.exists():
        import shutil

        shutil.rmtree(target)
    tmp.rename(target)
    return str(target), text
