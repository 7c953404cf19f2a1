"""Offline classification metrics served through a local `evaluate` module.

The hub-hosted metric scripts (``evaluate.load("accuracy")``) need the network, so the metrics live in
``section_metrics/section_metrics.py`` beside this file and are loaded from that folder. ``compute_metrics``
is what training, evaluation and reports call; it returns one flat dict with stable key names.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

METRIC_DIR = Path(__file__).resolve().parent / "section_metrics"


def to_label_ids(
    values: Sequence[Any] | np.ndarray, labels: Sequence[str], *, what: str = "values"
) -> list[int]:
    """Map label names or integer ids to integer ids (positions in ``labels``), checking every one.

    All values must be of one kind: all label strings (looked up in ``labels``) or all integers in
    ``0..len(labels)-1``. Anything else raises a ValueError naming the offending values.
    """
    labels = list(labels)
    values = list(np.asarray(values).tolist()) if isinstance(values, np.ndarray) else list(values)
    if all(isinstance(v, str) for v in values):
        index = {name: i for i, name in enumerate(labels)}
        unknown = sorted({v for v in values if v not in index})
        if unknown:
            raise ValueError(
                f"{what}: unknown label names {unknown[:10]}; expected one of {labels}. "
                "Pass the full label list (config.labels) or fix the data."
            )
        return [index[v] for v in values]
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        bad = sorted({int(v) for v in values if not 0 <= int(v) < len(labels)})
        if bad:
            raise ValueError(
                f"{what}: label ids {bad[:10]} are outside 0..{len(labels) - 1} for labels {labels}"
            )
        return [int(v) for v in values]
    kinds = sorted({type(v).__name__ for v in values})
    raise ValueError(
        f"{what}: expected all label-name strings or all integer ids, found a mix of types {kinds}"
    )


@functools.lru_cache(maxsize=16)
def _load_cached(labels: tuple[str, ...]):
    import evaluate

    # keep_in_memory: nothing is written to the metrics cache folder, so parallel runs cannot collide.
    return evaluate.load(str(METRIC_DIR), keep_in_memory=True, label_names=list(labels))


def load_metric(labels: list[str]):
    """Load the local section-metrics `evaluate` module, offline, for this label list (cached per list).

    The label names are given to the module's constructor (``evaluate.load(path, label_names=...)``, which
    evaluate 0.4 passes through as init kwargs); ``compute(predictions=ids, references=ids)`` then returns
    the flat dict described in :func:`compute_metrics`. Inputs to the module are integer ids.
    """
    labels = tuple(labels)
    if not labels or len(set(labels)) != len(labels):
        raise ValueError(f"labels must be a non-empty list of unique names, found {list(labels)}")
    return _load_cached(labels)


def compute_metrics(
    references: Sequence[Any] | np.ndarray, predictions: Sequence[Any] | np.ndarray, labels: Sequence[str]
) -> dict[str, float | int]:
    """Score predictions against references through the local `evaluate` module.

    ``references`` and ``predictions`` may be label-name strings or integer ids (positions in ``labels``);
    each must be one kind throughout. Returns flat keys ``accuracy``, ``macro_f1``, ``macro_precision``,
    ``macro_recall`` and, for every label, ``precision/<label>``, ``recall/<label>``, ``f1/<label>``,
    ``support/<label>``. Macro averages run over the full ``labels`` list (scikit-learn ``labels=`` with
    ``zero_division=0``): a label in neither input scores 0 and a UserWarning names it.
    """
    labels = list(labels)
    if len(references) != len(predictions):
        raise ValueError(
            f"references and predictions must have the same length; found {len(references)} references "
            f"and {len(predictions)} predictions"
        )
    if len(references) == 0:
        raise ValueError("no examples to score: expected at least one reference/prediction pair, found 0")
    ref_ids = to_label_ids(references, labels, what="references")
    pred_ids = to_label_ids(predictions, labels, what="predictions")
    return load_metric(labels).compute(references=ref_ids, predictions=pred_ids)


def macro_f1_gap_interval(
    references: Sequence[Any],
    predictions: Sequence[Any],
    other_predictions: Sequence[Any],
    labels: Sequence[str],
    *,
    confidence: float = 0.95,
    n_resamples: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """Paired bootstrap interval, in percentage points, of macro-F1(predictions) − macro-F1(other_predictions).

    Both prediction lists are scored on the same resampled articles, so the interval reflects how much the
    gap itself would move on another held-out set of this size, not the spread of each score on its own
    (a few hundred articles move a macro-F1 by several points). Percentile method, seeded.
    """
    from scipy.stats import bootstrap
    from sklearn.metrics import f1_score

    if not len(references) == len(predictions) == len(other_predictions):
        raise ValueError(
            f"references and both prediction lists must have the same length; found {len(references)}, "
            f"{len(predictions)} and {len(other_predictions)}"
        )
    if len(references) < 2:
        raise ValueError(f"a bootstrap interval needs at least 2 articles, found {len(references)}")
    ids = list(range(len(labels)))
    ref = np.asarray(to_label_ids(references, labels, what="references"))
    a = np.asarray(to_label_ids(predictions, labels, what="predictions"))
    b = np.asarray(to_label_ids(other_predictions, labels, what="other_predictions"))

    def gap(index: np.ndarray) -> float:
        f1 = functools.partial(f1_score, ref[index], labels=ids, average="macro", zero_division=0)
        return 100 * (f1(a[index]) - f1(b[index]))

    res = bootstrap(
        (np.arange(len(ref)),), gap, vectorized=False, n_resamples=n_resamples, confidence_level=confidence,
        method="percentile", rng=np.random.default_rng(seed),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


__all__ = ["METRIC_DIR", "compute_metrics", "load_metric", "macro_f1_gap_interval", "to_label_ids"]
