"""Benchmark: does reading what ``suggest`` queues beat reading at random?

Simulated annotation on the shared corpus. The pool is every corpus article that one of our hand-label
files labels (the oracle answers with that hand label); it starts with rules-only labels (the shipped
corpus rules and lexicons, no gold; the labeller's abstentions are unlabelled). In rounds of ``--step``
articles up to ``--budget``, a strategy buys labels: ``suggest`` (``newsclf.suggest.rank_candidates`` on
the current labels, bought ones counted as gold) or ``random`` (uniform among the unbought). After each
round the TF-IDF baseline is retrained on the pool's current labels and scored on ../shared/gold/dev.jsonl
(macro-F1). Three seeds; the seed drives the random draws, the folds and the tie-breaks.

Target (issue 14): at 300 labels, suggest's mean gain over rules-only >= 1.5x random's.
Run: ``python -m benchmarks.bench_active_learning`` (writes bench/active_learning.json and .png).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

DEV = "../shared/gold/dev.jsonl"


def _pool(cfg: Any) -> dict[str, Any]:
    """The pool's ids, titles, texts, rules-only labels and sources, and the oracle (hand) labels."""
    from dataclasses import replace

    from newsclf.data.gold import load_articles_for_labelling, load_gold
    from newsclf.data.labeling import label_articles

    oracle = {gid: lab for gid, (lab, _) in load_gold(cfg.gold, cfg.labels).items()}
    rules_only = replace(cfg, gold=[])
    ds = load_articles_for_labelling(cfg)
    ds = ds.filter(lambda i: str(i) in oracle, input_columns="id")
    ds = label_articles(ds, rules_only)
    return {"ids": [str(x) for x in ds["id"]], "titles": list(ds["title"]), "texts": list(ds["text"]),
            "rules": list(ds["label"]), "sources": list(ds["label_source"]),
            "truth": [oracle[str(x)] for x in ds["id"]]}


def _dev(cfg: Any) -> tuple[list[str], list[str]]:
    from newsclf.config import REPO_DIR
    from newsclf.data.loaders import load_articles

    path = Path(DEV) if Path(DEV).exists() else (REPO_DIR / DEV if REPO_DIR else Path(DEV))
    ds = load_articles([str(path)])
    return [f"{t}\n{x}" for t, x in zip(ds["title"], ds["text"])], list(ds["label"])


def _score(pool: dict[str, Any], current: list[str | None], dev: tuple[list[str], list[str]], labels: list[str],
           seed: int) -> float:
    from newsclf.baseline import TfidfBaseline
    from newsclf.metrics import compute_metrics

    keep = [i for i, lab in enumerate(current) if lab is not None]
    model = TfidfBaseline(labels, seed=seed).fit(
        [f"{pool['titles'][i]}\n{pool['texts'][i]}" for i in keep], [current[i] for i in keep])
    pred = model.predict(dev[0])
    m = compute_metrics([labels.index(x) for x in dev[1]], [labels.index(x) for x in pred], labels)
    return round(float(m["macro_f1"]), 4)


def run_strategy(strategy: str, pool: dict[str, Any], dev: Any, labels: list[str], *, seed: int, step: int,
                 budget: int, folds: int, quota: bool = True, weights: dict[str, float] | None = None) -> dict[str, Any]:
    import numpy as np

    from newsclf.suggest import rank_candidates

    n = len(pool["ids"])
    current = list(pool["rules"])
    sources = list(pool["sources"])
    bought: set[int] = set()
    curve = [{"labels": 0, "macro_f1": _score(pool, current, dev, labels, seed), "changed": 0}]
    rng = np.random.default_rng(seed)
    index = {gid: i for i, gid in enumerate(pool["ids"])}
    reasons: dict[str, int] = {}
    while len(bought) < budget:
        if strategy == "random":
            free = np.array(sorted(set(range(n)) - bought))
            picks = rng.choice(free, size=min(step, len(free)), replace=False).tolist()
        else:
            queue = rank_candidates(pool["ids"], pool["titles"], pool["texts"], current, sources, labels, n=step,
                                    seed=seed, folds=folds, quota=quota, weights=weights)
            picks = [index[r["id"]] for r in queue]
            for r in queue:
                reasons[r["reason"]] = reasons.get(r["reason"], 0) + 1
        for i in picks:
            bought.add(i)
            current[i] = pool["truth"][i]
            sources[i] = "gold"
        changed = sum(pool["rules"][i] != pool["truth"][i] for i in bought)
        curve.append({"labels": len(bought), "macro_f1": _score(pool, current, dev, labels, seed),
                      "changed": changed})
        print(f"{strategy} seed {seed}: {len(bought)} labels -> {curve[-1]['macro_f1']} ({changed} rule labels "
              "corrected or added)", file=sys.stderr)
    return {"curve": curve, "reasons": reasons, "current": current}


