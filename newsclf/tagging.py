"""Tagging archives: stream articles from files, predict in batches, write JSONL atomically, resume.

One output line per input article, in input order, so a resumed run skips exactly as many inputs as
the partial output holds. Inputs that cannot be read or classified (a broken line, undecodable bytes, a
lone surrogate, empty text) get a line with an ``error`` field naming file and line instead of vanishing.
A resumable run records what it was written from (``<out>.partial.json``: the inputs' fingerprints and the
model's); ``--resume`` refuses a partial file that belongs to other inputs or another model.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from newsclf.io import Raw, detect_format, read_source, source_stem
from newsclf.predict import Classifier, load, parse_item

BATCH = 64


class TaggingInterrupted(RuntimeError):
    """Ctrl-C during ``tag_file``: the lines written so far are kept; the message says how to go on."""


@dataclass
class TagReport:
    """What a ``tag_file`` run wrote: all lines (resumed ones included), error lines and abstentions."""

    written: int = 0
    errors: int = 0
    abstained: int = 0

    def __int__(self) -> int:
        return self.written


def _text_of(rec: dict, spec: Any) -> Any:
    """The record's value for a field map entry: a field name, or a list of names joined with newlines."""
    if isinstance(spec, list):
        parts = [rec.get(name) for name in spec]
        if any(p is not None and not isinstance(p, str) for p in parts):
            return next(p for p in parts if p is not None and not isinstance(p, str))
        return "\n".join(p.strip() for p in parts if p and p.strip())
    return rec.get(spec)


def to_article(raw: Raw, field_map: dict[str, Any], fallback_id: str) -> dict[str, Any]:
    """``{"id", "title", "text"}`` for a readable record, else ``{"id", "error"}`` naming file and line."""
    if raw.error is not None:
        return {"id": fallback_id, "error": raw.error}
    rec = raw.data
    if not isinstance(rec, dict):
        return {"id": fallback_id, "error": f"{raw.loc}: expected an object with title and text, found "
                                            f"{type(rec).__name__}"}
    fm = {"id": "id", "title": "title", "text": "text", **field_map}
    rid = rec.get(fm["id"])
    rid = fallback_id if rid is None or (isinstance(rid, str) and not rid.strip()) else str(rid)
    title, text = _text_of(rec, fm["title"]), _text_of(rec, fm["text"])
    for name, value in (("title", title), ("text", text)):
        if value is not None and not isinstance(value, str):
            return {"id": rid, "error": f"{raw.loc}: field {name!r} holds a {type(value).__name__}, expected text"}
    return {"id": rid, "title": title or "", "text": text or "", "loc": raw.loc}


def iter_articles(
    path: str, *, format: str | None = None, field_map: dict[str, Any] | None = None
) -> Iterator[dict[str, Any]]:
    """Articles of one input (``-`` = standard input) as ``{"id", "title", "text"}`` or ``{"id", "error"}``."""
    name = "stdin" if path == "-" else source_stem(path)
    fm = dict(field_map or {})

    def names(spec: Any) -> list[str]:
        return list(spec) if isinstance(spec, list) else [spec]

    # A table needs a text (or at least a title) column, or every row would be an error line.
    required = [("text", names(fm.get("text", "text")) + names(fm.get("title", "title")))]
    n = 0
    for n, raw in enumerate(read_source(path, format=format, required_columns=required), 1):
        yield to_article(raw, fm, f"{name}:{n}")


# Kept for older callers: the same reader under its previous name.
iter_records = iter_articles


def _predict_batch(clf: Classifier, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{} for _ in batch]
    ok: list[int] = []
    for i, rec in enumerate(batch):
        if "error" in rec:
            out[i] = {"id": rec["id"], "error": rec["error"]}
            continue
        try:
            parse_item({"title": rec["title"], "text": rec["text"]})
            ok.append(i)
        except (TypeError, ValueError) as err:
            loc = rec.get("loc")
            out[i] = {"id": rec["id"], "error": f"{loc}: {err}" if loc else str(err)}
    if ok:
        results = clf.predict([{"title": batch[i]["title"], "text": batch[i]["text"]} for i in ok])
        for i, res in zip(ok, results):
            row = {"id": batch[i]["id"], "label": res["label"], "score": round(res["score"], 4),
                   "abstained": res["abstained"]}
            if res.get("reason"):
                row["reason"] = res["reason"]
            out[i] = row
    return out


