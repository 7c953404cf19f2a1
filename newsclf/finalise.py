"""After training: calibrate on validation, score validation and test, and save the run.

The temperature is fitted on the validation split and the abstain threshold chosen there for a stated
precision target (:mod:`newsclf.calibration`); both splits are scored through :mod:`newsclf.scoring`, the
path ``newsclf evaluate`` uses too; the model folder is written by :mod:`newsclf.artifact` and the splits the
model was trained on are saved beside it (``runs/<name>/dataset``) for the evaluation baseline.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from newsclf.config import Config

log = logging.getLogger(__name__)


MIN_BLEND_VALIDATION = 20  # fewer validation articles than this cannot weigh two models against each other


def calibrate(
    config: Config, meta: Any, clf: Any, dsd: Any, split_logits: dict[str, np.ndarray], metrics: dict[str, Any]
) -> dict[str, np.ndarray]:
    """Fit the temperature, the baseline blend (``config.blend_baseline``) and the abstain threshold on
    validation; set them on ``meta`` and ``clf``; return each split's calibrated probabilities.

    The blend's baseline is trained on the training split only, so validation stays unseen by both models.
    ``metrics[split]["model_alone_macro_f1"]`` keeps the transformer's own score beside the blend's.
    """
    from newsclf.baseline import TfidfBaseline, article_texts
    from newsclf.calibration import (
        AbstainThreshold,
        blend_logits,
        choose_abstain_threshold,
        fit_blend,
        fit_temperature,
        softmax,
    )
    from newsclf.metrics import compute_metrics

    labels = meta.labels
    probs = {name: softmax(logits, 1.0) for name, logits in split_logits.items()}
    if "validation" not in split_logits:
        return probs
    refs = np.array([labels.index(lab) for lab in dsd["validation"]["label"]])
    meta.temperature = fit_temperature(split_logits["validation"], refs)
    probs = {name: softmax(logits, meta.temperature) for name, logits in split_logits.items()}
    if config.blend_baseline and len(refs) < MIN_BLEND_VALIDATION:
        log.warning("not blending in the TF-IDF baseline: %d validation articles, need %d to fit its weight",
                    len(refs), MIN_BLEND_VALIDATION)
    elif config.blend_baseline:
        train = dsd["train"]
        base = TfidfBaseline(labels, seed=config.seed).fit(
            article_texts(zip(train["title"], train["text"])), list(train["label"])
        )
        base_probs = {
            name: base.predict_proba(article_texts(zip(dsd[name]["title"], dsd[name]["text"]))) for name in split_logits
        }
        meta.blend = fit_blend(split_logits["validation"], meta.temperature, base_probs["validation"], refs)
        clf.blend, clf.baseline = meta.blend, base
        for name, p in probs.items():
            alone = compute_metrics(list(dsd[name]["label"]), [labels[i] for i in p.argmax(axis=1)], labels)
            metrics.setdefault(name, {})["model_alone_macro_f1"] = alone["macro_f1"]
        probs = {
            name: softmax(blend_logits(logits, meta.temperature, base_probs[name], meta.blend), 1.0)
            for name, logits in split_logits.items()
        }
        log.info("blended in the TF-IDF baseline with weights %s (fitted on validation)", meta.blend)
    val_probs = probs["validation"]
    if config.abstain_threshold is not None:  # the config's threshold wins; still measured on validation
        abstain, source = AbstainThreshold.measure(val_probs, refs, config.abstain_threshold), "config"
    else:
        abstain, source = choose_abstain_threshold(val_probs, refs), "validation"
    meta.abstain_threshold = abstain.threshold
    meta.abstain = {"source": source, **abstain.summary()}
    return probs


def finalise(
    config: Config,
    model: Any,
    tokenizer: Any,
    dsd: Any,
    *,
    train_seconds: float,
    fingerprint: str,
    split_counts: dict[str, Any],
    log_history: list[dict[str, Any]],
    averaged_steps: list[int] | None = None,
    model_dir: Path | None = None,
    dataset_ref: str = "../dataset",
) -> Path:
    """Calibrate on validation, score validation and test, and write the run's model and dataset folders.

    In a distributed run only rank 0 does this; the other ranks return the model folder's path at once (no
    collective happens here, so none waits for them). ``model_dir`` given (see :func:`reblend`): write the
    model there and leave the dataset folder, which ``dataset_ref`` points at, as it is.
    """
    from newsclf.run_state import process_rank

    if process_rank()[0] != 0:
        return config.run_dir() / "model"
    from newsclf import artifact
    from newsclf.predict import Classifier
    from newsclf.scoring import score, write_figures

    model = model.float().eval()
    labels = config.labels
    meta = artifact.ModelMeta(
        labels=labels, input_mode=config.input_mode, max_length=config.max_length, max_chunks=config.max_chunks,
        pooling=config.pooling, backbone=config.backbone, vocab=config.vocab, train_fingerprint=fingerprint,
        dataset_dir=dataset_ref, config=config.to_dict(),
    )
    clf = Classifier(model, tokenizer, meta.to_dict())
    split_logits = {
        name: clf.logits(list(zip(dsd[name]["title"], dsd[name]["text"]))) for name in ("validation", "test") if len(dsd[name])
    }
    metrics: dict[str, Any] = {"train_seconds": round(train_seconds, 1), "train_articles": len(dsd["train"])}
    if averaged_steps:
        metrics["averaged_steps"] = averaged_steps
    split_probs = calibrate(config, meta, clf, dsd, split_logits, metrics)
    predictions: list[dict[str, Any]] = []
    figures: dict[str, Any] = {}
    for name, probs in split_probs.items():
        split = dsd[name]
        scored = score(probs, split["label"], labels, threshold=meta.abstain_threshold, ids=split["id"],
                       titles=split["title"])
        metrics[name] = {**metrics.get(name, {}), **scored["metrics"], "ece": scored["ece"], "abstain": scored["abstain"]}
        if name == "test" or "test" not in split_probs:
            shown = (probs, list(split["label"]), scored["predictions"], f"{config.name}: {name} split")
            # Called with the file's path inside the temporary model folder; writes confusion_matrix.txt beside it.
            figures["confusion_matrix.png"] = lambda target, a=shown: write_figures(
                target.parent, a[0], a[1], a[2], labels, title=a[3], reliability=False
            )
        for row_id, title, label, pred, p in zip(split["id"], split["title"], split["label"], scored["predictions"], probs):
            predictions.append(
                {"split": name, "id": row_id, "title": title, "label": label, "predicted": pred,
                 "score": round(float(p.max()), 4)}
            )
    run_dir = config.run_dir()
    if model_dir is not None:
        return _save_model(model_dir, model, tokenizer, meta, config, metrics, split_counts, log_history, predictions,
                           figures, clf.baseline)
    model_dir = run_dir / "model"
    # The dataset first: a model folder always points at splits that exist.
    dataset_tmp = Path(tempfile.mkdtemp(prefix=".dataset-tmp-", dir=run_dir))
    try:
        dsd.save_to_disk(str(dataset_tmp / "dataset"))
        artifact.make_readable(dataset_tmp)
        artifact.replace_dir(dataset_tmp / "dataset", run_dir / "dataset")
    finally:
        shutil.rmtree(dataset_tmp, ignore_errors=True)
    return _save_model(model_dir, model, tokenizer, meta, config, metrics, split_counts, log_history, predictions,
                       figures, clf.baseline)


def _save_model(
    model_dir: Path, model: Any, tokenizer: Any, meta: Any, config: Config, metrics: dict[str, Any],
    split_counts: dict[str, Any], log_history: list[dict[str, Any]], predictions: list[dict[str, Any]],
    figures: dict[str, Any], baseline: Any,
) -> Path:
    from newsclf import artifact
    from newsclf.model_card import write_model_card

    meta.metrics = metrics
    artifact.save(
        model_dir, model, tokenizer, meta,
        files={
            "metrics.json": metrics,
            "splits.json": split_counts,
            "log_history.json": log_history,
            "predictions.jsonl": "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in predictions),
            "README.md": lambda target: write_model_card(target, config, meta.to_dict(), split_counts),
            **figures,
        },
        baseline=baseline,
    )
    log.info("saved %s", model_dir)
    return model_dir


def reblend(model_dir: str | Path, *, blend: bool = True) -> Path:
    """Re-calibrate a saved model with (or without) the TF-IDF baseline blended in, in place.

    For models trained before blending existed: the weights stay as they are; temperature, blend, abstain
    threshold, metrics and predictions are refitted on the run's saved validation split exactly as at the end
    of ``newsclf train`` (same code), which needs the run's dataset folder beside the model.
    """
    from datasets import load_from_disk

    from newsclf import artifact
    from newsclf.config import make_config
    from newsclf.data.splits import dataset_fingerprint

    model_dir = Path(model_dir)
    model, tokenizer, meta = artifact.load(model_dir)
    saved = artifact.dataset_dir(model_dir, meta)
    if saved is None or not saved.is_dir():
        raise FileNotFoundError(
            f"{model_dir} has no saved dataset (looked for {saved}); the blend is fitted on the run's validation split, "
            "so keep the run's dataset folder beside the model or re-train"
        )
    dsd = load_from_disk(str(saved))
    if dataset_fingerprint(dsd["train"]) != meta.train_fingerprint:
        raise ValueError(f"{saved} does not hold this model's training data (fingerprint differs); re-train instead")
    config = make_config({**meta.config, "blend_baseline": blend})

    def read(name: str, default: Any) -> Any:
        f = model_dir / name
        return json.loads(f.read_text(encoding="utf-8")) if f.is_file() else default

    old = read("metrics.json", {})
    return finalise(
        config, model, tokenizer, dsd, train_seconds=float(old.get("train_seconds", 0.0)),
        fingerprint=meta.train_fingerprint, split_counts=read("splits.json", {}),
        log_history=read("log_history.json", []), averaged_steps=old.get("averaged_steps"),
        model_dir=model_dir, dataset_ref=meta.dataset_dir or "../dataset",
    )
