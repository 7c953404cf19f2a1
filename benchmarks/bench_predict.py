"""Benchmark: inference with ``newsclf.predict`` (each precision) vs ``transformers.pipeline``.

Both run in the same process on the same saved model and articles, so the ratio is meaningful on a
shared machine.
"""

from __future__ import annotations

import json
import resource
import statistics
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import articles, best_rate, machine


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
    rows = articles(data, n_articles)
    items = [{"title": r["title"], "text": r["text"]} for r in rows]
    texts = [f"{r['title']}\n{r['text']}" for r in rows]
    out: dict[str, Any] = {"articles": len(rows), "machine": machine()}

    pipe = pipeline("text-classification", model=str(model), device=-1)
    # The pipeline truncates at the model's own input length (256 for our configs), so both paths read the
    # same tokens and agreement measures the runtime, not a different cut of the article.
    meta = json.loads((Path(model) / "newsclf.json").read_text(encoding="utf-8"))
    max_length = int(meta.get("max_length", 256))
    kwargs = {"batch_size": 16, "truncation": True, "max_length": max_length}
    pipe(texts[:16], **kwargs)  # warm-up
    pipe_rate, pipe_out = best_rate(partial(pipe, texts, **kwargs), len(texts), repeats)
    pipe_labels = [r["label"] for r in pipe_out]
    out["pipeline_fp32_batch16"] = {"articles_per_s": round(pipe_rate, 2), "max_length": max_length, "repeats": repeats}
    del pipe

    golds = None
    if gold:
        gds = load_articles([gold])
        golds = (list(zip(gds["title"], gds["text"])), list(gds["label"]))
    pairs = [(it["title"], it["text"]) for it in items]
    # "auto" is what newsclf.predict runs by default (OpenVINO int8 with the extra installed).
    for precision in ("fp32", "bf16", "int8", "auto"):
        clf = Classifier.from_dir(model, precision=precision)
        clf.predict(items[:16])
        rate, _results = best_rate(partial(clf.predict, items, batch_size=16), len(items), repeats)
        # The transformer's own top label, not the answered one: the pipeline neither abstains (label "other"
        # below the threshold) nor blends in the TF-IDF baseline, and agreement measures the runtimes.
        final, alone = clf.probability_parts(pairs, batch_size=16, exact_alone=True)
        labels = [clf.labels[i] for i in (final if alone is None else alone).argmax(axis=1)]
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
            probs, alone = clf.probability_parts(golds[0], batch_size=16, exact_alone=True)
            for key, p in (("gold_macro_f1", probs), ("gold_macro_f1_transformer_alone", alone)):
                if p is not None:
                    entry[key] = round(compute_metrics(golds[1], [clf.labels[i] for i in p.argmax(1)], clf.labels)["macro_f1"], 4)
        entry["backend"] = clf.backend
        out[f"newsclf_{precision}"] = entry
        del clf
        torch.set_num_threads(torch.get_num_threads())
    out["peak_rss_mb_this_process"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    out["peak_rss_mb_predict_alone"] = _predict_rss(model, items)
    return out


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
