"""Benchmark: ``newsclf suggest`` over the whole shared corpus with a trained e5 model, cold and warm cache.

Calls ``newsclf.suggest.suggest`` on the reference config's data (~20k articles), the reference config's
gold files and rules, and ``--model`` (default ``runs/reference/model``), twice: first with an empty score
cache (a fresh ``$NEWSCLF_CACHE``), then again with the cache the first call filled. Target (issue 14): the
cold call within 15 minutes on 2 cores, the warm one in seconds-to-a-minute (loading and labelling the
archive is not cached). Run: ``python -m benchmarks.bench_suggest`` (writes bench/suggest.json).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections import Counter
from typing import Any


def bench_suggest(model: str = "runs/reference/model", n: int = 200) -> dict[str, Any]:
    from benchmarks.common import machine
    from newsclf.config import load_config
    from newsclf.suggest import suggest

    cfg = load_config("reference")
    out: dict[str, Any] = {"what": "newsclf suggest over the shared corpus, cold then warm score cache",
                           "model": model, "n": n, "machine": machine()}
    with tempfile.TemporaryDirectory(prefix="newsclf-suggest-cache-") as cache:
        os.environ["NEWSCLF_CACHE"] = cache  # an empty cache: the first call computes everything
        for name in ("cold", "warm"):
            t0 = time.perf_counter()
            queue = suggest(cfg.data, n=n, model=model, config=cfg)
            out[f"{name}_seconds"] = round(time.perf_counter() - t0, 1)
            out[f"{name}_reasons"] = dict(Counter(r["reason"] for r in queue))
            out[f"{name}_ids"] = [r["id"] for r in queue[:10]]
            print(f"{name}: {out[f'{name}_seconds']} s", file=sys.stderr)
    out["same_queue"] = out["cold_ids"] == out["warm_ids"]
    out["suggested"] = dict(Counter(r["suggested"] for r in queue))
    out["target_met_cold_le_15_min"] = out["cold_seconds"] <= 900
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="runs/reference/model")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--out", default="bench/suggest.json")
    args = parser.parse_args(argv)
    from benchmarks.common import write_result

    return write_result(bench_suggest(args.model, args.n), args.out)


if __name__ == "__main__":
    sys.exit(main())
