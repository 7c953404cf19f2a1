"""The model card (README.md) written into every saved model folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from newsclf.config import Config


def _fmt(x: Any) -> str:
    return f"{x:.3f}" if isinstance(x, float) else str(x)


def _blend_lines(meta: dict[str, Any]) -> list[str]:
    blend = meta.get("blend")
    if not blend:
        return ["- scores: the transformer alone"]
    return [
        f"- scores: blended with the jieba + TF-IDF baseline trained on the same training split "
        f"(`baseline.json`, `baseline.safetensors`): softmax({blend['model']:.3f} x log p_transformer + "
        f"{blend['baseline']:.3f} x log p_baseline), exponents fitted on validation. `transformers.pipeline` "
        "runs the transformer alone."
    ]


def _abstain_note(abstain: dict[str, Any]) -> str:
    """How the abstain threshold was chosen and what it kept on validation, if training recorded it."""
    if not abstain.get("coverage"):
        return ""
    target = abstain.get("target_precision")
    why = f"chosen for {target:.0%} precision" if target else "set in the config"
    return (f" ({why}; on validation it answers {abstain['coverage']:.0%} of articles at "
            f"{abstain.get('precision', float('nan')):.1%} precision)")


def write_model_card(path: Path, config: Config, meta: dict[str, Any], splits: dict[str, Any]) -> None:
    """Intended use, data, metrics and limits of a trained model, in Markdown."""
    labels = meta["labels"]
    metrics = meta.get("metrics", {})
    lines = [
        "---",
        "language: zh",
        "pipeline_tag: text-classification",
        "library_name: transformers",
        "tags: [newsclf, news-section-classification]",
        "---",
        f"# newsclf section classifier `{config.name}`",
        "",
        "## Intended use",
        "Sorting Chinese newspaper articles (title + body) into the sections "
        + ", ".join(f"`{lab}`" for lab in labels)
        + ", as defined by newsclf's annotation guide. Built for archivists and researchers tagging "
        "city-daily and national news archives. Not for judging individuals, and not a substitute for an "
        "editor on articles that mix several subjects.",
        "",
        "Load it with `newsclf.load(DIR)` (calibrated scores, abstention, chunked long articles) or with "
        "`transformers.pipeline(\"text-classification\", model=DIR)` (raw softmax, head-truncated input).",
        "",
        "## Model",
        f"- backbone: `{meta['backbone']}` (vocabulary: {meta['vocab']}), pooling: {meta['pooling']}",
        f"- input: `{meta['input_mode']}`, max length {meta['max_length']} tokens"
        + (f", up to {meta['max_chunks']} chunks" if meta["input_mode"] == "chunks" else ""),
        f"- calibration temperature: {meta['temperature']:.3f}; abstain threshold: {meta['abstain_threshold']:.3f}"
        + _abstain_note(meta.get("abstain") or {}),
        f"- training-data fingerprint: `{meta['train_fingerprint']}`",
        *_blend_lines(meta),
        "",
        "## Data",
        f"Sources: {', '.join(config.data)}; gold files: {', '.join(config.gold) or 'none'}; "
        f"split: {config.split_by} (near-duplicates grouped, threshold {config.dedup_threshold}).",
        "",
        "| split | articles | " + " | ".join(labels) + " |",
        "|---|---|" + "---|" * len(labels),
    ]
    for name, r in splits.items():
        lines.append(f"| {name} | {r['articles']} | " + " | ".join(str(r["labels"].get(lab, 0)) for lab in labels) + " |")
    lines += ["", "## Metrics", "", "| split | accuracy | macro-F1 | transformer alone, macro-F1 |", "|---|---|---|---|"]
    for name in ("validation", "test"):
        if name in metrics:
            m = metrics[name]
            lines.append(f"| {name} | {_fmt(m['accuracy'])} | {_fmt(m['macro_f1'])} | {_fmt(m.get('model_alone_macro_f1', '—'))} |")
    lines += [
        "",
        "Validation was also used for early stopping and calibration, so the test row is the unbiased one. "
        "Both come from the training corpus's own distribution; held-out evaluation on real articles from "
        "another period (`newsclf evaluate`) is the number to trust.",
        "",
        "## Limits",
        "- Labels in the training data come partly from rules and lexicons (see `label_source` in the "
        "dataset); their errors are learned too.",
        "- Articles whose main subject is split between sections get one label only; check `scores`.",
        "- Trained on mainland Chinese news in simplified characters; other registers get lower confidence.",
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")
