"""Tagging archives on a Ray cluster (``newsclf predict --engine ray``; needs ``pip install 'newsclf[ray]'``).

The same output as :func:`newsclf.tagging.tag_file` (byte for byte: one JSON line per input record, in input
order, error lines kept), with the model work spread over Ray workers:

* **Read**: a Ray Data datasource with one read task per input file, each running newsclf's own reader
  (:func:`newsclf.tagging.iter_articles`: every format ``newsclf predict`` reads, malformed records kept as
  error rows naming file and line). ``ray.data.read_json`` would fail on a malformed line, and neither it nor
  ``read_parquet`` knows line/row numbers, which the default ids and error messages need. Files must be at the
  same path on every worker (one machine, or a shared filesystem), like the model folder.
* **Tag**: ``map_batches`` with an actor class (:class:`_Tagger`) that loads the model once per worker and
  runs the local engine's batch function (:mod:`newsclf.engines`).
* **Write**: the driver streams the tagged blocks, in input order (``preserve_order``), into
  ``<output>.partial`` and renames it to ``output`` when complete: JSONL (the local engine's lines) or Parquet
  (columns :data:`newsclf.engines.OUTPUT_COLUMNS`).

A missing or broken model folder fails on the driver before any worker starts, with the local engine's
message; a model that loads on the driver but not on a worker, an input that a worker cannot read and a
record count that changes on the way each end as one ``RayTaggingError`` (a ``ValueError``) naming what and
where. A failed or interrupted run leaves no output: unlike the local engine it cannot be resumed.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from newsclf.engines import OUTPUT_COLUMNS, output_row, tag_records
from newsclf.tagging import TaggingInterrupted, TagReport, iter_articles

INSTALL_HINT = "pip install 'newsclf[ray]'"
OUTPUT_FORMATS = ("jsonl", "parquet")


class RayTaggingError(ValueError):
    """A tagging run that failed on the cluster: the message says which file, model or worker and the fix."""


def _import_ray() -> Any:
    """``ray`` and ``ray.data``, or an ImportError saying how to install them."""
    if "ray" not in sys.modules and not os.environ.get("RAY_ADDRESS"):
        # A local Ray instance listens on loopback only (otherwise it binds every interface). Read when ray
        # is first imported; a process that connects to a cluster sets RAY_ADDRESS instead.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
        import ray.data  # noqa: F401  (the [data] extra: pandas/pyarrow integration)
    except ImportError as err:
        raise ImportError(
            f"--engine ray needs Ray Data, which is not installed ({err}); install it with {INSTALL_HINT}, "
            "or use the local engine"
        ) from None
    return ray


# ---------------------------------------------------------------- read: newsclf's reader, one task per file


def _input_schema() -> Any:
    import pyarrow as pa

    from newsclf.engines import INPUT_COLUMNS

    return pa.schema([(name, pa.string()) for name in INPUT_COLUMNS])


def _output_schema() -> Any:
    import pyarrow as pa

    kinds = {"string": pa.string(), "double": pa.float64(), "boolean": pa.bool_()}
    return pa.schema([(name, kinds[kind]) for name, kind in OUTPUT_COLUMNS])


def _node() -> str:
    try:
        import ray

        return ray.util.get_node_ip_address()
    except Exception:  # not inside a Ray worker: say nothing rather than fail while reporting
        return "?"


def _read_file(path: str, format: str | None, field_map: dict[str, Any] | None, block_rows: int) -> Iterator[Any]:
    """The articles of one input file as Arrow blocks of ``block_rows`` rows (runs in a Ray read task)."""
    import pyarrow as pa

    schema = _input_schema()
    rows: list[dict[str, Any]] = []
    try:
        for art in iter_articles(path, format=format, field_map=field_map):
            rows.append({name: art.get(name) for name in schema.names})
            if len(rows) == block_rows:
                yield pa.Table.from_pylist(rows, schema=schema)
                rows = []
    except (ValueError, OSError) as err:
        where = "; every worker needs the inputs at the same path (one machine or a shared filesystem)" if (
            isinstance(err, FileNotFoundError)) else ""
        raise RayTaggingError(
            f"input {path} could not be read on a Ray worker (node {_node()}): {err}{where}; no output was written"
        ) from None
    if rows:
        yield pa.Table.from_pylist(rows, schema=schema)


def _datasource(inputs: list[str], format: str | None, field_map: dict[str, Any] | None, block_rows: int) -> Any:
    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource, ReadTask

    class ArticleFiles(Datasource):
        """Input files read by newsclf's reader; one read task per file, in the order given."""

        def get_name(self) -> str:
            return "NewsclfArticles"

        def estimate_inmemory_data_size(self) -> int | None:
            return sum(Path(p).stat().st_size for p in inputs)

        def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None,
                           data_context: Any = None) -> list[Any]:
            return [
                ReadTask(
                    functools.partial(_read_file, path, format, field_map, block_rows),
                    BlockMetadata(num_rows=None, size_bytes=Path(path).stat().st_size, exec_stats=None,
                                  input_files=[path]),
                    schema=_input_schema(),
                )
                for path in inputs
            ]

    return ArticleFiles()


