"""Tagging archives: stream articles from files, predict in batches, write JSONL atomically, resume.

One output line per input article, in input order, so a resumed run skips exactly as many inputs as
the partial output holds. Inputs that cannot be classified (empty text, a broken line) get a line with
an ``error`` field instead of vanishing.
"""

from __future__ import annotations

import gzip
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from newsclf.predict import Classifier, load, parse_item

BATCH = 64


def _records_from_text(text: str, stem: str) -> Iterator[dict[str, Any]]:
    from newsclf.data.pages import split_page

    try:
        articles = split_page(text)
    except ValueError:  # no headline found: the whole text is one article
        yield {"id": f"{stem}-0", "title": "", "text": text}
        return
    for i, art in enumerate(articles):
        yield {"id": f"{stem}-{i}", "title": art.title, "text": art.text}


def iter_records(path: str, field_map: dict[str, str] | None = None) -> Iterator[dict[str, Any]]:
    """Yield ``{"id", "title", "text"}`` records from JSONL(.gz), page/text files or ``-`` (stdin), lazily."""
    fm = {"id": "id", "title": "title", "text": "text", **(field_map or {})}
    if path == "-":
        first = sys.stdin.readline()
        if first.lstrip().startswith("{"):
            yield from _jsonl_records(_chain(first, sys.stdin), "stdin", fm)
        else:
            yield from _records_from_text(first + sys.stdin.read(), "stdin")
        return
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"input {path} does not exist")
    if p.name.endswith((".jsonl", ".jsonl.gz", ".json.gz", ".ndjson")):
        opener = gzip.open if p.suffix == ".gz" else open
        with opener(p, "rt", encoding="utf-8") as f:
            yield from _jsonl_records(f, p.name, fm)
        return
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not UTF-8 text (byte {err.start}); convert it to UTF-8 first") from err
    yield from _records_from_text(text, p.stem)


def _chain(first: str, rest: Any) -> Iterator[str]:
    yield first
    yield from rest


def _jsonl_records(lines: Any, name: str, fm: dict[str, str]) -> Iterator[dict[str, Any]]:
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as err:
            yield {"id": f"{name}:{n}", "error": f"line {n} is not valid JSON: {err.msg}"}
            continue
        if not isinstance(rec, dict):
            yield {"id": f"{name}:{n}", "error": f"line {n} is not a JSON object"}
            continue
        yield {
            "id": str(rec.get(fm["id"], f"{name}:{n}")),
            "title": rec.get(fm["title"]) or "",
            "text": rec.get(fm["text"]) or "",
        }


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
            out[i] = {"id": rec["id"], "error": str(err)}
    if ok:
        results = clf.predict([{"title": batch[i]["title"], "text": batch[i]["text"]} for i in ok])
        for i, res in zip(ok, results):
            out[i] = {"id": batch[i]["id"], "label": res["label"], "score": round(res["score"], 4),
                      "abstained": res["abstained"]}
    return out


def tag_file(
    inputs: list[str],
    output: str | None,
    *,
    model: str | Path | Classifier | None = None,
    resume: bool = False,
    field_map: dict[str, str] | None = None,
    progress: bool = True,
) -> int:
    """Tag every article in ``inputs`` and write JSONL (id, label, score, abstained) to ``output`` (or stdout).

    The output is written to ``<output>.partial`` and renamed when complete; ``resume=True`` keeps the
    lines already in the partial file and skips that many input articles. Returns the number of lines.
    """
    from tqdm.auto import tqdm

    clf = model if isinstance(model, Classifier) else load(model)
    records: Iterator[dict[str, Any]] = (r for path in inputs for r in iter_records(path, field_map))
    if output is None:
        sink = sys.stdout
        partial = None
        done = 0
    else:
        partial = Path(output + ".partial")
        done = 0
        if resume and partial.exists():
            with open(partial, encoding="utf-8") as f:
                lines = f.readlines()
            # A crash can leave a half-written last line; drop it and redo that article.
            if lines and not lines[-1].endswith("\n"):
                lines = lines[:-1]
            done = len(lines)
            partial.write_text("".join(lines), encoding="utf-8")
        sink = open(partial, "a" if resume else "w", encoding="utf-8")
    written = done
    try:
        for _ in range(done):
            next(records, None)
        bar = tqdm(desc="tagging", unit="article", initial=done, disable=not progress, file=sys.stderr)
        batch: list[dict[str, Any]] = []
        for rec in records:
            batch.append(rec)
            if len(batch) == BATCH:
                written += _write(sink, _predict_batch(clf, batch))
                bar.update(len(batch))
                batch = []
        if batch:
            written += _write(sink, _predict_batch(clf, batch))
            bar.update(len(batch))
        bar.close()
    finally:
        if partial is not None:
            sink.close()
    if partial is not None:
        os.replace(partial, output)
    return written


def _write(sink: Any, rows: list[dict[str, Any]]) -> int:
    for row in rows:
        sink.write(json.dumps(row, ensure_ascii=False) + "\n")
    sink.flush()
    return len(rows)


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
