"""Command-line entry points: ``newsclf {train,evaluate,predict,split,build-dataset}``.

The scripts in ``scripts/`` are thin aliases of these subcommands, and each subcommand only parses
arguments and calls a library function, so tests exercise the same code.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from newsclf.config import parse_value


def parse_overrides(extra: list[str]) -> dict[str, Any]:
    """``["--epochs", "2", "--name=x"]`` → ``{"epochs": 2, "name": "x"}`` (values read as YAML)."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(extra):
        arg = extra[i]
        if not arg.startswith("--") or arg == "--":
            raise SystemExit(f"unexpected argument {arg!r}; overrides look like --key value or --key=value")
        key, eq, value = arg[2:].partition("=")
        if not eq:
            if i + 1 >= len(extra):
                raise SystemExit(f"override --{key} needs a value, e.g. --{key} 3")
            value = extra[i + 1]
            i += 1
        out[key.replace("-", "_")] = parse_value(value)
        i += 1
    return out


def _cmd_train(args: argparse.Namespace, extra: list[str]) -> int:
    from newsclf.config import load_config
    from newsclf.train import TrainingInterrupted, train

    config = load_config(args.config, parse_overrides(extra))
    try:
        model_dir = train(config, resume=args.resume)
    except TrainingInterrupted as err:
        print(err, file=sys.stderr)
        return 130
    print(f"model saved to {model_dir}")
    return 0


def _cmd_build_dataset(args: argparse.Namespace, extra: list[str]) -> int:
    from newsclf.config import load_config
    from newsclf.data.splits import build_dataset_to_disk

    config = load_config(args.config, parse_overrides(extra))
    out, report = build_dataset_to_disk(config, args.out)
    print(report)
    print(f"dataset saved to {out}")
    return 0


def _cmd_evaluate(args: argparse.Namespace, extra: list[str]) -> int:
    from newsclf.evaluation import evaluate_model

    field_map = parse_value(args.field_map) if args.field_map else None
    m = evaluate_model(args.model, args.data, out_dir=args.out, field_map=field_map, baseline=not args.no_baseline)
    mm = m["model_metrics"]
    print(f"articles: {m['articles']}  accuracy: {mm['accuracy']:.4f}  macro-F1: {mm['macro_f1']:.4f}  ECE: {m['ece']:.4f}")
    if "baseline_metrics" in m:
        bm = m["baseline_metrics"]
        print(f"baseline (jieba + TF-IDF + linear, same training data): accuracy {bm['accuracy']:.4f}  "
              f"macro-F1 {bm['macro_f1']:.4f}  gap {m['gap_macro_f1_points']:+.2f} points")
    print(f"report: {m['out_dir']}/report.md")
    return 0


def _cmd_predict(args: argparse.Namespace, extra: list[str]) -> int:
    from newsclf.tagging import tag_file

    n = tag_file(args.inputs, args.out, model=args.model, resume=args.resume, progress=not args.quiet)
    if args.out:
        print(f"{n} articles tagged -> {args.out}", file=sys.stderr)
    return 0


def _cmd_split(args: argparse.Namespace, extra: list[str]) -> int:
    import json

    from newsclf.data.pages import split_page

    for path in args.pages:
        text = sys.stdin.read() if path == "-" else _read_text(path)
        for art in split_page(text):
            print(json.dumps(art.to_dict(), ensure_ascii=False))
    return 0


def _read_text(path: str) -> str:
    from pathlib import Path

    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not UTF-8 text (byte {err.start}); convert it to UTF-8 first") from err


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="newsclf", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="fine-tune a section classifier (extra --key value pairs override the config)")
    p.add_argument("--config", help="YAML config (default: configs/default.yaml; a bare name like 'tiny' works)")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint of this run")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("build-dataset", help="load, label, de-duplicate and split; save with save_to_disk")
    p.add_argument("--config", help="YAML config (default: configs/default.yaml)")
    p.add_argument("--out", help="output folder (default: runs/<name>/dataset)")
    p.set_defaults(func=_cmd_build_dataset)

    p = sub.add_parser("evaluate", help="score a saved model on labelled held-out articles, with the TF-IDF baseline")
    p.add_argument("--model", default=None, help="model folder (default: $NEWSCLF_MODEL or runs/default/model)")
    p.add_argument("--data", nargs="+", required=True, help="labelled articles: JSONL(.gz), CSV, Parquet or pages")
    p.add_argument("--out", help="report folder (default: <model>/../eval-<data name>)")
    p.add_argument("--field-map", help="YAML mapping of our fields to the file's, e.g. '{text: body}'")
    p.add_argument("--no-baseline", action="store_true", help="skip the TF-IDF baseline")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("predict", help="tag articles: JSONL(.gz), page/text files, or - for stdin; JSONL out")
    p.add_argument("inputs", nargs="+", help="input files, or - for standard input")
    p.add_argument("--model", default=None, help="model folder (default: $NEWSCLF_MODEL or runs/default/model)")
    p.add_argument("--out", help="output JSONL (default: standard output); written atomically")
    p.add_argument("--resume", action="store_true", help="continue a stopped run from <out>.partial")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("split", help="split newspaper page files into articles (JSONL on standard output)")
    p.add_argument("pages", nargs="+", help="page files (.md/.txt), or - for standard input")
    p.set_defaults(func=_cmd_split)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``newsclf`` command line; returns the exit status."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command not in ("train", "build-dataset"):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if getattr(args, "model", "unset") is None:
        from newsclf.predict import default_model_path

        args.model = str(default_model_path())
    try:
        return args.func(args, extra)
    except (ValueError, FileNotFoundError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
