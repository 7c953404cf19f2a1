"""Benchmark: fine-tuning throughput, newsclf's training setup vs the plain Hugging Face Trainer.

Both run in the same process on the same articles, so the ratio is meaningful on a shared machine.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from benchmarks.common import articles, machine


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
    rows = articles(data, n_articles)
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
        "machine": machine(),
    }