def bench_active_learning(*, seeds: tuple[int, ...] = (42, 7, 1234), step: int = 100, budget: int = 500,
                          folds: int = 5, out_png: str | None = "bench/active_learning.png") -> dict[str, Any]:
    import numpy as np

    from newsclf.config import load_config

    t0 = time.perf_counter()
    cfg = load_config("reference")
    labels = list(cfg.labels)
    pool = _pool(cfg)
    dev = _dev(cfg)
    runs: dict[str, dict[int, Any]] = {"suggest": {}, "random": {}}
    for seed in seeds:
        for strategy in runs:
            runs[strategy][seed] = run_strategy(strategy, pool, dev, labels, seed=seed, step=step, budget=budget,
                                                folds=folds)
    points = [p["labels"] for p in runs["random"][seeds[0]]["curve"]]
    summary: dict[str, Any] = {}
    for strategy, by_seed in runs.items():
        f1 = np.array([[p["macro_f1"] for p in r["curve"]] for r in by_seed.values()])
        gain = f1 - f1[:, :1]
        summary[strategy] = {"labels": points, "mean_macro_f1": np.round(f1.mean(0), 4).tolist(),
                             "mean_gain": np.round(gain.mean(0), 4).tolist(),
                             "min_gain": np.round(gain.min(0), 4).tolist()}
    at = points.index(300) if 300 in points else len(points) - 1
    g_s, g_r = summary["suggest"]["mean_gain"][at], summary["random"]["mean_gain"][at]
    ratio = round(g_s / g_r, 2) if g_r > 0 else None
    result = {
        "what": "active learning with `newsclf suggest` vs random reading (TF-IDF baseline retrained per round)",
        "pool": {"articles": len(pool["ids"]), "rules_labelled": sum(x is not None for x in pool["rules"]),
                 "rules_wrong": sum(r is not None and r != t for r, t in zip(pool["rules"], pool["truth"])),
                 "rules_abstained": sum(x is None for x in pool["rules"])},
        "dev_articles": len(dev[1]),
        "setting": {"seeds": list(seeds), "step": step, "budget": budget, "folds": folds,
                    "model": "TfidfBaseline (C=10, 500 chars)", "suggest": "rank_candidates, cheap TF-IDF model, quota on"},
        "summary": summary,
        "at_labels": points[at],
        "gain_suggest": g_s, "gain_random": g_r, "gain_ratio": ratio,
        "target_met_gain_ratio_ge_1_5": bool(ratio is not None and ratio >= 1.5) or (g_r <= 0 < g_s),
        "runs": {s: {str(k): {x: y for x, y in v.items() if x != "current"} for k, v in r.items()}
                 for s, r in runs.items()},
        "seconds": round(time.perf_counter() - t0, 1),
    }
    if out_png:
        _plot(summary, runs, out_png)
        result["figure"] = out_png
    return result


