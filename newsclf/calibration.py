"""Confidence calibration: temperature scaling, expected calibration error, reliability plots, abstention.

Fine-tuned classifiers are usually over-confident, and the abstain threshold is only meaningful on
calibrated scores. So training fits one temperature on the validation split (Guo et al. 2017), and the
abstain threshold is chosen on the temperature-scaled validation probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax
from scipy.special import softmax as _scipy_softmax

# Temperatures outside this range mean the fit is degenerate, not that the model needs it.
MIN_TEMPERATURE = 0.05
MAX_TEMPERATURE = 20.0


def _check_logits_labels(scores: np.ndarray, labels: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if scores.ndim != 2 or scores.shape[0] == 0 or scores.shape[1] < 2:
        raise ValueError(
            f"{what} must be a 2-D array (n_examples, n_labels) with at least one row and two columns; "
            f"found shape {scores.shape}"
        )
    if labels.shape != (scores.shape[0],):
        raise ValueError(
            f"labels must be a 1-D array with one entry per row of {what}; found shape {labels.shape} "
            f"for {scores.shape[0]} rows"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"labels must be integer label ids, found dtype {labels.dtype}; map names to ids first"
        )
    if labels.min() < 0 or labels.max() >= scores.shape[1]:
        raise ValueError(
            f"labels must lie in 0..{scores.shape[1] - 1} (one per column of {what}); "
            f"found values from {labels.min()} to {labels.max()}"
        )
    if not np.all(np.isfinite(scores)):
        raise ValueError(f"{what} contain NaN or infinite values; check the model outputs")
    return scores, labels.astype(np.int64)


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature`` (numerically stable); ``temperature`` must be > 0."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, found {temperature}")
    return _scipy_softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=-1)


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """Fit the temperature T > 0 that minimises the NLL of ``softmax(logits / T)`` on held-out data.

    Minimises over log T with scipy's bounded scalar minimiser, with T kept in
    [MIN_TEMPERATURE, MAX_TEMPERATURE]. A weak Gaussian prior on log T (weight 1/n) keeps tiny or
    perfectly separated sets, whose NLL keeps falling as T -> 0, from producing an absurdly sharp
    temperature; on a few hundred examples the prior moves T by well under 1%.
    """
    logits, labels = _check_logits_labels(logits, labels, "logits")
    n = len(labels)
    rows = np.arange(n)

    def objective(log_t: float) -> float:
        nll = -log_softmax(logits / np.exp(log_t), axis=1)[rows, labels].mean()
        return float(nll + log_t**2 / n)

    found = minimize_scalar(
        objective,
        bounds=(np.log(MIN_TEMPERATURE), np.log(MAX_TEMPERATURE)),
        method="bounded",
        options={"xatol": 1e-5},
    )
    return float(np.exp(found.x))


# The baseline's probabilities are floored before the log: a label it never saw in training gets 0.
BLEND_FLOOR = 1e-6
MAX_BLEND_WEIGHT = 10.0


def blend_logits(model_logits: np.ndarray, temperature: float, baseline_probs: np.ndarray, weights: dict) -> np.ndarray:
    """The blended scores ``a * log softmax(logits / T) + b * log p_baseline`` (softmax them for probabilities).

    ``weights`` is ``{"model": a, "baseline": b}`` from :func:`fit_blend`: a product of the two experts'
    distributions with one exponent each, i.e. temperature scaling of a two-model ensemble.
    """
    model_logp = log_softmax(np.asarray(model_logits, dtype=np.float64) / temperature, axis=1)
    base_logp = np.log(np.clip(np.asarray(baseline_probs, dtype=np.float64), BLEND_FLOOR, 1.0))
    return weights["model"] * model_logp + weights["baseline"] * base_logp


def fit_blend(model_logits: np.ndarray, temperature: float, baseline_probs: np.ndarray, labels: np.ndarray) -> dict:
    """Fit the two exponents of :func:`blend_logits` by the NLL on held-out data (the validation split).

    Two numbers, like the temperature, so a few hundred articles fit them without overfitting (a full
    logistic-regression stacker on the same 527 validation articles lost 2-6 points on later articles,
    README). Both stay in [0, MAX_BLEND_WEIGHT]; a weak prior towards (1, 0), the model alone, weighted
    1/n like the temperature's, keeps tiny or separable sets from drifting.
    """
    from scipy.optimize import minimize

    model_logits, labels = _check_logits_labels(model_logits, labels, "model_logits")
    baseline_probs, _ = _check_logits_labels(baseline_probs, labels, "baseline_probs")
    if baseline_probs.shape != model_logits.shape:
        raise ValueError(f"baseline_probs has shape {baseline_probs.shape}, expected {model_logits.shape}")
    model_logp = log_softmax(model_logits / temperature, axis=1)
    base_logp = np.log(np.clip(baseline_probs, BLEND_FLOOR, 1.0))
    rows, n = np.arange(len(labels)), len(labels)

    def objective(w: np.ndarray) -> float:
        z = w[0] * model_logp + w[1] * base_logp
        nll = -log_softmax(z, axis=1)[rows, labels].mean()
        return float(nll + ((w[0] - 1) ** 2 + w[1] ** 2) / n)

    found = minimize(objective, np.array([1.0, 0.0]), method="L-BFGS-B", bounds=[(0.0, MAX_BLEND_WEIGHT)] * 2)
    return {"model": round(float(found.x[0]), 6), "baseline": round(float(found.x[1]), 6)}


def _confidence_and_correct(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    probs, labels = _check_logits_labels(probs, labels, "probs")
    if probs.min() < 0 or probs.max() > 1 + 1e-6:
        raise ValueError(
            f"probs must be probabilities in [0, 1] (apply softmax to logits first); "
            f"found values from {probs.min():.3g} to {probs.max():.3g}"
        )
    return probs.max(axis=1), probs.argmax(axis=1) == labels


def _bin_stats(confidence: np.ndarray, correct: np.ndarray, n_bins: int):
    if not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, found {n_bins!r}")
    # Bins are (k/n, (k+1)/n]; a confidence of exactly 1.0 belongs in the last bin.
    index = np.clip(np.ceil(confidence * n_bins).astype(int) - 1, 0, n_bins - 1)
    counts = np.bincount(index, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.bincount(index, weights=correct.astype(float), minlength=n_bins) / counts
        mean_conf = np.bincount(index, weights=confidence, minlength=n_bins) / counts
    return counts, accuracy, mean_conf


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = 10) -> float:
    """Top-label expected calibration error with ``n_bins`` equal-width confidence bins.

    ECE = sum over bins of (bin size / n) * |accuracy in bin - mean top probability in bin|; 0 is perfect.
    """
    confidence, correct = _confidence_and_correct(probs, labels)
    counts, accuracy, mean_conf = _bin_stats(confidence, correct, n_bins)
    filled = counts > 0
    return float(np.sum(counts[filled] / counts.sum() * np.abs(accuracy[filled] - mean_conf[filled])))


def reliability_diagram(
    probs: np.ndarray,
    labels: np.ndarray,
    path: str | Path,
    n_bins: int = 10,
    title: str = "Reliability diagram",
) -> Path:
    """Write a reliability diagram PNG; returns the path written.

    Top: per confidence bin, two half-width bars side by side, the bin's accuracy and its mean confidence
    (top probability), with the diagonal; a calibrated model has equal bars. Bottom: examples per bin.
    The title carries the ECE. Drawn through :mod:`newsclf.plots`' figure setup (Agg canvas, no
    display, pyplot untouched, a CJK-capable font for Chinese titles).
    """
    from newsclf.plots import new_figure, save_figure

    confidence, correct = _confidence_and_correct(probs, labels)
    counts, accuracy, mean_conf = _bin_stats(confidence, correct, n_bins)
    ece = expected_calibration_error(probs, labels, n_bins)
    edges = np.linspace(0, 1, n_bins + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    width = 1 / n_bins
    bar = 0.42 * width  # two bars side by side per bin, with a gap between bins so pairs read as pairs
    filled = counts > 0

    fig = new_figure((5.5, 6.5))
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.bar(
        centres[filled] - bar / 2, accuracy[filled], width=bar, color="#4c72b0", edgecolor="black",
        linewidth=0.6, label="accuracy",
    )
    top.bar(
        centres[filled] + bar / 2, mean_conf[filled], width=bar, color="#dd8452", edgecolor="black",
        linewidth=0.6, label="mean confidence",
    )
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy / mean confidence")
    top.set_title(f"{title}\nECE = {ece:.3f}  (n = {len(correct)}, {n_bins} bins)")
    top.legend(loc="upper left")
    top.grid(axis="y", alpha=0.3)
    bottom.bar(centres, counts, width=width, edgecolor="black", color="#8c8c8c")
    for x, c in zip(centres, counts):
        if c:
            bottom.annotate(str(c), (x, c), ha="center", va="bottom", fontsize=8)
    bottom.set_ylim(0, max(1, counts.max()) * 1.25)  # headroom for the count labels
    bottom.set_xlim(0, 1)
    bottom.set_xticks(edges if n_bins <= 10 else np.linspace(0, 1, 11))
    bottom.set_xlabel("confidence (top probability)")
    bottom.set_ylabel("count")
    return save_figure(fig, path)


# Defaults of choose_abstain_threshold. 0.97: when the model answers, it should be wrong about 1 time in 33;
# 0.5: the floor on coverage. A target the model cannot reach on validation would otherwise push the
# threshold up until it answers almost nothing, and a classifier that sorts under half of a newspaper's
# articles is not worth running; below the floor the coverage wins and the record says the target was missed.
DEFAULT_TARGET_PRECISION = 0.97
DEFAULT_MIN_COVERAGE = 0.5


@dataclass(frozen=True)
class AbstainThreshold:
    """An abstain threshold and what it does on the examples it was chosen (or measured) on.

    ``threshold``: answer when the top probability is >= it; ``precision``: accuracy of the answered
    examples (1.0 when none are answered); ``coverage``: the fraction answered; ``n``: examples;
    ``target_precision``: the precision asked for (None for a threshold that was given, not chosen);
    ``min_coverage``: the coverage floor the choice kept (None when measured); ``reached``: whether
    ``precision >= target_precision``.
    """

    threshold: float
    target_precision: float | None
    precision: float
    coverage: float
    n: int
    min_coverage: float | None = None

    @property
    def reached(self) -> bool:
        return self.target_precision is not None and self.precision >= self.target_precision

    def summary(self) -> dict:
        """JSON-ready fields (what training stores as ``meta["abstain"]``), without the threshold itself."""
        return {
            "target_precision": self.target_precision,
            "min_coverage": self.min_coverage,
            "precision": round(self.precision, 6),
            "coverage": round(self.coverage, 6),
            "n": self.n,
            "target_reached": self.reached,
        }

    @classmethod
    def measure(
        cls, probs: np.ndarray, labels: np.ndarray, threshold: float, target_precision: float | None = None
    ) -> AbstainThreshold:
        """Precision and coverage of a given ``threshold`` on ``probs``/``labels``."""
        confidence, correct = _confidence_and_correct(probs, labels)
        answered = confidence >= threshold
        precision = float(correct[answered].mean()) if answered.any() else 1.0
        return cls(float(threshold), target_precision, precision, float(answered.mean()), len(correct))


def choose_abstain_threshold(
    probs: np.ndarray,
    labels: np.ndarray,
    target_precision: float = DEFAULT_TARGET_PRECISION,
    min_coverage: float = DEFAULT_MIN_COVERAGE,
) -> AbstainThreshold:
    """Choose the top-probability threshold below which the model abstains (answers when top prob >= it).

    The candidates are 0 (answer everything) and every observed top probability; a candidate answers all
    examples tied at its value or none of them. Among the candidates answering at least ``min_coverage``
    of the examples:
    1. the smallest threshold whose answered examples reach ``target_precision`` (0.0 when answering
       everything already does);
    2. else (the target is out of reach at that coverage) the threshold with the highest answered-set
       precision, the smallest such on ties.
    The coverage floor wins over the precision target: a threshold that reaches the target only by
    answering under ``min_coverage`` is not chosen (see DEFAULT_MIN_COVERAGE). ``probs`` should be
    calibrated (temperature-scaled). Returns an :class:`AbstainThreshold` with the precision and coverage
    the threshold gives on these examples; ``.reached`` says whether the target was met.
    """
    if not 0 < target_precision <= 1:
        raise ValueError(f"target_precision must be in (0, 1], found {target_precision}")
    if not 0 <= min_coverage <= 1:
        raise ValueError(f"min_coverage must be in [0, 1], found {min_coverage}")
    confidence, correct = _confidence_and_correct(probs, labels)
    n = len(correct)
    # Sort by descending confidence; answering the top k examples is one candidate per distinct confidence.
    order = np.argsort(-confidence, kind="stable")
    conf_sorted = confidence[order]
    hits = np.cumsum(correct[order])
    answered = np.arange(1, n + 1)
    # The last position of each run of equal confidences: a threshold answers all ties or none.
    last_of_tie = np.r_[conf_sorted[1:] != conf_sorted[:-1], True]
    thresholds = conf_sorted[last_of_tie]
    coverage = answered[last_of_tie] / n
    precision = hits[last_of_tie] / answered[last_of_tie]

    # Thresholds descend with index, so the smallest threshold is the last qualifying index; the last
    # candidate answers everything and always passes the floor.
    allowed = np.flatnonzero(coverage >= min_coverage - 1e-12)
    reaching = allowed[precision[allowed] >= target_precision]
    if reaching.size:
        best = reaching[-1]
    else:
        best = allowed[precision[allowed] == precision[allowed].max()][-1]
    # Answering everything is threshold 0, not the lowest validation score, so new data is answered too.
    threshold = 0.0 if best == len(thresholds) - 1 else float(thresholds[best])
    return AbstainThreshold(
        threshold, float(target_precision), float(precision[best]), float(coverage[best]), n, float(min_coverage)
    )


__all__ = [
    "blend_logits",
    "fit_blend",
    "DEFAULT_MIN_COVERAGE",
    "DEFAULT_TARGET_PRECISION",
    "AbstainThreshold",
    "choose_abstain_threshold",
    "expected_calibration_error",
    "fit_temperature",
    "reliability_diagram",
    "softmax",
]
