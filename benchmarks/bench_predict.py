"""Benchmarks: newsclf against the plain Hugging Face way of doing the same thing, in the same run.

Speed is measured here and written to JSON, never asserted in tests: timings on shared 2-core machines
vary too much for a pass/fail line, but a ratio taken in one run on the same articles is meaningful.
"""

from __future__ import annotations

import json
import platform
import resource
import statistics
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np


def _machine() -> dict[str, Any]:
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }


def _articles(data: list[str] | None, n: int) -> list[dict[str, str]]:
    from newsclf.data.loaders import load_articles

    ds = load_articles(data or ["embedded"])
    rows = [{"title": t, "text": x, "label": lab} for t, x, lab in zip(ds["title"], ds["text"], ds["label"])]
    reps = -(-n // len(rows))
    return (rows * reps)[:n]


def bench_train(
    *, data: list[str] | None = None, n_articles: int = 96, max_length: int = 256, batch_size: int = 16,
    steps: int = 6, warmup: int = 2, backbone: str = "e5-small",
) -> dict[str, Any]:
    """Fine-tuning articles/s: plain HF Trainer (stock model, full vocab, fixed padding, fp32) vs newsclf's setup.

    Both run the HF ``Trainer`` for ``steps`` optimisation steps after ``warmup`` steps on the same
    articles at the same max length and batch size; only the time of the measured steps counts.
    """
    import torch
    from datasets import Dataset
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )
    from transformers.utils import logging as hf_logging

    from newsclf.backbones import resolve
    from newsclf.config import DEFAULT_LABELS
    from newsclf.inputs import encode_article
    from newsclf.modeling import build_model

    hf_logging.set_verbosity_error()
    rows = _articles(data, n_articles)
    label2id = {lab: i for i, lab in enumerate(DEFAULT_LABELS)}

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.times: list[float] = []

        def on_step_end(self, *_: Any, **__: Any) -> None:
            self.times.append(time.perf_counter())

    def run(model: Any, dataset: Any, collator: Any, *, bf16: bool, sampling: str) -> float:
        timer = StepTimer()
        args = TrainingArguments(
            output_dir="/tmp/newsclf-bench", max_steps=steps + warmup, per_device_train_batch_size=batch_size,
            learning_rate=5e-5, bf16=bf16, use_cpu=True, report_to="none", save_strategy="no",
            disable_tqdm=True, train_sampling_strategy=sampling, logging_strategy="no", seed=0,
            optim="adamw_torch_fused" if bf16 else "adamw_torch",
        )
        Trainer(model=model, args=args, train_dataset=dataset, data_collator=collator, callbacks=[timer]).train()
        elapsed = timer.times[-1] - timer.times[warmup - 1]  # from the end of the warm-up steps
        return steps * batch_size / elapsed

    # Plain: what the Hugging Face fine-tuning tutorial does.
    full = resolve(backbone)
    tok = AutoTokenizer.from_pretrained(full)
    texts = [f"{r['title']}\n{r['text']}" for r in rows]
    enc = tok(texts, truncation=True, max_length=max_length, padding="max_length")
    plain_ds = Dataset.from_dict({**enc, "labels": [label2id[r["label"]] for r in rows]})
    torch.manual_seed(0)
    plain_model = AutoModelForSequenceClassification.from_pretrained(full, num_labels=len(DEFAULT_LABELS))
    plain = run(plain_model, plain_ds, None, bf16=False, sampling="random")
    del plain_model

    # newsclf: restricted vocabulary, mean-pool head, shared input builder, dynamic padding,
    # length-grouped batches, bf16 autocast.
    restricted = resolve(backbone, vocab="restricted")
    rtok = AutoTokenizer.from_pretrained(restricted)
    ids = [encode_article(rtok, r["title"], r["text"], max_length=max_length)[0] for r in rows]
    ours_ds = Dataset.from_dict(
        {"input_ids": ids, "labels": [label2id[r["label"]] for r in rows], "length": [len(i) for i in ids]}
    )
    ours_model = build_model(restricted, DEFAULT_LABELS)
    ours = run(ours_model, ours_ds, DataCollatorWithPadding(rtok), bf16=True, sampling="group_by_length")
    return {
        "what": "fine-tuning throughput, articles/s (forward+backward+AdamW), same articles, max length and batch",
        "max_length": max_length, "batch_size": batch_size, "steps_measured": steps, "articles": len(rows),
        "mean_tokens": round(float(np.mean([len(i) for i in ids])), 1),
        "plain_hf_trainer": round(plain, 3), "newsclf": round(ours, 3), "ratio": round(ours / plain, 2),
        "machine": _machine(),
    }


