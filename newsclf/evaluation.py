"""Evaluating a saved model on held-out articles, with the TF-IDF baseline trained on the same data.

Every report carries the baseline because a fine-tuned model that does not beat jieba + TF-IDF + a
linear model on the same training data is not worth its cost; the gap is the number that says so.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
MAX_ERRORS_LISTED = 50


def training_split(model_dir: str | Path, meta: Any) -> Any:
    """The training split the model saw: from the run's saved dataset, else rebuilt from its config.

    Either way its fingerprint must match the one saved with the model, or the baseline would be trained
    on different data than the model and the gap would mean nothing. The saved dataset is found relative
    to the model folder and the config's data paths were stored absolute, so this works from any folder.
    """
    from datasets import load_from_disk

    from newsclf import artifact
    from newsclf.config import make_config
    from newsclf.data.splits import build_dataset, dataset_fingerprint

    want = meta.train_fingerprint
    saved = artifact.dataset_dir(model_dir, meta)
    if saved is not None and saved.is_dir():
        train = load_from_disk(str(saved))["train"]
        if dataset_fingerprint(train) == want:
            return train
        log.warning("%s does not hold this model's training data (fingerprint differs); rebuilding", saved)
    try:
        config = make_config(meta.config)
        train = build_dataset(config)["train"]
    except (FileNotFoundError, ValueError) as err:
        raise ValueError(
            f"cannot rebuild the model's training data for the baseline ({err}); keep the run's dataset folder "
            f"beside the model ({saved}), or skip the baseline (--no-baseline)"
        ) from None
    got = dataset_fingerprint(train)
    if got != want:
        raise ValueError(
            f"cannot reproduce the model's training data: fingerprint {got} != {want} saved with the model; "
            "the data files or labelling rules changed since training. Re-train, or skip the baseline (--no-baseline)"
        )
    return train


def evaluate_model(
    model: str | Path,
    data: str | Path | list[str | Path],
    *,
    out_dir: str | Path | None = None,
    field_map: dict[str, Any] | None = None,
    baseline: bool = True,
    batch_size: int = 16,
    format: str | None = None,
    precision: str = "auto",
    backend: str = "auto",
) -> dict[str, Any]:
    """Score the model in ``model`` on the labelled articles in ``data``; write JSON + Markdown + plots.

    Returns the metrics dict (also written to ``<out_dir>/eval.json``). ``out_dir`` defaults to
    ``<model>/../eval-<data file stem>``; it is checked writable before any work. ``precision`` and
    ``backend``: as :func:`newsclf.load`; what ran is recorded as ``runs`` (int8 and fp32 can score apart).
    """
    from newsclf.data.loaders import load_articles
    from newsclf.metrics import compute_metrics, macro_f1_gap_interval
    from newsclf.predict import Classifier
    from newsclf.report import write_json, write_markdown_report
    from newsclf.scoring import score, write_figures

    data_list = [data] if isinstance(data, (str, Path)) else list(data)
    if not data_list:
        raise ValueError("no labelled data given; pass one or more files (--data FILE)")
    out = Path(out_dir) if out_dir else Path(model).parent / f"eval-{Path(str(data_list[0])).name.split('.')[0]}"
    from newsclf.report import ensure_writable

    ensure_writable(out, "the report folder", "choose another with --out (out_dir=)")
    clf = Classifier.from_dir(model, precision=precision, backend=backend)
    labels = clf.labels
    articles = load_articles([str(d) for d in data_list], field_map=field_map, format=format)
    if "label" not in articles.column_names or any(lab is None for lab in articles["label"]):
        missing = (
            len(articles) if "label" not in articles.column_names else sum(lab is None for lab in articles["label"])
        )
        raise ValueError(
            f"{missing} of {len(articles)} articles in {data_list} have no 'label'; evaluation needs labelled "
            "articles (a label column/field, or map one with field_map)"
        )
    unknown = sorted(set(articles["label"]) - set(labels))
    if unknown:
        raise ValueError(f"labels {unknown} in {data_list} are not among the model's labels {labels}")
    refs = list(articles["label"])
    pairs = list(zip(articles["title"], articles["text"]))
    probs, alone = clf.probability_parts(pairs, batch_size=batch_size, exact_alone=True)
    scored = score(probs, refs, labels, threshold=clf.abstain_threshold, ids=articles["id"], titles=articles["title"])
    preds = scored["predictions"]
    metrics: dict[str, Any] = {
        "model": str(model),
        "data": [str(d) for d in data_list],
        "articles": len(articles),
        "runs": {"backend": clf.backend, "precision": clf.precision},
        "model_metrics": scored["metrics"],
        "ece": scored["ece"],
        "abstain": scored["abstain"],
    }
    if alone is not None:  # a blended model: the transformer's own score too, so the blend's share is visible
        metrics["blend"] = clf.blend
        metrics["model_alone_metrics"] = compute_metrics(refs, [labels[i] for i in alone.argmax(axis=1)], labels)
    baseline_metrics = None
    if baseline:
        from newsclf import artifact
        from newsclf.baseline import TfidfBaseline, article_texts

        meta = artifact.read_meta(model)
        if clf.baseline is not None:
            # A blended model carries this very baseline (trained on its training split with its seed), so
            # the folder alone is enough: no need for the run's dataset.
            base, n_train = clf.baseline, meta.metrics.get("train_articles")
        else:
            train = training_split(model, meta)
            base = TfidfBaseline(labels, seed=int(meta.config.get("seed", 0))).fit(
                article_texts(zip(train["title"], train["text"])), list(train["label"])
            )
            n_train = len(train)
        base_preds = base.predict(article_texts(pairs))
        baseline_metrics = compute_metrics(refs, base_preds, labels)
        metrics["baseline_metrics"] = baseline_metrics
        metrics["baseline_train_articles"] = n_train
        metrics["gap_macro_f1_points"] = round(100 * (metrics["model_metrics"]["macro_f1"] - baseline_metrics["macro_f1"]), 2)
        # A few hundred articles leave the gap uncertain by points; the interval says how many.
        ci = {"confidence": 0.95, "resamples": 1000}
        low, high = macro_f1_gap_interval(
            refs, preds, base_preds, labels, confidence=ci["confidence"], n_resamples=ci["resamples"]
        )
        metrics["gap_macro_f1_interval_points"] = {**ci, "low": round(low, 2), "high": round(high, 2)}

    errors = scored["errors"]
    metrics["errors"] = len(errors)
    images = write_figures(out, probs, refs, preds, labels, title=f"{Path(model).parent.name} on {out.name}")
    confusion = (out / "confusion_matrix.txt").read_text(encoding="utf-8").rstrip("\n")
    write_json(out / "errors.json", errors)
    write_json(out / "eval.json", metrics)
    write_markdown_report(
        out / "report.md",
        title=f"newsclf evaluation: {Path(model)} on {', '.join(str(d) for d in data_list)}",
        metrics={**metrics["model_metrics"], "ece": metrics["ece"]},
        baseline_metrics=baseline_metrics,
        confusion_text=confusion,
        errors=errors[:MAX_ERRORS_LISTED],
        extra={"runs on": f"{clf.backend} {clf.precision}", "ECE": round(metrics["ece"], 4), "abstain threshold": clf.abstain_threshold,
               "coverage at threshold": round(metrics["abstain"]["coverage"], 3), "articles": len(articles),
               **_interval_line(metrics)},
        images=images,
    )
    metrics["out_dir"] = str(out)
    return metrics


def _interval_line(metrics: dict[str, Any]) -> dict[str, str]:
    ci = metrics.get("gap_macro_f1_interval_points")
    if not ci:
        return {}
    return {
        f"macro-F1 gap, {ci['confidence']:.0%} paired bootstrap interval": f"{ci['low']:+.1f} to {ci['high']:+.1f} "
        f"points (measured {metrics['gap_macro_f1_points']:+.1f}; {ci['resamples']:,} resamples of these articles)"
    }
