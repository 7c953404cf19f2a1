"""What to read next: a queue of the articles whose label would teach the model most (``newsclf suggest``).

Every article of an archive is labelled as training labels it (gold files, then metadata rules, then the
lexicon labeller, which may abstain). Articles that already carry a gold label are skipped; the others are
scored by up to three signals and the best of each near-duplicate group is queued:

- ``uncertainty``: a small margin between the top two labels of the model (``--model``) or, without one, of
  a cheap TF-IDF model; the labeller's abstentions are scored this way too (``abstained``);
- ``disagreement``: the model's label differs from the rule/lexicon label (priority 1 - P(rule label));
- ``label_error``: confident learning (cleanlab) on out-of-fold TF-IDF probabilities flags the rule/lexicon
  label as likely wrong (priority 1 - out-of-fold P(rule label)), as ``newsclf label-errors`` does.

Each article's priority is its largest signal. A per-label quota (round robin over the suggested labels,
best first) makes sure rare sections get read; ties are broken by a seeded hash, so a queue is reproducible.
Model probabilities are cached by model fingerprint and article fingerprint, the out-of-fold probabilities
and the near-duplicate groups by a fingerprint of the texts and labels, so asking again is quick.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["add_subcommand", "rank_candidates", "suggest"]

log = logging.getLogger(__name__)

GOLD_SOURCES = ("gold", "gold:input")
REASONS = ("label_error", "disagreement", "uncertainty", "abstained")
DEFAULT_WEIGHTS = {"label_error": 1.0, "disagreement": 1.0, "uncertainty": 1.0, "abstained": 1.0}


def _hash(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8", "surrogatepass"))
        h.update(b"\0")
    return h.hexdigest()


def _tiebreak(article_id: str, seed: int) -> float:
    return int(_hash(str(seed), article_id)[:12], 16) / 16**12


def _cache_file(name: str) -> Path | None:
    """A file in ``<newsclf cache>/scores``; ``None`` when the cache folder cannot be written (no caching)."""
    from newsclf.backbones.cache import cache_dir

    folder = cache_dir() / "scores"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return folder / name


def _load_array(path: Path | None, shape: tuple[int, ...] | None = None) -> Any:
    import numpy as np

    if path is None or not path.exists():
        return None
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError):  # a corrupt cache entry is recomputed, not trusted
        return None
    return arr if shape is None or arr.shape == shape else None


def _save_array(path: Path | None, arr: Any) -> None:
    import os

    import numpy as np

    if path is None:
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.save(f, arr, allow_pickle=False)
        os.replace(tmp, path)
    except OSError as err:  # caching is an optimisation: say so, go on
        log.warning("could not cache scores in %s (%s)", path.parent, err)
        tmp.unlink(missing_ok=True)


def model_probabilities(model_dir: str | Path, titles: Sequence[str], texts: Sequence[str], *, cache: bool = True,
                        progress: bool = True) -> Any:
    """Calibrated probabilities of a saved model, cached per article fingerprint (title and text)."""
    import numpy as np

    from newsclf import artifact
    from newsclf.predict import load

    keys = [_hash(t, x)[:20] for t, x in zip(titles, texts)]
    path = _cache_file(f"model-{artifact.fingerprint(model_dir)}.npz") if cache else None
    known: dict[str, Any] = {}
    if path is not None and path.exists():
        try:
            with np.load(path, allow_pickle=False) as z:
                known = dict(zip(z["keys"].tolist(), z["probs"]))
        except (OSError, ValueError, KeyError):
            known = {}
    todo = [i for i, k in enumerate(keys) if k not in known]
    labels = list(artifact.read_meta(model_dir).labels)
    if todo:
        clf = load(model_dir)  # only when something is not cached: loading alone takes seconds
        log.info("suggest: scoring %d articles with the model (%d cached)", len(todo), len(keys) - len(todo))
        probs = clf.probabilities([(titles[i], texts[i]) for i in todo])
        for i, p in zip(todo, probs):
            known[keys[i]] = p
        if path is not None:
            import io
            import os

            buf = io.BytesIO()
            np.savez(buf, keys=np.array(list(known)), probs=np.stack(list(known.values())))
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            try:
                tmp.write_bytes(buf.getvalue())
                os.replace(tmp, path)
            except OSError as err:
                log.warning("could not cache model scores in %s (%s)", path.parent, err)
                tmp.unlink(missing_ok=True)
    return np.stack([known[k] for k in keys]), labels


def _cheap_probabilities(texts: list[str], given: list[str | None], labels: list[str], groups: Any, *,
                         folds: int, seed: int, cache: bool) -> tuple[Any, Any]:
    """Out-of-fold TF-IDF probabilities of the labelled articles, fitted ones for the unlabelled; and the mask."""
    import numpy as np

    from newsclf.baseline import TfidfBaseline
    from newsclf.label_errors import out_of_fold_probabilities

    n = len(texts)
    labelled = np.array([g is not None for g in given])
    key = _hash("oof/1", str(folds), str(seed), ",".join(labels), *(f"{g}|{_hash(t)[:16]}" for g, t in zip(given, texts)))
    path = _cache_file(f"oof-{key[:24]}.npy") if cache else None
    probs = _load_array(path, (n, len(labels)))
    if probs is not None:
        return probs, labelled
    idx = np.flatnonzero(labelled)
    y = np.array([labels.index(given[i]) for i in idx])
    probs = np.zeros((n, len(labels)))
    present = sorted(set(y.tolist()))
    if len(present) < 2:
        raise ValueError(f"only {len(present)} label(s) among the {len(idx)} labelled articles; suggest needs labels of at "
                         "least two sections (gold files or rules/lexicons) or a trained --model")
    sub_labels = [labels[j] for j in present]
    sub_y = np.array([present.index(v) for v in y])
    oof = out_of_fold_probabilities([texts[i] for i in idx], sub_y, sub_labels, folds=folds, seed=seed,
                                    groups=groups[idx])
    for col, j in enumerate(present):
        probs[idx, j] = oof[:, col]
    rest = np.flatnonzero(~labelled)
    if len(rest):
        full = TfidfBaseline(labels, seed=seed).fit([texts[i] for i in idx], [labels[v] for v in y])
        probs[rest] = full.predict_proba([texts[i] for i in rest])
    _save_array(path, probs)
    return probs, labelled


def rank_candidates(
    ids: Sequence[str], titles: Sequence[str], texts: Sequence[str], given: Sequence[str | None],
    sources: Sequence[str | None], labels: Sequence[str], *, n: int, model_probs: Any = None, seed: int = 42,
    folds: int = 5, quota: bool = True, group_threshold: float = 0.8, cache: bool = True,
    weights: dict[str, float] | None = None,
) -> list[dict[str, Any]]:
    """The ``n`` articles most worth reading, in queue order, each with ``reason``, ``suggested``, ``score``, ``scores``.

    ``given`` is each article's current label (``None`` where the labeller abstained) and ``sources`` where it
    came from (``gold``/``gold:input`` are skipped, with their near-duplicates). ``model_probs`` (n, labels)
    are a trained model's probabilities; without them the cheap TF-IDF model's stand in. ``weights`` scale
    the signals before the largest is taken (default: ``DEFAULT_WEIGHTS``).
    """
    import numpy as np
    from cleanlab.filter import find_label_issues

    from newsclf.data.splits import group_near_duplicates

    labels = list(labels)
    w = {**DEFAULT_WEIGHTS, **(weights or {})}
    if n < 1:
        raise ValueError(f"--n must be a positive number of articles, found {n}")
    count = len(ids)
    if not (len(titles) == len(texts) == len(given) == len(sources) == count):
        raise ValueError("ids, titles, texts, labels and sources must have the same length")
    bad = sorted({str(g) for g in given if g is not None and g not in labels})
    if bad:
        raise ValueError(f"labels {bad[:10]} are not in the label set {labels}")
    full = [f"{t}\n{x}" for t, x in zip(titles, texts)]
    gkey = _hash("groups/1", str(group_threshold), *(_hash(t)[:16] for t in full))
    gpath = _cache_file(f"groups-{gkey[:24]}.npy") if cache else None
    groups = _load_array(gpath, (count,))
    if groups is None:
        groups = group_near_duplicates(full, group_threshold)
        _save_array(gpath, groups)
    given = [g if g not in (None, "") else None for g in given]
    cheap, labelled = _cheap_probabilities(full, given, labels, groups, folds=folds, seed=seed, cache=cache)
    main = cheap if model_probs is None else np.asarray(model_probs, dtype=float)
    if main.shape != (count, len(labels)):
        raise ValueError(f"model probabilities have shape {main.shape}, expected {(count, len(labels))}")
    is_gold = np.array([s in GOLD_SOURCES for s in sources])
    weak = labelled & ~is_gold
    # Confident learning on the weak labels only: gold labels are not up for a second read here.
    flagged = np.zeros(count, dtype=bool)
    widx = np.flatnonzero(labelled)
    y = np.array([labels.index(given[i]) for i in widx])
    counts = np.bincount(y, minlength=len(labels)) if len(y) else np.zeros(len(labels), dtype=int)
    if (counts > 0).sum() >= 2 and counts[counts > 0].min() >= 2:  # cleanlab needs two of each label it sees
        present = sorted(set(y.tolist()))
        sub = cheap[widx][:, present]
        sub = sub / np.clip(sub.sum(1, keepdims=True), 1e-12, None)
        issues = find_label_issues(np.array([present.index(v) for v in y]), sub, filter_by="prune_by_noise_rate")
        flagged[widx[issues]] = True
    flagged &= weak
    top2 = np.sort(main, axis=1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    suggested = main.argmax(1)
    rows: list[dict[str, Any]] = []
    gold_groups = set(groups[is_gold].tolist())
    for i in range(count):
        if is_gold[i] or groups[i] in gold_groups:
            continue
        signals: dict[str, float] = {"uncertainty": float(1 - margin[i])}
        if given[i] is None:
            signals["abstained"] = signals["uncertainty"]
        else:
            g = labels.index(given[i])
            if suggested[i] != g:
                signals["disagreement"] = float(1 - main[i, g])
            if flagged[i]:
                signals["label_error"] = float(1 - cheap[i, g])
        signals = {k: v * w[k] for k, v in signals.items()}
        reason = max(signals, key=lambda k: (signals[k], -REASONS.index(k)))
        rows.append({
            "i": i, "group": int(groups[i]), "priority": max(signals.values()), "reason": reason,
            "reasons": sorted(signals, key=lambda k: -signals[k]) if len(signals) > 1 else [reason],
            "suggested": labels[int(suggested[i])], "score": round(float(main[i].max()), 4),
            "scores": {
                "priority": round(max(signals.values()), 4), **{k: round(v, 4) for k, v in signals.items()},
                "margin": round(float(margin[i]), 4), "source": "model" if model_probs is not None else "tfidf",
                "probs": {lab: round(float(main[i, j]), 4) for j, lab in enumerate(labels)},
                "rule_label": given[i], "label_source": sources[i],
                "tfidf_probs": {lab: round(float(cheap[i, j]), 4) for j, lab in enumerate(labels)},
            },
            "tie": _tiebreak(str(ids[i]), seed),
        })
    rows.sort(key=lambda r: (-r["priority"], r["tie"]))
    best: dict[int, dict[str, Any]] = {}
    for r in rows:  # one per near-duplicate group: the one with the highest priority
        best.setdefault(r["group"], r)
    ranked = list(best.values())
    picked = _pick(ranked, labels, n, quota)
    out = []
    for rank, r in enumerate(picked, 1):
        i = r["i"]
        out.append({"rank": rank, "id": str(ids[i]), "title": titles[i], "text": texts[i], "reason": r["reason"],
                    "reasons": r["reasons"], "suggested": r["suggested"], "score": r["score"], "scores": r["scores"],
                    "keywords": [], "labels": labels})
    if not rows:
        log.warning("suggest: all %d articles already carry gold labels (or are near-duplicates of one); nothing "
                    "to queue", count)
    log.info("suggest: %d of %d candidates queued (%s)", len(out), len(ranked),
             ", ".join(f"{k} {sum(r['reason'] == k for r in out)}" for k in REASONS))
    return out


def _pick(ranked: list[dict[str, Any]], labels: list[str], n: int, quota: bool) -> list[dict[str, Any]]:
    """``n`` rows: round robin over the suggested labels (best first in each) with ``quota``, else by priority."""
    if not quota:
        return ranked[:n]
    buckets = {lab: [r for r in ranked if r["suggested"] == lab] for lab in labels}
    picked: list[dict[str, Any]] = []
    depth = 0
    while len(picked) < n and any(depth < len(b) for b in buckets.values()):
        layer = [b[depth] for b in buckets.values() if depth < len(b)]
        layer.sort(key=lambda r: (-r["priority"], r["tie"]))
        picked.extend(layer[: n - len(picked)])
        depth += 1
    picked.sort(key=lambda r: (-r["priority"], r["tie"]))  # read the most telling first
    return picked


def suggest(
    data: Any, *, n: int = 100, model: str | Path | None = None, gold: Sequence[str | Path] = (),
    config: Any = None, seed: int = 42, folds: int = 5, quota: bool = True, keywords: bool = True,
    cache: bool = True, field_map: dict | None = None, format: str | None = None, on_bad_record: str | None = None,
) -> list[dict[str, Any]]:
    """A reading queue of ``n`` articles from ``data`` (paths any loader reads, or a ``datasets.Dataset``).

    ``gold`` files (``id,label``) and labels in the data count as read and are skipped; the config (a
    :class:`~newsclf.config.Config`, a shipped name or YAML; default: the shipped rules and labels) gives the
    label set, rules and lexicons. With ``model`` its probabilities drive uncertainty and disagreement and its
    ``explain`` keywords are attached (``keywords=False`` skips them).
    """
    from dataclasses import replace

    from newsclf.config import Config, load_config
    from newsclf.data.labeling import label_articles
    from newsclf.data.loaders import load_articles

    cfg = config if isinstance(config, Config) else load_config(config)
    cfg = replace(cfg, gold=[*cfg.gold, *[str(g) for g in gold]])
    ds = data if hasattr(data, "column_names") else load_articles(
        data, field_map=field_map or cfg.field_map or None, format=format, on_bad_record=on_bad_record or cfg.on_bad_record,
        min_chars=cfg.min_chars)
    ds = label_articles(ds, cfg, stray_gold="count")  # a gold file may cover more than this archive
    labels = list(cfg.labels)
    ids, titles, texts = [str(x) for x in ds["id"]], list(ds["title"]), list(ds["text"])
    probs = None
    clf = None
    if model is not None:
        probs, model_labels = model_probabilities(model, titles, texts, cache=cache)
        if model_labels != labels:
            raise ValueError(f"the model's labels {model_labels} differ from the label set {labels}; pass the "
                             "config the model was trained with (--config) or a model trained on these labels")
    queue = rank_candidates(ids, titles, texts, list(ds["label"]), list(ds["label_source"]), labels, n=n,
                            model_probs=probs, seed=seed, folds=folds, quota=quota, cache=cache)
    if model is not None and keywords and queue:
        import numpy as np

        from newsclf import artifact
        from newsclf.explain import explain_keywords
        from newsclf.predict import load

        # Occlusion costs ~24 forward passes per article: cached like the probabilities, per model and article.
        path = _cache_file(f"keywords-{artifact.fingerprint(model)}.json") if cache else None
        known = _read_json(path)
        todo = [r for r in queue if _hash(r["title"], r["text"], r["suggested"])[:20] not in known]
        if todo:
            clf = load(model)
            for row in todo:
                base = np.array([row["scores"]["probs"][lab] for lab in labels])
                known[_hash(row["title"], row["text"], row["suggested"])[:20]] = explain_keywords(
                    clf, (row["title"], row["text"]), labels.index(row["suggested"]), base=base, top_n=6, max_words=24)
            _write_json(path, known)
        for row in queue:
            row["keywords"] = known[_hash(row["title"], row["text"], row["suggested"])[:20]]
    return queue


def _read_json(path: Path | None) -> dict[str, Any]:
    import json

    if path is None or not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # a corrupt cache entry is recomputed
        return {}
    return data if isinstance(data, dict) else {}


def _write_json(path: Path | None, data: dict[str, Any]) -> None:
    import json
    import os

    if path is None:
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as err:
        log.warning("could not cache keywords in %s (%s)", path.parent, err)
        tmp.unlink(missing_ok=True)


def _cmd_suggest(args: argparse.Namespace, extra: list[str]) -> int:
    from newsclf.queue import write_queue

    field_map = None
    if args.field_map:
        from newsclf.cli import _field_map

        field_map = _field_map(args.field_map)
    data = args.data
    if not data:
        if not args.config:
            raise ValueError("give the archive to choose from (DATA files) or --config NAME for a config's data")
        from newsclf.config import load_config

        data = load_config(args.config).data
    queue = suggest(data, n=args.n, model=args.queue_model, gold=args.gold or (), config=args.config, seed=args.seed,
                    folds=args.folds, quota=not args.no_quota, keywords=not args.no_keywords, cache=not args.no_cache,
                    field_map=field_map, format=args.format, on_bad_record=args.on_bad_record)
    out = write_queue(queue, args.out)
    reasons = ", ".join(f"{k} {sum(r['reason'] == k for r in queue)}" for k in REASONS)
    print(f"{len(queue)} articles queued ({reasons}) -> {out}", file=sys.stderr)
    return 0


def add_subcommand(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register ``newsclf suggest``."""
    from newsclf.io import FORMATS

    p = sub.add_parser("suggest", parents=[common],
                       help="choose the articles most worth labelling next (uncertainty, disagreement, label errors)")
    p.add_argument("data", nargs="*", help="the archive: JSONL(.gz), JSON, CSV/TSV, Parquet or page files")
    p.add_argument("--n", type=int, default=100, help="articles to queue (default: 100)")
    p.add_argument("--out", required=True, help="queue file (JSONL), written atomically")
    p.add_argument("--model", dest="queue_model",  # not "model": the CLI would fill in the default model folder
                   help="a trained model folder: its uncertainty and disagreement with the rules")
    p.add_argument("--gold", nargs="+", help="hand-label files (id,label): skipped, and trusted over the rules")
    p.add_argument("--config", help="label set, rules and gold files of a config (default: the shipped default)")
    p.add_argument("--seed", type=int, default=42, help="folds and tie-breaks (default: 42)")
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds of the TF-IDF model (default: 5)")
    p.add_argument("--no-quota", action="store_true", help="pure priority order, no per-label round robin")
    p.add_argument("--no-keywords", action="store_true", help="skip the model's explain keywords (faster)")
    p.add_argument("--no-cache", action="store_true", help="recompute every score")
    p.add_argument("--format", choices=FORMATS, help=f"input format instead of the extension: {', '.join(FORMATS)}")
    p.add_argument("--field-map", help="YAML mapping of our fields to the file's, e.g. '{text: body}'")
    p.add_argument("--on-bad-record", choices=("error", "skip"),
                   help="a bad record stops the run (error, the config's default) or is skipped and counted")
    p.set_defaults(func=_cmd_suggest)
