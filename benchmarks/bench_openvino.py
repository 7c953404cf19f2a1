"""Benchmark: ``newsclf.predict`` (default precision) against a stock OpenVINO conversion of the same model.

One process, one saved model, the same articles for every path, three interleaved rounds (median counts):

- ``pipeline_fp32``: ``transformers.pipeline``, batches of 16, truncated at the model's max_length;
- ``newsclf_torch_fp32``: newsclf's PyTorch fp32 path, the reference for label agreement (one round);
- ``newsclf_default``: ``newsclf.load(model)`` as a user gets it (with the ``openvino`` extra: OpenVINO int8
  or bf16, see ``newsclf/ov_backend.py``);
- ``openvino_stock_bf16`` / ``openvino_stock_int8``: what OpenVINO's documentation gives a user: the saved
  Hugging Face model through ``openvino.convert_model``, compiled with the bf16 inference hint; the int8
  one quantised by NNCF (transformer preset, 64 calibration articles that are not among the timed ones).
  Each runs synchronously (the default LATENCY hint) and with the THROUGHPUT hint and an
  ``AsyncInferQueue``; the faster counts as the stock figure. Inputs come from the model's own tokenizer,
  length-sorted batches of 16, tokenisation inside the timed region, as for newsclf.

Also: single-article latency of the default path, dev macro-F1 of fp32 and default (``--gold``), the peak
RSS of a fresh process that loads the default path and tags the articles, and per-op-type time of the
stock int8 and newsclf graphs (OpenVINO's own performance counters).

    python -m benchmarks.bench_openvino --model runs/reference/model --data ../shared/gold/dev.jsonl \\
        --gold ../shared/gold/dev.jsonl --out bench/openvino.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.bench_predict import _predict_rss
from benchmarks.common import machine, write_result


def _rows(path: str) -> list[dict[str, str]]:
    from newsclf.data.loaders import load_articles

    ds = load_articles([path])
    return [{"title": t, "text": x, "label": lab} for t, x, lab in zip(ds["title"], ds["text"], ds["label"])]


class StockOpenVINO:
    """The saved model as OpenVINO's docs convert and run it; inputs from the model's tokenizer."""

    def __init__(self, model_dir: str, calibration: list[str] | None, max_length: int, throughput: bool):
        import openvino as ov
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.tok = AutoTokenizer.from_pretrained(model_dir)
        self.max_length = max_length
        hf = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
        enc = self.tok(["示例"] * 2, return_tensors="pt", padding=True)
        with torch.no_grad():
            graph = ov.convert_model(hf, example_input={"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]})
        self.names = [p.get_any_name() for p in graph.inputs]
        if calibration:
            import nncf

            def feed(text: str) -> dict[str, np.ndarray]:
                e = self.tok([text], truncation=True, max_length=max_length, return_tensors="np")
                return {k: e[k] for k in self.names}

            graph = nncf.quantize(graph, nncf.Dataset(calibration, feed), model_type=nncf.ModelType.TRANSFORMER,
                                  subset_size=len(calibration))
        self.graph = graph
        self.core = ov.Core()
        self.throughput = throughput
        hint = {"INFERENCE_PRECISION_HINT": "bf16", "PERFORMANCE_HINT": "THROUGHPUT" if throughput else "LATENCY"}
        self.compiled = self.core.compile_model(graph, "CPU", hint)
        self.request = self.compiled.create_infer_request()
        if throughput:
            self.queue = ov.AsyncInferQueue(self.compiled, self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))

    def logits(self, texts: list[str], batch_size: int = 16) -> np.ndarray:
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out: list[Any] = [None] * len(texts)
        batches = []
        for s in range(0, len(order), batch_size):
            idx = order[s : s + batch_size]
            e = self.tok([texts[i] for i in idx], truncation=True, max_length=self.max_length, padding=True, return_tensors="np")
            batches.append((idx, {k: e[k] for k in self.names}))
        if not self.throughput:
            for idx, feed in batches:
                for i, row in zip(idx, self.request.infer(feed)[0]):
                    out[i] = np.array(row)
        else:
            def done(req: Any, idx: list[int]) -> None:
                for i, row in zip(idx, req.get_output_tensor(0).data):
                    out[i] = np.array(row)

            self.queue.set_callback(done)
            for idx, feed in batches:
                self.queue.start_async(feed, userdata=idx)
            self.queue.wait_all()
        return np.stack(out)


def _profile(compiled_request: Any, feed: Any) -> dict[str, float]:
    """Milliseconds per OpenVINO op type for one inference (performance counters on)."""
    compiled_request.infer(feed)
    per: dict[str, float] = defaultdict(float)
    for info in compiled_request.profiling_info:
        per[info.node_type] += info.real_time.total_seconds() * 1000
    total = sum(per.values())
    top = dict(sorted(per.items(), key=lambda kv: -kv[1])[:8])
    return {"total_ms": round(total, 2), **{k: round(v, 2) for k, v in top.items()}}


def _p50_p95(ms: list[float]) -> dict[str, float]:
    return {"p50_ms": round(statistics.median(ms), 1), "p95_ms": round(float(np.percentile(ms, 95)), 1)}


def _single_frame(default: Any, stock: dict[str, StockOpenVINO], items: list[dict[str, str]],
                  texts: list[str]) -> dict[str, Any]:
    """What bounds single-article latency on this machine, on the articles the summary times one by one:
    the stock runtimes' own single-article latency (tokenising included, latency hint), and the one graph
    call newsclf's default path makes for each article alone (its encoded rows, no tokenising, no baseline,
    no recheck): no code around that call can take an article below it."""
    frame: dict[str, Any] = {}
    for name in ("openvino_stock_int8_latency", "openvino_stock_bf16_latency"):
        s = stock[name]
        s.logits(texts[:1], batch_size=1)  # the dynamic graph's first call at a new shape
        lat = []
        for text in texts:
            t = time.perf_counter()
            s.logits([text], batch_size=1)
            lat.append(1000 * (time.perf_counter() - t))
        frame[name] = _p50_p95(lat)
    if default.backend == "openvino":
        from newsclf.inputs import pad_rows

        fwd = default._runtime
        pad = default.tokenizer.pad_token_id or 0
        lat = []
        for it in items:
            for row in default.encode(it["title"], it["text"]):
                ids, mask = pad_rows([row], pad)
                t = time.perf_counter()
                fwd._lone(ids, mask)
                lat.append(1000 * (time.perf_counter() - t))
        frame["newsclf_one_row_graph_alone"] = {**_p50_p95(lat), "rows": len(lat),
                                                "graph": "fp32 weights, bf16 hint" if fwd.lone_on_fallback else
                                                f"{default.precision}"}
    return frame


def _gflop_per_article(model_dir: str, tokens: float) -> float:
    """Multiply-adds x 2 of the encoder at ``tokens`` per article (matmuls and attention; the rest is small)."""
    cfg = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))
    h, f, layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    per_token_layer = 2 * (4 * h * h + 2 * h * f) + 2 * 2 * tokens * h
    return round(layers * tokens * per_token_layer / 1e9, 2)


def bench_openvino(model: str, data: str, *, n_articles: int = 200, n_calibration: int = 64, rounds: int = 3,
                   single: int = 50, gold: str | None = None) -> dict[str, Any]:
    import openvino as ov
    import torch
    from transformers import pipeline
    from transformers.utils import logging as hf_logging

    import newsclf
    from newsclf.metrics import compute_metrics
    from newsclf.predict import Classifier

    hf_logging.set_verbosity_error()
    rows = _rows(data)
    if len(rows) < n_articles + n_calibration:
        raise SystemExit(f"need {n_articles + n_calibration} articles in {data}, found {len(rows)}")
    timed, cal_rows = rows[:n_articles], rows[n_articles : n_articles + n_calibration]
    items = [{"title": r["title"], "text": r["text"]} for r in timed]
    texts = [f"{r['title']}\n{r['text']}" for r in timed]
    max_length = int(json.loads((Path(model) / "newsclf.json").read_text(encoding="utf-8")).get("max_length", 256))
    out: dict[str, Any] = {"model": str(model), "articles": len(items), "rounds": rounds, "machine": machine(),
                           "openvino": ov.__version__}

    fp32 = Classifier.from_dir(model, precision="fp32", backend="torch")
    final, alone = fp32.probability_parts([(i["title"], i["text"]) for i in items])
    # newsclf's paths are compared with newsclf fp32 as users get it (with the TF-IDF blend when the model
    # has one); the stock runtimes and the pipeline run the transformer alone, so with its fp32 labels.
    ref_labels = final.argmax(1)
    ref_alone = (final if alone is None else alone).argmax(1)
    t = time.perf_counter()
    default = newsclf.load(model)
    # With an empty $NEWSCLF_CACHE this includes the one-time conversion (and int8 calibration and check).
    out["newsclf_default_load_s"] = round(time.perf_counter() - t, 1)
    out["newsclf_default_runs"] = f"{default.backend} {default.precision}"
    if default.backend == "openvino":
        out["newsclf_default_conversion"] = {k: v for k, v in default._runtime.record.items() if k != "files"}
    pipe = pipeline("text-classification", model=str(model), device=-1)
    pipe_kw = {"batch_size": 16, "truncation": True, "max_length": max_length}
    stock = {
        "openvino_stock_bf16_latency": StockOpenVINO(model, None, max_length, throughput=False),
        "openvino_stock_bf16_throughput": StockOpenVINO(model, None, max_length, throughput=True),
    }
    cal_texts = [f"{r['title']}\n{r['text']}" for r in cal_rows]
    stock["openvino_stock_int8_latency"] = StockOpenVINO(model, cal_texts, max_length, throughput=False)
    stock["openvino_stock_int8_throughput"] = StockOpenVINO(model, cal_texts, max_length, throughput=True)

    def run_default() -> np.ndarray:
        res = default.predict(items)
        return np.array([default.labels.index(max(r["scores"], key=r["scores"].get)) for r in res])

    paths = {
        "pipeline_fp32": lambda: np.array([fp32.labels.index(r["label"]) for r in pipe(texts, **pipe_kw)]),
        "newsclf_default": run_default,
        **{name: (lambda s=s: s.logits(texts).argmax(1)) for name, s in stock.items()},
    }
    if default.baseline is not None and default.backend == "openvino":
        # The same runtime without the blend: what the TF-IDF baseline costs on top of the transformer.
        bare = Classifier(None, default.tokenizer, {**default.meta, "blend": None}, runtime=default._runtime,
                          precision=default.precision)
        paths["newsclf_default_without_blend"] = lambda: np.array(
            [bare.labels.index(max(r["scores"], key=r["scores"].get)) for r in bare.predict(items)]
        )
    for fn in paths.values():  # warm-up: first-call compilation, caches
        fn()
    rates: dict[str, list[float]] = defaultdict(list)
    labels: dict[str, np.ndarray] = {}
    names = list(paths)
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:  # rotate the order each round
            # Idle first: torch's OpenMP workers spin for a while after a torch path (the pipeline) ends and
            # would steal the cores from whichever path runs next.
            time.sleep(1.0)
            t = time.perf_counter()
            labels[name] = paths[name]()
            rates[name].append(len(items) / (time.perf_counter() - t))
    for name in names:
        ref = ref_labels if name == "newsclf_default" else ref_alone
        out[name] = {"articles_per_s_median": round(statistics.median(rates[name]), 2),
                     "articles_per_s_runs": [round(x, 2) for x in rates[name]],
                     "agreement_with_newsclf_fp32": round(float((labels[name] == ref).mean()), 4)}
    pipe_rate = out["pipeline_fp32"]["articles_per_s_median"]
    best_stock = max(stock, key=lambda n: out[n]["articles_per_s_median"])
    out["blend"] = default.blend
    ours = out["newsclf_default"]["articles_per_s_median"]
    out["summary"] = {
        "newsclf_default_articles_per_s": ours,
        "best_stock_openvino": best_stock,
        "best_stock_articles_per_s": out[best_stock]["articles_per_s_median"],
        "ratio_vs_best_stock_openvino": round(ours / out[best_stock]["articles_per_s_median"], 3),
        "ratio_vs_pipeline": round(ours / pipe_rate, 2),
        "agreement_with_newsclf_fp32": out["newsclf_default"]["agreement_with_newsclf_fp32"],
    }

    # The first full-length one-row call compiles the one-row graph (~0.5 s, once per process). `serve`
    # pays it before it reports ready (Classifier.warm_up); timed apart here, not in every article's latency.
    t = time.perf_counter()
    default.warm_up()
    out["summary"]["single_warm_up_ms"] = round(1000 * (time.perf_counter() - t), 1)
    lat = []
    for it in items[:single]:
        t = time.perf_counter()
        default.predict(it)
        lat.append(1000 * (time.perf_counter() - t))
    out["summary"]["single_p50_ms"] = round(statistics.median(lat), 1)
    out["summary"]["single_p95_ms"] = round(float(np.percentile(lat, 95)), 1)
    out["single_article"] = _single_frame(default, stock, items[:single], texts[:single])

    if gold:
        g = _rows(gold)
        pairs, golds = [(r["title"], r["text"]) for r in g], [r["label"] for r in g]
        for name, clf in (("newsclf_torch_fp32", fp32), ("newsclf_default", default)):
            pred = clf.probabilities(pairs).argmax(1)
            out["summary"][f"{name}_dev_macro_f1"] = round(compute_metrics(golds, [clf.labels[i] for i in pred], clf.labels)["macro_f1"], 4)
        out["summary"]["gold"] = gold
        out["summary"]["gold_articles"] = len(g)

    # Where the time goes: one batch of 16 full-length articles, per op type.
    long_items = sorted(range(len(texts)), key=lambda i: -len(texts[i]))[:16]
    stock_int8 = stock["openvino_stock_int8_latency"]
    e = stock_int8.tok([texts[i] for i in long_items], truncation=True, max_length=max_length, padding=True, return_tensors="np")
    prof_cfg = {"INFERENCE_PRECISION_HINT": "bf16", "PERF_COUNT": True}
    req = stock_int8.core.compile_model(stock_int8.graph, "CPU", prof_cfg).create_infer_request()
    out["profile_batch16_ms"] = {"openvino_stock_int8": _profile(req, {k: e[k] for k in stock_int8.names})}
    if default.backend == "openvino":
        fwd = default._runtime
        ids = np.array(e["input_ids"][:8]) if e["input_ids"].shape[1] == max_length else None
        if ids is not None:
            graph = fwd.graph.clone()
            graph.reshape({0: [8, max_length, fwd.table.shape[1]], 1: [8, max_length]})
            r2 = fwd.core.compile_model(graph, "CPU", {**fwd.config, "PERF_COUNT": True}).create_infer_request()
            p8 = _profile(r2, [fwd.table[ids], np.array(e["attention_mask"][:8])])
            out["profile_batch16_ms"]["newsclf_default"] = {k: round(2 * v, 2) for k, v in p8.items()}  # two batches of 8
    tokens = float(np.mean([min(max_length, len(default.encode(i["title"], i["text"])[0])) for i in items]))
    out["frame"] = {"mean_tokens_per_article": round(tokens, 1),
                    "gflop_per_article_encoder": _gflop_per_article(model, tokens),
                    "gflop_per_s_at_newsclf_default": round(_gflop_per_article(model, tokens) * ours, 1)}
    pipe = stock = None  # free their memory before the RSS subprocess
    torch.set_num_threads(torch.get_num_threads())
    out["summary"]["peak_rss_mb_predict_process"] = _predict_rss(model, items)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="runs/reference/model")
    p.add_argument("--data", default="../shared/gold/dev.jsonl", help="articles to time (the first --n) and calibrate on (the next 64)")
    p.add_argument("--gold", default=None, help="labelled file for macro-F1 of fp32 and the default path")
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", default="bench/openvino.json")
    args = p.parse_args(argv)
    return write_result(bench_openvino(args.model, args.data, n_articles=args.n, rounds=args.rounds, gold=args.gold), args.out)


if __name__ == "__main__":
    raise SystemExit(main())