# ---------------------------------------------------------------- tag: one model per actor


class _Tagger:
    """A Ray Data actor: loads the model folder once, then tags Arrow batches with the local batch function."""

    def __init__(self, model: str, precision: str, backend: str, threads: int):
        self.clf = None
        self.error: str | None = None
        try:
            import torch

            from newsclf.predict import load

            torch.set_num_threads(threads)
            self.clf = load(model, precision=precision, backend=backend)
        except Exception as err:  # raised with the first batch, so it comes back as a task error, like a read error
            self.error = (
                f"the model could not be loaded on a Ray worker (node {_node()}): {err}; every worker needs the "
                f"model folder at {model} (one machine, a shared filesystem, or a copy on each node)"
            )

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        if self.error is not None:
            raise RayTaggingError(self.error)
        records = batch.to_pylist()
        rows = tag_records(self.clf, records)
        if len(rows) != len(records):  # the batch function's contract; checked because output order relies on it
            raise RayTaggingError(f"tagging a batch of {len(records)} records gave {len(rows)} rows (a newsclf bug)")
        return pa.Table.from_pylist(rows, schema=_output_schema())


# ---------------------------------------------------------------- errors from the cluster


def _cluster_error(err: BaseException) -> str | None:
    """The message of the ``RayTaggingError`` a worker raised, from the exception Ray wraps it in, if any.

    Ray Data re-raises a worker's exception as ``RayTaskError(UserCodeException)`` whose text holds the
    worker's traceback (the original exception object does not come back), so the message is read from it.
    """
    seen: set[int] = set()
    stack: list[Any] = [err]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, RayTaggingError):
            return str(e)
        found = re.search(r"RayTaggingError: (.+)", str(e))
        if found:
            return found.group(1).strip()
        stack.extend([getattr(e, "cause", None), e.__cause__, e.__context__])
    return None


def _start_ray(ray: Any, num_cpus: int | None, quiet: bool) -> bool:
    """Connect to the cluster in $RAY_ADDRESS, or start a local one; True when this call started it."""
    if ray.is_initialized():
        return False
    level = logging.ERROR if quiet else logging.INFO
    if os.environ.get("RAY_ADDRESS"):
        ray.init(logging_level=level, log_to_driver=not quiet)
    else:
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, logging_level=level,
                 log_to_driver=not quiet)
    return True


# ---------------------------------------------------------------- the engine


