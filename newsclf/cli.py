"""The ``newsclf`` command: ``train``, ``evaluate``, ``predict``, ``serve``, ``split``, ``build-dataset``, ``label-report``, ``label-errors``, ``bench``.

The scripts in ``scripts/`` are thin aliases of these subcommands, and each subcommand only parses
arguments and calls a library function, so tests exercise the same code. Anything a user can cause (a
missing file, a bad value, a broken model folder) ends as one ``error: …`` line and exit status 2;
``--debug`` shows the traceback instead. Ctrl-C ends with a line saying what was kept and how to go on.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from newsclf.config import parse_value

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(ValueError):
    """A command line that cannot be run as given."""


def parse_overrides(extra: list[str]) -> dict[str, Any]:
    """``["--epochs", "2", "--name=x"]`` → ``{"epochs": 2, "name": "x"}`` (values read as YAML)."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(extra):
        arg = extra[i]
        if not arg.startswith("--") or arg == "--":
            raise UsageError(f"unexpected argument {arg!r}; config overrides look like --key value or --key=value")
        key, eq, value = arg[2:].partition("=")
        if not eq:
            if i + 1 >= len(extra):
                raise UsageError(f"override --{key} needs a value, e.g. --{key} 3")
            value = extra[i + 1]
            i += 1
        out[key.replace("-", "_")] = parse_value(value, key)
        i += 1
    return out


