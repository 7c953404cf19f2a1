"""Report writers: the text confusion matrix, a readable Markdown report, atomic JSON.

Evaluation and training both write through these so every run folder looks the same: ``eval.json`` for
machines, ``report.md`` for people, with the model and the TF-IDF baseline side by side. Figures (the
confusion-matrix PNG among them) are drawn in :mod:`newsclf.plots`.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from newsclf.metrics import to_label_ids

SUMMARY_KEYS = [
    ("accuracy", "accuracy"),
    ("macro_f1", "macro-F1"),
    ("macro_precision", "macro precision"),
    ("macro_recall", "macro recall"),
    ("ece", "ECE (lower is better)"),
]


def _confusion(references: Sequence[Any], predictions: Sequence[Any], labels: Sequence[str]) -> np.ndarray:
    from sklearn.metrics import confusion_matrix

    if len(references) != len(predictions):
        raise ValueError(
            f"references and predictions must have the same length; found {len(references)} and {len(predictions)}"
        )
    refs = to_label_ids(references, labels, what="references")
    preds = to_label_ids(predictions, labels, what="predictions")
    return confusion_matrix(refs, preds, labels=list(range(len(labels))))


def confusion_matrix_text(
    references: Sequence[Any], predictions: Sequence[Any], labels: Sequence[str]
) -> str:
    """An aligned plain-text confusion matrix: rows = true label, columns = predicted label, with totals.

    ``references``/``predictions`` are label names or integer ids (positions in ``labels``).
    """
    labels = list(labels)
    cm = _confusion(references, predictions, labels)
    corner = "true \\ predicted"
    header = [corner, *labels, "total"]
    rows = [[name, *map(str, cm[i]), str(cm[i].sum())] for i, name in enumerate(labels)]
    rows.append(["total", *map(str, cm.sum(axis=0)), str(cm.sum())])
    widths = [max(len(r[c]) for r in [header, *rows]) for c in range(len(header))]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        return "  ".join([first, *(cell.rjust(w) for cell, w in zip(cells[1:], widths[1:]))]).rstrip()

    return "\n".join([line(header), *(line(r) for r in rows)])




def _plain(obj: Any, where: str = "$") -> Any:
    """Convert numpy types, paths, sets and non-finite floats to plain JSON values (NaN/inf -> null)."""
    if isinstance(obj, dict):
        return {str(_plain(k, where)): _plain(v, f"{where}.{k}") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, (set, frozenset)):
        return sorted((_plain(v, where) for v in obj), key=str)
    if isinstance(obj, np.ndarray):
        return _plain(obj.tolist(), where)
    if isinstance(obj, np.generic):
        return _plain(obj.item(), where)
    if isinstance(obj, float):
        # Strict JSON has no NaN/Infinity; null keeps the file readable by every parser.
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(
        f"cannot write {type(obj).__name__} at {where} as JSON; expected dicts, lists, strings, numbers "
        "(numpy included), booleans or None. Convert it first (e.g. str(...) or .tolist())."
    )


def _write_atomic(path: str | Path, text: str) -> Path:
    """Write text to a temp file in the target folder, then os.replace it, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def ensure_writable(folder: str | Path, what: str, fix: str) -> Path:
    """Create ``folder`` and prove it writable before any long work, so a run cannot fail at its end.

    ``what`` names the folder in the error ("the run folder"), ``fix`` says what to do instead.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as err:
        raise OSError(f"cannot write to {what} {folder} ({err.strerror or err}); {fix}") from None
    return folder


def write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as pretty UTF-8 JSON, atomically (temp file in the same folder + ``os.replace``).

    numpy scalars and arrays, paths and sets are converted; NaN/inf become null. If ``obj`` cannot be
    converted, a TypeError names where, and any existing file at ``path`` is left untouched.
    """
    text = json.dumps(_plain(obj), ensure_ascii=False, indent=2, allow_nan=False)
    return _write_atomic(path, text + "\n")


def _pct(value: Any) -> str:
    return "–" if value is None else f"{100 * float(value):.1f}"


def _gap(model: Any, base: Any) -> str:
    return "–" if model is None or base is None else f"{100 * (float(model) - float(base)):+.1f}"