def tag_with_ray(
    inputs: list[str],
    output: str | None,
    *,
    model: str | Path | None = None,
    batch_size: int = 64,
    num_cpus: int | None = None,
    cpus_per_worker: int = 1,
    format: str | None = None,
    field_map: dict[str, Any] | None = None,
    output_format: str | None = None,
    precision: str = "auto",
    backend: str = "auto",
    progress: bool = True,
) -> TagReport:
    """Tag every article in ``inputs`` on Ray and write one row per input record to ``output``, in input order.

    ``output``: a JSONL file (the lines :func:`newsclf.tagging.tag_file` writes, byte for byte) or, with
    ``output_format="parquet"`` or a ``.parquet`` name, a Parquet file with :data:`OUTPUT_COLUMNS`; None writes
    JSONL to standard output. Written to ``<output>.partial``, renamed when complete.

    Uses the Ray cluster this process is connected to, else the one in ``$RAY_ADDRESS``, else starts a local
    one (``num_cpus`` CPUs, default all) and shuts it down at the end. ``num_cpus``: CPUs given to tagging
    (default: the cluster's), as ``num_cpus // cpus_per_worker`` actors of ``cpus_per_worker`` CPUs (and torch
    threads) each, every actor loading the model once. ``batch_size``: articles per model call and per block.
    ``precision`` and ``backend``: as :func:`newsclf.load`, resolved on each worker.
    """
    from newsclf import artifact
    from newsclf.io import detect_format
    from newsclf.predict import BACKENDS, PRECISIONS, default_model_path

    if not inputs:
        raise ValueError("no inputs given; pass files")
    if "-" in inputs:
        raise ValueError("--engine ray cannot read standard input (-): Ray workers read files; pass the input as a "
                         "file, or use --engine local")
    for path in inputs:
        if not Path(path).exists():
            raise FileNotFoundError(f"input {path} does not exist")
        if Path(path).is_dir():
            raise ValueError(f"{path} is a folder; pass the files in it")
        detect_format(path, format)  # an unknown extension fails before anything starts
    for name, value in (("batch_size", batch_size), ("cpus_per_worker", cpus_per_worker)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: expected an int >= 1, found {value!r}")
    if num_cpus is not None and (isinstance(num_cpus, bool) or not isinstance(num_cpus, int) or num_cpus < 1):
        raise ValueError(f"num_cpus: expected None (the cluster's CPUs) or an int >= 1, found {num_cpus!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r} is not one of {', '.join(BACKENDS)}")
    if output_format is None:
        output_format = "parquet" if output and output.lower().endswith(".parquet") else "jsonl"
    if output_format not in OUTPUT_FORMATS:
        raise ValueError(f"output_format: expected one of {', '.join(OUTPUT_FORMATS)}, found {output_format!r}")
    if output_format == "parquet" and output is None:
        raise ValueError("Parquet output needs a file name (--out), not standard output")
    # The model folder is checked here, with the local engine's messages, before any worker starts.
    model_path = Path(model) if model is not None else default_model_path()
    artifact.read_meta(model_path)
    model_path = model_path.resolve()

    ray = _import_ray()
    started = _start_ray(ray, num_cpus, quiet=not progress)
    ctx = ray.data.DataContext.get_current()
    saved = (ctx.execution_options.preserve_order, ctx.enable_progress_bars)
    ctx.execution_options.preserve_order = True  # output rows in input order, whatever finishes first
    ctx.enable_progress_bars = progress
    # Quiet: no Ray Data progress logs, nor its traceback of a worker's error (re-raised here as one line).
    data_log = logging.getLogger("ray.data")
    saved_level = data_log.level
    if not progress:
        data_log.setLevel(logging.CRITICAL)
    partial = Path(output + ".partial") if output is not None else None
    report = TagReport()
    try:
        have = int(ray.cluster_resources().get("CPU", 0))
        cpus = num_cpus or have
        if cpus > have or cpus_per_worker > cpus:
            # Actors asking for more CPUs than the cluster has would wait for them forever.
            raise ValueError(
                f"the Ray cluster has {have} CPUs; num_cpus={num_cpus} and cpus_per_worker={cpus_per_worker} "
                f"need {max(cpus, cpus_per_worker)}: ask for fewer, or add nodes"
            )
        workers = cpus // cpus_per_worker
        ds = ray.data.read_datasource(
            _datasource([str(Path(p).resolve()) for p in inputs], format, field_map, batch_size),
            num_cpus=0,  # reading is light next to the model; the actors hold the CPUs
        ).map_batches(
            _Tagger,
            fn_constructor_kwargs={"model": str(model_path), "precision": precision, "backend": backend,
                                   "threads": cpus_per_worker},
            batch_size=batch_size,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=cpus_per_worker,
        )
        if partial is not None:
            partial.parent.mkdir(parents=True, exist_ok=True)
        try:
            _write(ds, partial, output_format, report)
        except KeyboardInterrupt:
            raise TaggingInterrupted(
                "nothing was kept: a Ray run cannot be resumed; run it again (or use --engine local --resume)"
            ) from None
        except Exception as err:
            found = _cluster_error(err)
            if found is not None:
                raise RayTaggingError(found) from None
            raise
        if partial is not None:
            os.replace(partial, output)
    finally:
        if partial is not None:
            partial.unlink(missing_ok=True)
        ctx.execution_options.preserve_order, ctx.enable_progress_bars = saved
        data_log.setLevel(saved_level)
        if started:
            ray.shutdown()
    return report


def _write(ds: Any, partial: Path | None, output_format: str, report: TagReport) -> None:
    """Stream the tagged blocks, in order, into ``partial`` (standard output when None)."""
    if output_format == "parquet":
        import pyarrow.parquet as pq

        with pq.ParquetWriter(partial, _output_schema()) as writer:
            for block in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
                writer.write_table(block)
                for rec in block.select(["error", "abstained"]).to_pylist():
                    report.errors += rec["error"] is not None
                    report.abstained += bool(rec["abstained"])
                report.written += block.num_rows
        return
    sink = open(partial, "w", encoding="utf-8") if partial is not None else sys.stdout
    try:
        for block in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
            lines = []
            for rec in block.to_pylist():
                row = output_row(rec)
                lines.append(json.dumps(row, ensure_ascii=False) + "\n")
                report.errors += "error" in row
                report.abstained += bool(row.get("abstained"))
            sink.write("".join(lines))
            report.written += len(lines)
        sink.flush()
    finally:
        if partial is not None:
            sink.close()