def _quiet_libraries() -> None:
    """Silence the load/map progress bars and info logs of datasets and transformers (``--quiet``)."""
    import datasets
    from transformers.utils import logging as hf_logging

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def _cmd_train(args: argparse.Namespace, extra: list[str]) -> int:
    from newsclf.config import load_config
    from newsclf.train import TrainingInterrupted, process_rank, train

    # Under torchrun / accelerate launch every rank runs this; rank 0 alone reports (others show warnings and errors).
    main_rank = process_rank()[0] == 0
    if not main_rank:
        logging.getLogger("newsclf").setLevel(logging.WARNING)
        _quiet_libraries()
    config = load_config(args.config, parse_overrides(extra))
    try:
        model_dir = train(config, resume=args.resume, force=args.force, progress=not args.quiet)
    except TrainingInterrupted as err:
        if main_rank:
            print(f"interrupted: {err}", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():  # the Trainer's process group; PyTorch warns if left open
            dist.destroy_process_group()
    if main_rank:
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


def _field_map(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    value = parse_value(text, "field-map")
    if not isinstance(value, dict):
        raise UsageError(f"--field-map: expected a YAML mapping such as '{{text: body}}', found {text!r}")
    return value


def _cmd_evaluate(args: argparse.Namespace, extra: list[str]) -> int:
    from newsclf.evaluation import evaluate_model

    m = evaluate_model(args.model, args.data, out_dir=args.out, field_map=_field_map(args.field_map),
                       baseline=not args.no_baseline, format=args.format, precision=args.precision,
                       backend=args.backend)
    mm = m["model_metrics"]
    print(f"runs on: {m['runs']['backend']} {m['runs']['precision']}")
    print(f"articles: {m['articles']}  accuracy: {mm['accuracy']:.4f}  macro-F1: {mm['macro_f1']:.4f}  ECE: {m['ece']:.4f}")
    if "model_alone_metrics" in m:
        am = m["model_alone_metrics"]
        print(f"  (blended with the baseline, weights {m['blend']}; the transformer alone: accuracy "
              f"{am['accuracy']:.4f}  macro-F1 {am['macro_f1']:.4f})")
    if "baseline_metrics" in m:
        bm = m["baseline_metrics"]
        ci = m["gap_macro_f1_interval_points"]
        print(f"baseline (jieba + TF-IDF + linear, same training data): accuracy {bm['accuracy']:.4f}  "
              f"macro-F1 {bm['macro_f1']:.4f}  gap {m['gap_macro_f1_points']:+.2f} points "
              f"({ci['confidence']:.0%} interval {ci['low']:+.1f} to {ci['high']:+.1f})")
    print(f"report: {m['out_dir']}/report.md")
    return 0


def _cmd_blend(args: argparse.Namespace, extra: list[str]) -> int:
    from newsclf import artifact
    from newsclf.finalise import reblend

    model_dir = reblend(args.model, blend=not args.off)
    meta = artifact.read_meta(model_dir)
    val = meta.metrics.get("validation", {})
    what = f"blend weights {meta.blend}" if meta.blend else "no blend"
    print(f"{model_dir}: {what}; validation macro-F1 {val.get('macro_f1', float('nan')):.4f}"
          + (f" (transformer alone {val['model_alone_macro_f1']:.4f})" if "model_alone_macro_f1" in val else "")
          + f"; abstain threshold {meta.abstain_threshold:.3f}")
    return 0


def _cmd_predict(args: argparse.Namespace, extra: list[str]) -> int:
    from newsclf.tagging import TaggingInterrupted, tag_file

    try:
        if args.engine == "ray":
            if args.resume:
                raise UsageError("--resume works with --engine local only: a Ray run keeps no partial output; "
                                 "rerun without --resume")
            from newsclf.engines.ray_engine import tag_with_ray

            try:
                report = tag_with_ray(args.inputs, args.out, model=args.model, format=args.format,
                                      field_map=_field_map(args.field_map), output_format="jsonl",
                                      precision=args.precision, backend=args.backend, progress=not args.quiet)
            except ImportError as err:  # Ray is not installed: say how to install it
                raise UsageError(str(err)) from None
        else:
            report = tag_file(args.inputs, args.out, model=args.model, resume=args.resume, progress=not args.quiet,
                              format=args.format, field_map=_field_map(args.field_map), precision=args.precision,
                              backend=args.backend)
    except TaggingInterrupted as err:
        print(f"interrupted: {err}", file=sys.stderr)
        return EXIT_INTERRUPTED
    where = f" -> {args.out}" if args.out else ""
    errors = f", {report.errors} with an error field (unreadable or unclassifiable records)" if report.errors else ""
    abstained = f", {report.abstained} abstained" if report.abstained else ""
    print(f"{report.written} articles written{where}{errors}{abstained}", file=sys.stderr)
    return 0


def _cmd_split(args: argparse.Namespace, extra: list[str]) -> int:
    import json

    from newsclf.data.pages import split_page
    from newsclf.io import read_text

    for path in args.pages:
        try:
            articles = split_page(read_text(path))
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None
        for art in articles:
            print(json.dumps(art.to_dict(), ensure_ascii=False))
    return 0


def _cmd_label_report(args: argparse.Namespace, extra: list[str]) -> int:
    from newsclf.data.label_quality import run_label_report

    return run_label_report(args.config, against=args.against, corpus=args.corpus, rules=args.rules,
                            overrides=args.set, errors=args.errors)


def _cmd_label_errors(args: argparse.Namespace, extra: list[str]) -> int:
    from newsclf.label_errors import find_label_errors, load_labelled, write_label_errors

    data, config_labels = load_labelled(args.data, config=args.config, field_map=_field_map(args.field_map),
                                        format=args.format)
    labels = [x.strip() for x in args.labels.split(",") if x.strip()] if args.labels else config_labels
    if labels is None:
        from newsclf.config import DEFAULT_LABELS

        labels = list(DEFAULT_LABELS)
    rows = find_label_errors(data, labels, folds=args.folds, seed=args.seed, flagged_only=not args.all)
    out = write_label_errors(rows, args.out)
    n = sum(1 for lab in data["label"] if lab not in (None, ""))
    print(f"{n} labelled articles, {sum(r['flagged'] for r in rows)} flagged as likely label errors"
          f"{'' if not args.all else f' ({len(rows)} ranked)'} -> {out}", file=sys.stderr)
    return 0


def _benchmarks_cli() -> Any:
    """``benchmarks.cli`` of the source checkout this package runs from (benchmarks/ is not in the wheel)."""
    import importlib

    from newsclf.config import REPO_DIR

    if REPO_DIR is not None and (REPO_DIR / "benchmarks").is_dir() and str(REPO_DIR) not in sys.path:
        sys.path.insert(0, str(REPO_DIR))
    return importlib.import_module("benchmarks.cli")


def _cmd_bench(args: argparse.Namespace, extra: list[str]) -> int:
    try:
        bench = _benchmarks_cli()
    except ImportError:
        raise UsageError(
            "newsclf bench runs from a source checkout: the benchmarks/ folder is not installed with the "
            "package; run it from the repository root"
        ) from None
    return bench.run_from_args(args)


def _cmd_serve(args: argparse.Namespace, extra: list[str]) -> int:
    try:
        from newsclf.serve import ServeSettings, serve
    except ImportError as err:
        raise UsageError(f"newsclf serve needs FastAPI and uvicorn ({err}); install them with "
                         "pip install 'newsclf[serve]'") from None
    settings = ServeSettings(batch_size=args.batch_size, max_wait_ms=args.max_wait_ms, max_queue=args.max_queue,
                             max_body_bytes=args.max_body_bytes, max_articles=args.max_articles,
                             precision=args.precision, backend=args.backend)
    return serve(args.model, host=args.host, port=args.port, settings=settings, quiet=args.quiet)


def _runtime_options(p: argparse.ArgumentParser) -> None:
    """--precision and --backend, as newsclf.load takes them (the same choices everywhere a model runs)."""
    from newsclf.predict import BACKENDS, PRECISIONS

    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="as newsclf.load (default: auto, the fastest this CPU runs, int8 only where it agreed with fp32 "
                        "on check articles; fp32: exact scores)")
    p.add_argument("--backend", default="auto", choices=BACKENDS,
                   help="as newsclf.load (default: auto, OpenVINO where installed, else PyTorch)")


def build_parser() -> argparse.ArgumentParser:
    from newsclf.config import config_help
    from newsclf.io import FORMATS

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--quiet", action="store_true", help="no progress bars or library load messages")
    common.add_argument("--debug", action="store_true", help="show the traceback of an error")
    parser = argparse.ArgumentParser(prog="newsclf", description=__doc__.splitlines()[0], parents=[common])
    sub = parser.add_subparsers(dest="command", required=True)
    model_help = "model folder (default: $NEWSCLF_MODEL or runs/default/model)"
    format_help = f"input format instead of the file extension: {', '.join(FORMATS)}"

    p = sub.add_parser(
        "train", parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter,
        help="fine-tune a section classifier (extra --key value pairs override the config)",
        description="Fine-tune a section classifier. Any config key can be overridden as --key value:\n\n"
        + config_help(),
    )
    p.add_argument("--config", help="a shipped config (default, tiny, reference) or a YAML file (default: default)")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint of this run")
    p.add_argument("--force", action="store_true", help="with --resume: continue even if settings changed")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("build-dataset", parents=[common], help="load, label, de-duplicate and split; save to disk")
    p.add_argument("--config", help="a shipped config name or a YAML file (default: default)")
    p.add_argument("--out", help="output folder (default: runs/<name>/dataset)")
    p.set_defaults(func=_cmd_build_dataset)

    p = sub.add_parser("evaluate", parents=[common],
                       help="score a saved model on labelled held-out articles, with the TF-IDF baseline")
    p.add_argument("--model", default=None, help=model_help)
    p.add_argument("--data", nargs="+", required=True, help="labelled articles: JSONL(.gz), JSON, CSV, Parquet or pages")
    p.add_argument("--out", help="report folder (default: <model>/../eval-<data name>)")
    p.add_argument("--format", choices=FORMATS, help=format_help)
    p.add_argument("--field-map", help="YAML mapping of our fields to the file's, e.g. '{text: body}'")
    p.add_argument("--no-baseline", action="store_true", help="skip the TF-IDF baseline")
    _runtime_options(p)
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("blend", parents=[common],
                       help="re-calibrate a saved model with the TF-IDF baseline blended in (models trained before it)")
    p.add_argument("--model", default=None, help=model_help)
    p.add_argument("--off", action="store_true", help="remove the blend: the transformer alone, re-calibrated")
    p.set_defaults(func=_cmd_blend)

    p = sub.add_parser("predict", parents=[common],
                       help="tag articles from JSONL(.gz), JSON, CSV/TSV, Parquet, page or text files, or - (stdin, JSONL)")
    p.add_argument("inputs", nargs="+", help="input files, or - for standard input (JSONL unless --format)")
    p.add_argument("--model", default=None, help=model_help)
    p.add_argument("--out", help="output JSONL (default: standard output); written atomically")
    p.add_argument("--resume", action="store_true", help="continue a stopped run from <out>.partial")
    p.add_argument("--format", choices=FORMATS, help=format_help)
    p.add_argument("--field-map", help="YAML mapping of our fields to the file's, e.g. '{text: body, title: headline}'")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: this process (default); ray: Ray Data workers on $RAY_ADDRESS's cluster or a local "
                        "one (pip install 'newsclf[ray]'), same output")
    _runtime_options(p)
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("split", parents=[common], help="split newspaper page files into articles (JSONL on standard output)")
    p.add_argument("pages", nargs="+", help="page files (.md/.txt), or - for standard input")
    p.set_defaults(func=_cmd_split)

    from newsclf.data.label_quality import add_label_report_arguments

    p = sub.add_parser("label-report", parents=[common],
                       help="evaluate the rules + lexicon labeller and count a corpus's labels")
    add_label_report_arguments(p)
    p.set_defaults(func=_cmd_label_report)

    p = sub.add_parser("label-errors", parents=[common],
                       help="rank labelled articles by how likely their label is wrong (out-of-fold TF-IDF + cleanlab)")
    p.add_argument("data", nargs="*", help="labelled articles: JSONL(.gz), JSON, CSV, Parquet or pages")
    p.add_argument("--config", help="instead of DATA: a config's data labelled by its gold files, rules and lexicons")
    p.add_argument("--out", required=True, help="output JSONL, most suspect first; written atomically")
    p.add_argument("--labels", help="comma-separated label set (default: the config's, else the default labels)")
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds (default: 5)")
    p.add_argument("--seed", type=int, default=42, help="fold and model seed (default: 42)")
    p.add_argument("--all", action="store_true", help="write every labelled article ranked, not only flagged ones")
    p.add_argument("--format", choices=FORMATS, help=format_help)
    p.add_argument("--field-map", help="YAML mapping of our fields to the file's, e.g. '{text: body}'")
    p.set_defaults(func=_cmd_label_errors)

    p = sub.add_parser("serve", parents=[common], help="an HTTP JSON service: POST /predict, GET /health, /labels, /docs")
    p.add_argument("--model", default=None, help=model_help)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0 picks a free one)")
    _runtime_options(p)
    p.add_argument("--batch-size", type=int, default=16, help="articles per forward pass (default: 16)")
    p.add_argument("--max-wait-ms", type=float, default=5.0,
                   help="how long a request waits for others to fill a batch (default: 5)")
    p.add_argument("--max-queue", type=int, default=2048,
                   help="articles waiting for the model before requests get 429 (default: 2048)")
    p.add_argument("--max-body-bytes", type=int, default=2_000_000, help="larger bodies get 413 (default: 2000000)")
    p.add_argument("--max-articles", type=int, default=1000, help="more articles per request get 413 (default: 1000)")
    p.set_defaults(func=_cmd_serve)

    # The labelling loop (issue 14): each module registers its own subcommand and handler (set_defaults(func=...)),
    # and keeps its heavy imports inside the handler so `newsclf --help` stays fast.
    import importlib

    for module in ("newsclf.suggest", "newsclf.annotate", "newsclf.labelstudio"):
        importlib.import_module(module).add_subcommand(sub, common)

    p = sub.add_parser("bench", parents=[common], help="benchmarks against plain Hugging Face (source checkout only)")
    try:  # the benchmarks' own options, where the checkout has them (benchmarks/ is not in the wheel)
        _benchmarks_cli().add_arguments(p)
    except ImportError:
        p.add_argument("what", help="backbone, train, predict, serve or label_errors")
        p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    p.set_defaults(func=_cmd_bench)
    return parser


# Errors a user can cause; anything else is a bug and says so.
_USER_ERRORS = (ValueError, FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError, OSError)


def main(argv: list[str] | None = None) -> int:
    """Run the ``newsclf`` command line; returns the exit status."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command not in ("train", "build-dataset"):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("newsclf").setLevel(logging.WARNING if args.quiet else logging.INFO)
    if args.quiet:
        _quiet_libraries()
    if getattr(args, "model", "unset") is None:
        from newsclf.predict import default_model_path

        args.model = str(default_model_path())
    try:
        return args.func(args, extra)
    except BrokenPipeError:
        # The reader went away (`newsclf split page.md | head`): stop quietly, as Python's docs advise, and
        # keep the interpreter's final flush from raising again.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("interrupted (Ctrl-C); nothing more was written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except _USER_ERRORS as err:
        if args.debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as err:  # a bug, not the user's doing: one line, and how to see more
        if args.debug:
            raise
        print(f"error: unexpected {type(err).__name__}: {err} (a newsclf bug; rerun with --debug for the "
              "traceback and report it)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