def _cell(value: Any, limit: int = 60) -> str:
    text = " ".join(str(value).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("|", "\\|")


def _fmt(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.4g}"
    return _cell(value, 200)


def _labels_in(metrics: dict) -> list[str]:
    return [key.split("/", 1)[1] for key in metrics if key.startswith("f1/")]


def write_markdown_report(
    path: str | Path,
    *,
    title: str,
    metrics: dict,
    baseline_metrics: dict | None,
    confusion_text: str,
    errors: list[dict],
    extra: dict | None = None,
    images: dict[str, str] | None = None,
    max_errors: int = 50,
) -> Path:
    """Write a readable Markdown report; returns its path.

    ``metrics``/``baseline_metrics`` are :func:`newsclf.metrics.compute_metrics` dicts (an ``ece`` key is
    shown when present). Sections: summary (model vs baseline, gap in percentage points), run details
    (``extra``), per-label P/R/F1, the confusion matrix, ``images`` (name -> path; paths inside the
    report's folder are linked relatively), and up to ``max_errors`` errors, each a dict with ``id``,
    ``title``, the true label (``label`` or ``true``), the prediction (``predicted`` or ``pred``), ``score``.
    """
    path = Path(path)
    out: list[str] = [f"# {title}", ""]

    out += ["## Summary", ""]
    if baseline_metrics is None:
        out += ["No baseline in this run.", "", "| metric | model (%) |", "|---|---:|"]
    else:
        out += [
            "Model vs the jieba + TF-IDF + logistic-regression baseline trained on the same training data and "
            "scored on the same articles; the gap is in percentage points.",
            "",
            "| metric | model (%) | baseline (%) | gap (points) |",
            "|---|---:|---:|---:|",
        ]
    for key, name in SUMMARY_KEYS:
        model_value = metrics.get(key)
        if model_value is None:
            continue
        if baseline_metrics is None:
            out.append(f"| {name} | {_pct(model_value)} |")
        else:
            base_value = baseline_metrics.get(key)
            out.append(
                f"| {name} | {_pct(model_value)} | {_pct(base_value)} | {_gap(model_value, base_value)} |"
            )
    out.append("")

    if extra:
        out += ["## Run details", ""]
        out += [f"- **{_cell(k, 100)}**: {_fmt(v)}" for k, v in extra.items()]
        out.append("")

    labels = _labels_in(metrics)
    if labels:
        out += ["## Per label", ""]
        head = "| label | precision (%) | recall (%) | F1 (%) | support |"
        rule = "|---|---:|---:|---:|---:|"
        if baseline_metrics is not None:
            head += " baseline F1 (%) | F1 gap (points) |"
            rule += "---:|---:|"
        out += [head, rule]
        for name in labels:
            row = (
                f"| {name} | {_pct(metrics.get(f'precision/{name}'))} | {_pct(metrics.get(f'recall/{name}'))} "
                f"| {_pct(metrics.get(f'f1/{name}'))} | {metrics.get(f'support/{name}', '–')} |"
            )
            if baseline_metrics is not None:
                base_f1 = baseline_metrics.get(f"f1/{name}")
                row += f" {_pct(base_f1)} | {_gap(metrics.get(f'f1/{name}'), base_f1)} |"
            out.append(row)
        out.append("")

    out += ["## Confusion matrix", "", "Rows are the true label, columns the prediction.", "", "```text"]
    out += [confusion_text.rstrip("\n"), "```", ""]

    if images:
        out += ["## Plots", ""]
        for name, image in images.items():
            image_path = Path(image)
            if image_path.is_absolute():
                try:
                    image_path = image_path.resolve().relative_to(path.parent.resolve())
                except ValueError:
                    pass  # outside the report folder: keep the absolute path
            out += [f"![{_cell(name, 100)}]({image_path.as_posix()})", ""]

    shown = errors[:max_errors]
    out += [f"## Errors ({len(shown)} of {len(errors)} shown)", ""]
    if not errors:
        out += ["No errors.", ""]
    else:
        out += ["| # | id | title | true | predicted | score |", "|---:|---|---|---|---|---:|"]
        for i, err in enumerate(shown, 1):
            true = err.get("label", err.get("true", "?"))
            pred = err.get("predicted", err.get("pred", "?"))
            score = err.get("score")
            score_text = f"{float(score):.3f}" if score is not None else "–"
            out.append(
                f"| {i} | {_cell(err.get('id', ''), 40)} | {_cell(err.get('title', ''))} | {_cell(true, 30)} "
                f"| {_cell(pred, 30)} | {score_text} |"
            )
        out.append("")

    return _write_atomic(path, "\n".join(out))


__all__ = [
    "confusion_matrix_text",
    "write_json",
    "write_markdown_report",
]
