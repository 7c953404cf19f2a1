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
) -> Path:
    """Calibrate on validation, score validation and test, and write the run's model and dataset folders.

    In a distributed run only rank 0 does this; the other ranks return the model folder's path at once (no
    collective happens here, so none waits for them).
    """
    from newsclf.run_state import process_rank

    if process_rank()[0] != 0:
        return config.run_dir() / "model"
    from newsclf import artifact
    from newsclf.calibration import AbstainThreshold, choose_abstain_threshold, fit_temperature, softmax
    from newsclf.model_card import write_model_card
    from newsclf.predict import Classifier
    from newsclf.scoring import score, write_figures

    model = model.float().eval()
    labels = config.labels
    meta = artifact.ModelMeta(
        labels=labels, input_mode=config.input_mode, max_length=config.max_length, max_chunks=config.max_chunks,
        pooling=config.pooling, backbone=config.backbone, vocab=config.vocab, train_fingerprint=fingerprint,
        dataset_dir="../dataset", config=config.to_dict(),
    )
    clf = Classifier(model, tokenizer, meta.to_dict())
    split_logits = {
        name: clf.logits(list(zip(dsd[name]["title"], dsd[name]["text"]))) for name in ("validation", "test") if len(dsd[name])
    }
    if "validation" in split_logits:
        refs = np.array([labels.index(lab) for lab in dsd["validation"]["label"]])
        meta.temperature = fit_temperature(split_logits["validation"], refs)
        val_probs = softmax(split_logits["validation"], meta.temperature)
        if config.abstain_threshold is not None:  # the config's threshold wins; still measured on validation
            abstain, source = AbstainThreshold.measure(val_probs, refs, config.abstain_threshold), "config"
        else:
            abstain, source = choose_abstain_threshold(val_probs, refs), "validation"
        meta.abstain_threshold = abstain.threshold
        meta.abstain = {"source": source, **abstain.summary()}
    metrics: dict[str, Any] = {"train_seconds": round(train_seconds, 1), "train_articles": len(dsd["train"])}
    if averaged_steps:
        metrics["averaged_steps"] = averaged_steps
    predictions: list[dict[str, Any]] = []
    figures: dict[str, Any] = {}
    for name, logits in split_logits.items():
        probs = softmax(logits, meta.temperature)
        split = dsd[name]
        scored = score(probs, split["label"], labels, threshold=meta.abstain_threshold, ids=split["id"],
                       titles=split["title"])
        metrics[name] = {**scored["metrics"], "ece": scored["ece"], "abstain": scored["abstain"]}
        if name == "test" or "test" not in split_logits:
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
    meta.metrics = metrics
    run_dir = config.run_dir()
    model_dir = run_dir / "model"
    # The dataset first: a model folder always points at splits that exist.
    dataset_tmp = Path(tempfile.mkdtemp(prefix=".dataset-tmp-", dir=run_dir))
    try:
        dsd.save_to_disk(str(dataset_tmp / "dataset"))
        artifact.make_readable(dataset_tmp)
        artifact.replace_dir(dataset_tmp / "dataset", run_dir / "dataset")
    finally:
        shutil.rmtree(dataset_tmp, ignore_errors=True)
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
    )
    log.info("saved %s", model_dir)
    return model_dir