def _plot(summary: dict[str, Any], runs: dict[str, Any], out: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for strategy, colour in (("suggest", "tab:blue"), ("random", "tab:grey")):
        for r in runs[strategy].values():
            ax.plot([p["labels"] for p in r["curve"]], [p["macro_f1"] for p in r["curve"]], color=colour, alpha=0.25)
        s = summary[strategy]
        ax.plot(s["labels"], s["mean_macro_f1"], color=colour, marker="o", label=f"{strategy} (mean of seeds)")
    ax.set_xlabel("labels bought (articles read)")
    ax.set_ylabel("dev macro-F1 (TF-IDF baseline)")
    ax.set_title("Reading what suggest queues vs reading at random")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)


def confirm_e5(*, seed: int = 42, step: int = 100, budget: int = 500, max_steps: int = 160,
               folds: int = 5) -> dict[str, Any]:
    """The end point once with the e5 model: fine-tune the default config on the pool's labels after
    ``budget`` reads chosen by suggest and at random (same seed, same steps), score both on dev."""
    import json
    import tempfile

    from newsclf.config import load_config
    from newsclf.predict import Classifier
    from newsclf.train import train

    t0 = time.perf_counter()
    cfg = load_config("reference")
    labels = list(cfg.labels)
    pool = _pool(cfg)
    dev = _dev(cfg)
    from newsclf.data.loaders import load_articles

    dev_ds = load_articles([str(Path(DEV))])
    dev_pairs = list(zip(dev_ds["title"], dev_ds["text"]))
    out: dict[str, Any] = {"what": "end point with the e5 model (default config, fixed steps)", "seed": seed,
                           "budget": budget, "max_steps": max_steps}
    with tempfile.TemporaryDirectory(prefix="newsclf-al-e5-") as tmp:
        for strategy in ("suggest", "random"):
            r = run_strategy(strategy, pool, dev, labels, seed=seed, step=step, budget=budget, folds=folds)
            data = Path(tmp) / f"{strategy}.jsonl"
            with data.open("w", encoding="utf-8") as f:
                for i, lab in enumerate(r["current"]):
                    if lab is not None:
                        f.write(json.dumps({"id": pool["ids"][i], "title": pool["titles"][i], "text": pool["texts"][i],
                                            "date": "", "label": lab}, ensure_ascii=False) + "\n")
            run_cfg = load_config("default", {"name": f"al-{strategy}", "output_dir": tmp, "data": [str(data)],
                                              "max_steps": max_steps, "eval_steps": max_steps // 3,
                                              "split_by": "stratified", "test_fraction": 0.0, "seed": seed})
            t1 = time.perf_counter()
            model_dir = train(run_cfg, progress=False)
            clf = Classifier.from_dir(model_dir, precision="fp32")
            pred = [labels[i] for i in clf.logits(dev_pairs).argmax(1)]
            out[strategy] = {"tfidf_macro_f1": r["curve"][-1]["macro_f1"], "e5_macro_f1": _f1(dev[1], pred, labels),
                             "train_articles": sum(x is not None for x in r["current"]),
                             "train_seconds": round(time.perf_counter() - t1, 1)}
            print(strategy, out[strategy], file=sys.stderr, flush=True)
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def _f1(refs: list[str], pred: list[str], labels: list[str]) -> float:
    from newsclf.metrics import compute_metrics

    return round(float(compute_metrics([labels.index(x) for x in refs], [labels.index(x) for x in pred], labels)["macro_f1"]), 4)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 7, 1234])
    parser.add_argument("--step", type=int, default=100)
    parser.add_argument("--budget", type=int, default=500)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--out", default="bench/active_learning.json")
    parser.add_argument("--e5", action="store_true", help="the end point once with the e5 model (bench/active_learning_e5.json)")
    args = parser.parse_args(argv)
    from benchmarks.common import write_result

    if args.e5:
        return write_result(confirm_e5(seed=args.seeds[0], step=args.step, budget=args.budget, folds=args.folds),
                            "bench/active_learning_e5.json")
    result = bench_active_learning(seeds=tuple(args.seeds), step=args.step, budget=args.budget, folds=args.folds,
                                   out_png=str(Path(args.out).with_suffix(".png")))
    return write_result(result, args.out)


if __name__ == "__main__":
    sys.exit(main())
