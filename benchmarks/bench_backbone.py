"""Benchmark: CPU fine-tuning and inference throughput of e5-small, full vs restricted vocabulary.

Each variant gets the same simple classifier (masked mean pooling + one linear layer), the same
self-written Chinese articles padded/truncated to ``max_length`` tokens, one warm-up batch, then a few
timed batches of: forward + backward + AdamW step (fine-tune) and forward only under ``inference_mode``
(inference). Run ``python -m benchmarks.bench_backbone --out bench.json`` from the repo root to print
and save the JSON (or ``python scripts/bench.py backbone``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Sequence

# Self-written sentences; joined into article-length texts so every article fills max_length tokens.
_SENTENCES = [
    "市应急管理局近日召开全市安全生产工作会议，部署开展重点行业领域隐患排查整治。",
    "会议强调，各级各部门要压紧压实安全责任，严防各类事故发生。",
    "区委理论学习中心组举行专题学习，深入学习贯彻党的创新理论。",
    "县文化馆举办非物质文化遗产展演活动，吸引众多市民前来观看。",
    "市政府常务会议研究优化营商环境、推动高质量发展等事项。",
    "消防救援支队走进社区和学校，普及火灾逃生和燃气安全知识。",
    "今年以来，全市新增城镇就业２．３万人，居民人均可支配收入稳步增长。",
    "图书馆推出“书香进万家”阅读推广活动，全年举办讲座一百余场。",
    "党员志愿者深入乡村开展便民服务，帮助群众解决急难愁盼问题。",
    "交通运输部门提醒，节假日期间请合理安排出行，注意行车安全。",
]


def _articles(n: int) -> list[str]:
    out = []
    for i in range(n):
        # rotate so the articles are not identical (identical rows would flatter nothing, but look odd)
        body = "".join(_SENTENCES[(i + j) % len(_SENTENCES)] for j in range(3 * len(_SENTENCES)))
        out.append(body)
    return out


def _bench_one(folder, texts: Sequence[str], max_length: int, batch_size: int, n_labels: int) -> dict:
    import torch
    from transformers import AutoModel, AutoTokenizer

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder)
    head = torch.nn.Linear(model.config.hidden_size, n_labels)
    params = list(model.parameters()) + list(head.parameters())
    optim = torch.optim.AdamW(params, lr=5e-5, weight_decay=0.01)
    enc = tok(list(texts), truncation=True, max_length=max_length, padding="max_length", return_tensors="pt")
    labels = torch.arange(len(texts)) % n_labels
    batches = [
        ({k: v[i : i + batch_size] for k, v in enc.items()}, labels[i : i + batch_size])
        for i in range(0, len(texts), batch_size)
    ]

    def logits(batch):
        hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return head((hidden * mask).sum(1) / mask.sum(1))

    def train_step(batch, y):
        loss = torch.nn.functional.cross_entropy(logits(batch), y)
        loss.backward()
        optim.step()
        optim.zero_grad(set_to_none=True)

    # Per-batch times and their minimum (as timeit does): every batch does the same work, the machine is
    # shared, and a batch slowed by a neighbour's job measures the neighbour, not the model.
    model.train()
    train_step(*batches[0])  # warm-up: allocates optimizer state and grads
    train_times = []
    for batch, y in batches:
        start = time.perf_counter()
        train_step(batch, y)
        train_times.append(time.perf_counter() - start)

    model.eval()
    infer_times = []
    with torch.inference_mode():
        logits(batches[0][0])  # warm-up
        for batch, _ in batches:
            start = time.perf_counter()
            logits(batch)
            infer_times.append(time.perf_counter() - start)
    size = len(batches[0][1])
    return {
        "folder": str(folder),
        "vocab_size": model.config.vocab_size,
        "parameters": sum(p.numel() for p in model.parameters()),
        "tokens_per_article": int(enc["attention_mask"].sum(1).float().mean()),
        "train_articles_per_s": round(size / min(train_times), 3),
        "infer_articles_per_s": round(size / min(infer_times), 3),
        "train_batch_seconds": [round(t, 3) for t in train_times],
        "infer_batch_seconds": [round(t, 3) for t in infer_times],
    }


def bench_backbone(n_articles: int = 24, max_length: int = 256, texts: Sequence[str] | None = None, *,
                   batch_size: int = 8, num_threads: int = 2, n_labels: int = 5) -> dict:
    """Measure fine-tune and inference articles/s of e5-small with the full and the restricted vocabulary.

    ``texts`` (default: built-in self-written Chinese articles) are cycled to ``n_articles``; each is cut or
    padded to ``max_length`` tokens. Torch runs on ``num_threads`` threads (restored afterwards). Returns a
    JSON-able dict with both variants' numbers and restricted/full ratios (> 1 means restricted is faster).
    Throughput comes from the fastest batch (all do the same work), and the per-batch seconds are included, because the
    machine may be shared.
    """
    import torch

    from newsclf.backbones import resolve

    if n_articles < batch_size or n_articles % batch_size:
        raise ValueError(f"n_articles must be a positive multiple of batch_size ({batch_size}), found {n_articles}")
    pool = list(texts) if texts is not None else _articles(n_articles)
    if not pool:
        raise ValueError("texts is empty; pass some article texts or None for the built-in ones")
    articles = [pool[i % len(pool)] for i in range(n_articles)]
    old_threads = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        results = {v: _bench_one(resolve("e5-small", vocab=v), articles, max_length, batch_size, n_labels)
                   for v in ("full", "restricted")}
    finally:
        torch.set_num_threads(old_threads)
    full, restricted = results["full"], results["restricted"]
    return {
        "benchmark": "e5-small full vs restricted vocabulary, mean-pooled linear head, fp32 CPU",
        "torch": torch.__version__,
        "machine": platform.machine(),
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
        "threads": num_threads,
        "max_length": max_length,
        "batch_size": batch_size,
        "n_articles": n_articles,
        "full": full,
        "restricted": restricted,
        "ratio_restricted_over_full": {
            "train": round(restricted["train_articles_per_s"] / full["train_articles_per_s"], 3),
            "infer": round(restricted["infer_articles_per_s"] / full["infer_articles_per_s"], 3),
            "parameters": round(restricted["parameters"] / full["parameters"], 3),
        },
    }


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: print the benchmark JSON and optionally write it to ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-articles", type=int, default=24)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", help="write the JSON here as well")
    args = parser.parse_args(argv)
    result = bench_backbone(args.n_articles, args.max_length, num_threads=args.threads)
    text = json.dumps(result, indent=2, ensure_ascii=False)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    main()