# ---------------------------------------------------------------- what a partial output belongs to


def _file_fingerprint(path: Path) -> dict[str, Any]:
    """Size and a hash of the first and last MiB: tells files apart without reading a large archive twice."""
    size = path.stat().st_size
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read(1 << 20))
        if size > 2 << 20:
            f.seek(-(1 << 20), os.SEEK_END)
            h.update(f.read())
    return {"file": str(path.resolve()), "size": size, "sha256_head_tail": h.hexdigest()[:16]}


def _run_fingerprint(inputs: list[str], clf: Classifier, format: str | None, field_map: Any) -> dict[str, Any]:
    from newsclf import artifact

    return {
        "inputs": [_file_fingerprint(Path(p)) for p in inputs],
        "model": artifact.fingerprint(clf.path) if clf.path else None,
        # int8 and fp32 (or two backends) score apart in the last digits: one output file, one runtime.
        "runs": f"{clf.backend} {clf.precision}",
        "format": format,
        "field_map": field_map or {},
    }


def _check_resume(sidecar: Path, want: dict[str, Any], partial: Path) -> None:
    if not sidecar.exists():
        raise ValueError(
            f"--resume: {partial} has no record of the inputs and model it was written from ({sidecar.name}), so "
            "it cannot be checked; delete it and run without --resume"
        )
    have = json.loads(sidecar.read_text(encoding="utf-8"))
    diffs = []
    if have.get("model") != want["model"]:
        diffs.append("the model differs")
    if have.get("runs", want["runs"]) != want["runs"]:  # (records of older versions have no "runs")
        diffs.append(f"it was written on {have['runs']}, this run is on {want['runs']}: pass the same --precision "
                     "and --backend, with the same extras installed")
    if [i.get("file") for i in have.get("inputs", [])] != [i["file"] for i in want["inputs"]]:
        diffs.append("the input files differ (" + ", ".join(i.get("file", "?") for i in have.get("inputs", [])) + ")")
    elif have.get("inputs") != want["inputs"]:
        diffs.append("an input file changed since")
    if have.get("format") != want["format"] or have.get("field_map") != want["field_map"]:
        diffs.append("--format or --field-map differ")
    if diffs:
        raise ValueError(
            f"--resume: {partial} belongs to another run ({'; '.join(diffs)}); rerun with the same inputs and "
            "model, or delete it and start without --resume"
        )


def _count_records(inputs: list[str], format: str | None) -> int | None:
    """The number of input records when it is cheap to know (JSONL lines), for the progress bar's total."""
    total = 0
    for path in inputs:
        if path == "-":
            return None
        try:
            kind = detect_format(path, format)
        except ValueError:
            return None
        if kind != "jsonl":
            return None
        from newsclf.io import _open_bytes

        try:
            with _open_bytes(Path(path)) as f:
                total += sum(1 for line in f if line.strip())
        except Exception:  # a broken file is reported by the reader itself, with its line
            return None
    return total


