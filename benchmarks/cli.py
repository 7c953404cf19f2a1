"""Benchmarks of newsclf against plain Hugging Face, written as JSON.

`backbone` (full vs restricted vocabulary), `train` (newsclf vs plain HF Trainer fine-tuning), `predict`
(newsclf.predict vs transformers.pipeline), `serve` (`newsclf serve` under concurrent load vs in-process
batches, then malformed requests), `label_errors` (the label-error ranking vs stage 6's read labels). Example:

    python scripts/bench.py train --out bench/train.json
    python scripts/bench.py predict --model runs/default/model --gold ../shared/gold/dev.jsonl
    python scripts/bench.py serve --model runs/default/model --clients 4 --requests 5 --malformed 40
"""

from __future__ import annotations

import argparse
from typing import Any

WHAT = ("backbone", "train", "predict", "serve", "label_errors")


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The benchmark command line's parser (``what`` plus ``--model --data --gold --n --out``)."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the benchmark arguments to ``parser`` (e.g. a ``bench`` subcommand's parser)."""
    parser.add_argument("what", choices=WHAT)
    parser.add_argument("--model", default="runs/default/model", help="saved model folder (predict)")
    parser.add_argument("--data", nargs="*", help="articles to run on (default: the embedded corpus)")
    parser.add_argument("--gold", help="labelled file: also report macro-F1 of each inference path (predict)")
    parser.add_argument("--n", type=int, default=None, help="number of articles")
    parser.add_argument("--out", help="JSON output (default: bench/<what>.json)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients (serve)")
    parser.add_argument("--requests", type=int, default=50, help="requests per client, one article each (serve)")
    parser.add_argument("--malformed", type=int, default=1000, help="malformed requests after the load (serve)")


def run_benchmark(what: str, *, model: str = "runs/default/model", data: list[str] | None = None,
                  gold: str | None = None, n: int | None = None, **serve: int) -> dict[str, Any]:
    """Run one benchmark (``backbone``, ``train``, ``predict`` or ``serve``) and return its JSON-able result.

    ``serve`` takes ``clients``, ``requests`` and ``malformed`` (see ``benchmarks.bench_serve``).
    """
    size = {"n_articles": n} if n else {}
    if what == "backbone":
        from benchmarks.bench_backbone import bench_backbone

        return bench_backbone(**size)
    if what == "train":
        from benchmarks.bench_train import bench_train

        return bench_train(data=data, **size)
    if what == "predict":
        from benchmarks.bench_predict import bench_predict

        return bench_predict(model, data=data, gold=gold, **size)
    if what == "serve":
        from benchmarks.bench_serve import bench_serve

        return bench_serve(model, data=data, **size, **serve)
    if what == "label_errors":  # needs ../shared (the reference config's corpus and gold/)
        from benchmarks.bench_label_errors import bench_label_errors

        return bench_label_errors()
    raise ValueError(f"unknown benchmark {what!r}; expected one of {', '.join(WHAT)}")


def run_from_args(args: argparse.Namespace) -> int:
    """Run the benchmark parsed into ``args``, write its JSON (default ``bench/<what>.json``), print it."""
    # `newsclf bench` builds its own parser: the serve knobs may be missing there (their defaults apply).
    serve = {k: getattr(args, k) for k in ("clients", "requests", "malformed") if getattr(args, k, None) is not None}
    extra = serve if args.what == "serve" else {}
    result = run_benchmark(args.what, model=args.model, data=args.data, gold=args.gold, n=args.n, **extra)
    from benchmarks.common import write_result

    return write_result(result, args.out or f"bench/{args.what}.json")


def main(argv: list[str] | None = None) -> int:
    """Command line entry point: ``main(["predict", "--model", "runs/default/model"])``; returns 0."""
    return run_from_args(build_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
