"""Issue 16's lever study: which of one run's candidate models would have scored best on dev?

For each run folder (``runs/<name>``, trained with ``average_from`` so the weight snapshots of the late
evaluations are in ``averaging/``) this scores on ../shared/gold/dev.jsonl, in fp32:

- ``shipped``: the saved model (the mean of the snapshots with ``average_from``);
- ``best_checkpoint``: the checkpoint the validation macro-F1 picked (what a run without averaging ships);
- ``step-N``: each snapshot alone;
- ``tfidf``: the TF-IDF baseline trained on the run's training split;
- ``stacked``: a logistic regression on [log p(model), log p(TF-IDF)] fitted on the run's validation split.

Run: ``python -m benchmarks.seed_study /work/runs16/reference-s1234 ...`` (writes bench/seed_study.json).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

DEV = "../shared/gold/dev.jsonl"


def _macro_f1(refs: list[str], pred: list[str], labels: list[str]) -> float:
    from newsclf.metrics import compute_metrics

    return round(float(compute_metrics([labels.index(x) for x in refs], [labels.index(x) for x in pred], labels)["macro_f1"]), 4)


def study(run: Path) -> dict[str, Any]:
    import numpy as np
    from datasets import load_from_disk
    from safetensors.torch import load_file
    from sklearn.linear_model import LogisticRegression
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from newsclf import artifact
    from newsclf.baseline import TfidfBaseline
    from newsclf.calibration import softmax
    from newsclf.data.loaders import load_articles
    from newsclf.modeling import freeze_mean_pool_layer
    from newsclf.predict import Classifier

    dsd = load_from_disk(str(run / "dataset"))
    meta = artifact.read_meta(run / "model")
    labels = list(meta.labels)
    dev = load_articles([DEV])
    dev_pairs = list(zip(dev["title"], dev["text"]))
    val_pairs = list(zip(dsd["validation"]["title"], dsd["validation"]["text"]))
    refs, val_refs = list(dev["label"]), list(dsd["validation"]["label"])
    out: dict[str, Any] = {"run": run.name}
    shipped = Classifier.from_dir(run / "model", precision="fp32")
    dev_logits = {"shipped": shipped.logits(dev_pairs)}
    val_logits = {"shipped": shipped.logits(val_pairs)}
    tokenizer = AutoTokenizer.from_pretrained(run / "model")
    ckpts = sorted((run / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    best = None
    if ckpts:
        state = json.loads((ckpts[-1] / "trainer_state.json").read_text())
        best = state.get("best_model_checkpoint")
    variants: list[tuple[str, Any]] = []
    if best and Path(best).exists():
        variants.append(("best_checkpoint", Path(best) / "model.safetensors"))
        out["best_checkpoint_step"] = int(Path(best).name.split("-")[1])
    for snap in sorted((run / "averaging").glob("step-*.safetensors"), key=lambda p: int(p.stem.split("-")[1])):
        variants.append((snap.stem, snap))
    for name, weights in variants:
        model = AutoModelForSequenceClassification.from_pretrained(ckpts[-1])
        model.load_state_dict(load_file(str(weights)))
        freeze_mean_pool_layer(model)
        clf = Classifier(model.float().eval(), tokenizer, meta.to_dict(), precision="fp32")
        dev_logits[name] = clf.logits(dev_pairs)
        val_logits[name] = clf.logits(val_pairs)
    scores = {name: _macro_f1(refs, [labels[i] for i in lg.argmax(1)], labels) for name, lg in dev_logits.items()}
    val_scores = {name: _macro_f1(val_refs, [labels[i] for i in lg.argmax(1)], labels) for name, lg in val_logits.items()}
    train = dsd["train"]
    tfidf = TfidfBaseline(labels, seed=42).fit([f"{t}\n{x}" for t, x in zip(train["title"], train["text"])],
                                               list(train["label"]))
    p_dev_t = tfidf.predict_proba([f"{t}\n{x}" for t, x in dev_pairs])
    p_val_t = tfidf.predict_proba([f"{t}\n{x}" for t, x in val_pairs])
    scores["tfidf"] = _macro_f1(refs, [labels[i] for i in p_dev_t.argmax(1)], labels)
    for name in ("shipped",):
        t = float(meta.temperature or 1.0)

        def feats(logits: Any, p_t: Any, t: float = t) -> Any:
            return np.hstack([np.log(np.clip(softmax(logits, t), 1e-6, 1)), np.log(np.clip(p_t, 1e-6, 1))])

        stack = LogisticRegression(C=1.0, max_iter=2000).fit(feats(val_logits[name], p_val_t),
                                                           [labels.index(x) for x in val_refs])
        scores[f"stacked_{name}"] = _macro_f1(refs, [labels[i] for i in stack.predict(feats(dev_logits[name], p_dev_t))],
                                              labels)
    out["dev_macro_f1"] = scores
    out["validation_macro_f1"] = val_scores
    metrics = json.loads((run / "model" / "metrics.json").read_text())
    out["averaged_steps"] = metrics.get("averaged_steps")
    out["train_seconds"] = metrics.get("train_seconds")
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--out", default="bench/seed_study.json")
    args = parser.parse_args(argv)
    results = [study(Path(r)) for r in args.runs]
    from benchmarks.common import write_result

    return write_result({"what": "dev macro-F1 of each run's candidate models (issue 16 levers)", "runs": results},
                        args.out)


if __name__ == "__main__":
    sys.exit(main())