def tag_file(
    inputs: list[str],
    output: str | None,
    *,
    model: str | Path | Classifier | None = None,
    resume: bool = False,
    field_map: dict[str, Any] | None = None,
    format: str | None = None,
    progress: bool = True,
    precision: str = "auto",
    backend: str = "auto",
) -> TagReport:
    """Tag every article in ``inputs`` and write JSONL (id, label, score, abstained[, reason]) to ``output``.

    ``precision`` and ``backend``: as :func:`newsclf.load` (ignored when ``model`` is a loaded Classifier).

    ``output=None`` writes to standard output. Otherwise lines go to ``<output>.partial`` (with
    ``<output>.partial.json`` saying which inputs and model they come from), renamed to ``output`` when
    complete; ``resume=True`` keeps the lines already in the partial file and skips that many input
    articles, after checking the partial file belongs to the same inputs and model. Ctrl-C raises
    :class:`TaggingInterrupted` with the lines written so far kept.
    """
    from tqdm.auto import tqdm

    if not inputs:
        raise ValueError("no inputs given; pass files, or - for standard input")
    for path in inputs:
        if path != "-":
            if not Path(path).exists():
                raise FileNotFoundError(f"input {path} does not exist")
            detect_format(path, format)  # an unknown extension fails before the model loads
    if inputs.count("-") > 1:
        raise ValueError("standard input (-) can be read only once")
    if resume and output is None:
        raise ValueError("--resume needs --out: a run written to standard output cannot be continued")
    if resume and "-" in inputs:
        raise ValueError("--resume cannot check standard input is the same as before; pass the input as a file")
    clf = model if isinstance(model, Classifier) else load(model, precision=precision, backend=backend)
    report = TagReport()
    partial = sidecar = None
    done = 0
    if output is None:
        sink: Any = sys.stdout
    else:
        partial = Path(output + ".partial")
        sidecar = Path(output + ".partial.json")
        want = _run_fingerprint([p for p in inputs if p != "-"], clf, format, field_map)
        if resume and partial.exists():
            _check_resume(sidecar, want, partial)
            with open(partial, encoding="utf-8") as f:
                lines = f.readlines()
            # A crash can leave a half-written last line; drop it and redo that article.
            if lines and not lines[-1].endswith("\n"):
                lines = lines[:-1]
            done = len(lines)
            partial.write_text("".join(lines), encoding="utf-8")
            for line in lines:
                row = json.loads(line)
                report.errors += "error" in row
                report.abstained += bool(row.get("abstained"))
        else:
            Path(output).parent.mkdir(parents=True, exist_ok=True)
            sidecar.write_text(json.dumps(want, ensure_ascii=False, indent=1), encoding="utf-8")
        sink = open(partial, "a" if resume else "w", encoding="utf-8")
    report.written = done
    records = (r for path in inputs for r in iter_articles(path, format=format, field_map=field_map))
    total = _count_records(inputs, format) if progress else None
    bar = tqdm(desc="tagging", unit="article", initial=done, total=total, disable=not progress, file=sys.stderr)
    try:
        for _ in range(done):
            if next(records, None) is None:
                raise ValueError(f"--resume: {partial} holds {done} lines but the inputs have fewer articles")
        batch: list[dict[str, Any]] = []
        for rec in records:
            batch.append(rec)
            if len(batch) == BATCH:
                _write(sink, _predict_batch(clf, batch), report)
                bar.update(len(batch))
                batch = []
        if batch:
            _write(sink, _predict_batch(clf, batch), report)
            bar.update(len(batch))
    except KeyboardInterrupt:
        bar.close()
        if partial is None:
            raise TaggingInterrupted(f"{report.written} articles were written to standard output") from None
        sink.close()
        raise TaggingInterrupted(
            f"{report.written} articles are in {partial}; run the same command with --resume to continue"
        ) from None
    finally:
        bar.close()
        if partial is not None:
            sink.close()
    if partial is not None:
        os.replace(partial, output)
        sidecar.unlink(missing_ok=True)
    return report


def _write(sink: Any, rows: list[dict[str, Any]], report: TagReport) -> None:
    for row in rows:
        sink.write(json.dumps(row, ensure_ascii=False) + "\n")
        report.errors += "error" in row
        report.abstained += bool(row.get("abstained"))
    sink.flush()
    report.written += len(rows)


def tag_dataset(dataset: Any, model: str | Path, *, num_proc: int = 1, batch_size: int = 64) -> Any:
    """Add ``label``/``score`` columns to a ``datasets.Dataset`` with ``Dataset.map`` (``num_proc`` workers).

    Each worker process loads the model once (``newsclf.load`` caches per process), so this scales over
    the cores of one machine; for a cluster, the same function per batch runs under Ray Data's
    ``map_batches`` or Spark's ``mapInPandas`` (see the README).
    """
    path = str(model)

    def label_batch(batch: dict[str, list]) -> dict[str, list]:
        import torch

        if num_proc > 1:
            torch.set_num_threads(1)  # one thread per worker: the workers already fill the cores
        results = load(path).predict([{"title": t, "text": x} for t, x in zip(batch["title"], batch["text"])])
        return {"predicted": [r["label"] for r in results], "score": [r["score"] for r in results]}

    return dataset.map(label_batch, batched=True, batch_size=batch_size, num_proc=num_proc if num_proc > 1 else None,
                       desc="tagging")
