"""Scoring a model's calibrated probabilities against reference labels: the one path for the end of
training (validation and test splits) and for ``newsclf evaluate`` (held-out files).

Both report the same things the same way: accuracy and per-label/macro precision, recall and F1 (the
local ``evaluate`` metric, tested against scikit-learn), expected calibration error, what the abstain
threshold keeps, the confusion matrix as text and PNG, the reliability diagram, and the misclassified
articles most confident first.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def score(
    probs: np.ndarray,
    references: Sequence[str],
    labels: Sequence[str],
    *,
    threshold: float = 0.0,
    ids: Sequence[str] | None = None,
    titles: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Metrics of ``probs`` (n × labels, calibrated) against label names ``references``.

    Returns ``{"metrics", "ece", "abstain", "predictions", "errors"}``: ``metrics`` is the label-level
    report of the top-1 predictions (abstention does not change it, so runs compare on equal terms);
    ``abstain`` says what ``threshold`` keeps (coverage, accuracy of the answered articles).
    """
    from newsclf.calibration import expected_calibration_error
    from newsclf.metrics import compute_metrics

    labels = list(labels)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.shape != (len(references), len(labels)):
        raise ValueError(f"probs has shape {probs.shape}, expected ({len(references)}, {len(labels)})")
    unknown = sorted(set(references) - set(labels))
    if unknown:
        raise ValueError(f"reference labels {unknown} are not among the model's labels {labels}")
    ref_ids = np.array([labels.index(r) for r in references], dtype=np.int64)
    pred_ids = probs.argmax(1) if len(probs) else np.zeros(0, dtype=np.int64)
    preds = [labels[i] for i in pred_ids]
    top = probs.max(1) if len(probs) else np.zeros(0)
    answered = top >= threshold
    result: dict[str, Any] = {
        "metrics": compute_metrics(list(references), preds, labels),
        "ece": float(expected_calibration_error(probs, ref_ids)) if len(probs) else None,
        "abstain": {
            "threshold": float(threshold),
            "coverage": float(answered.mean()) if len(probs) else None,
            "accuracy_answered": float((pred_ids == ref_ids)[answered].mean()) if answered.any() else None,
        },
        "predictions": preds,
    }
    ids = list(ids) if ids is not None else [str(i) for i in range(len(preds))]
    titles = list(titles) if titles is not None else [""] * len(preds)
    result["errors"] = [
        {
            "id": ids[i], "title": titles[i], "label": references[i], "predicted": preds[i],
            "score": round(float(top[i]), 4),
            "scores": {lab: round(float(p), 4) for lab, p in zip(labels, probs[i])},
        }
        for i in np.argsort(-top, kind="stable")
        if preds[i] != references[i]
    ]
    return result


def write_figures(
    out: str | Path,
    probs: np.ndarray,
    references: Sequence[str],
    predictions: Sequence[str],
    labels: Sequence[str],
    *,
    title: str,
    reliability: bool = True,
) -> dict[str, str]:
    """Write ``confusion_matrix.txt/.png`` (and ``reliability.png``) into ``out``; returns name → file."""
    from newsclf.calibration import reliability_diagram
    from newsclf.plots import plot_confusion_matrix
    from newsclf.report import confusion_matrix_text

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    labels = list(labels)
    (out / "confusion_matrix.txt").write_text(
        confusion_matrix_text(list(references), list(predictions), labels) + "\n", encoding="utf-8"
    )
    plot_confusion_matrix(list(references), list(predictions), labels, out / "confusion_matrix.png", title=title)
    files = {"confusion matrix": "confusion_matrix.png"}
    if reliability and len(probs):
        ref_ids = np.array([labels.index(r) for r in references])
        reliability_diagram(np.asarray(probs), ref_ids, out / "reliability.png", title=f"{title}: reliability")
        files["reliability"] = "reliability.png"
    return files