def bench_predict(
    model: str | Path, *, data: list[str] | None = None, n_articles: int = 128, single: int = 30,
    gold: str | None = None, repeats: int = 3,
) -> dict[str, Any]:
    """Inference: ``newsclf.predict`` (each precision) vs ``transformers.pipeline`` on the same saved model.

    Each batch pass runs ``repeats`` times and the best rate counts, for the pipeline and newsclf alike: on
    shared machines a neighbour's burst can only slow a pass down. Reports batch articles/s, single-article
    p50/p95 latency, label agreement with the pipeline, and (with ``gold``) macro-F1 of each path on those
    labelled articles, plus the process's peak RSS.
    """
    import torch
    from transformers import pipeline
    from transformers.utils import logging as hf_logging

    from newsclf.data.loaders import load_articles
    from newsclf.metrics import compute_metrics
    from newsclf.predict import Classifier

    hf_logging.set_verbosity_error()
    rows = _articles(data, n_articles)
    items = [{"title": r["title"], "text": r["text"]} for r in rows]
    texts = [f"{r['title']}\n{r['text']}" for r in rows]
    out: dict[str, Any] = {"articles": len(rows), "machine": _machine()}

    pipe = pipeline("text-classification", model=str(model), device=-1)
    # The pipeline truncates at the model's own input length (256 for our configs), so both paths read the
    # same tokens and agreement measures the runtime, not a different cut of the article.
    meta = json.loads((Path(model) / "newsclf.json").read_text(encoding="utf-8"))
    max_length = int(meta.get("max_length", 256))
    kwargs = {"batch_size": 16, "truncation": True, "max_length": max_length}
    pipe(texts[:16], **kwargs)  # warm-up
    pipe_rate, pipe_out = _best_rate(partial(pipe, texts, **kwargs), len(texts), repeats)
    pipe_labels = [r["label"] for r in pipe_out]
    out["pipeline_fp32_batch16"] = {"articles_per_s": round(pipe_rate, 2), "max_length": max_length, "repeats": repeats}
    del pipe

    golds = None
    if gold:
        gds = load_articles([gold])
        golds = (list(zip(gds["title"], gds["text"])), list(gds["label"]))
    for precision in ("fp32", "bf16", "int8"):
        clf = Classifier.from_dir(model, precision=precision)
        clf.predict(items[:16])
        rate, results = _best_rate(partial(clf.predict, items, batch_size=16), len(items), repeats)
        labels = [r["label"] for r in results]
        lat = []
        for it in items[:single]:
            t = time.perf_counter()
            clf.predict(it)
            lat.append(1000 * (time.perf_counter() - t))
        entry = {
            "articles_per_s": round(rate, 2),
            "speedup_vs_pipeline": round(rate / pipe_rate, 2),
            "agreement_with_pipeline": round(float(np.mean([a == b for a, b in zip(labels, pipe_labels)])), 4),
            "single_p50_ms": round(statistics.median(lat), 1),
            "single_p95_ms": round(float(np.percentile(lat, 95)), 1),
        }
        if golds:
            probs = clf.probabilities(golds[0], batch_size=16)
            entry["gold_macro_f1"] = round(compute_metrics(golds[1], [clf.labels[i] for i in probs.argmax(1)], clf.labels)["macro_f1"], 4)
        out[f"newsclf_{precision}"] = entry
        del clf
        torch.set_num_threads(torch.get_num_threads())
    out["peak_rss_mb_this_process"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    out["peak_rss_mb_predict_alone"] = _predict_rss(model, items)
    return out


def _best_rate(run: Any, n: int, repeats: int) -> tuple[float, Any]:
    """Best articles/s of ``repeats`` calls of ``run`` (which handles ``n`` articles) and its last output."""
    best, result = 0.0, None
    for _ in range(max(1, repeats)):
        t = time.perf_counter()
        result = run()
        best = max(best, n / (time.perf_counter() - t))
    return best, result


def _predict_rss(model: str | Path, items: list[dict[str, str]]) -> float:
    """Peak RSS of a fresh process that only loads the model (default precision) and tags ``items``."""
    import subprocess
    import sys
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as f:
        json.dump(items, f, ensure_ascii=False)
    code = (
        "import json; import newsclf; "
        f"items = json.load(open({f.name!r}, encoding='utf-8')); "
        f"newsclf.predict(items, model={str(model)!r}); "
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork+exec.
        "print([int(x.split()[1]) for x in open('/proc/self/status') if x.startswith('VmHWM')][0])"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    Path(f.name).unlink()
    return round(int(res.stdout.split()[-1]) / 1024, 1)
