"""The reading queue: what ``newsclf suggest`` writes and ``newsclf annotate`` / the Label Studio export read.

One JSON object per line, self-contained so that any line can be read alone::

    {"queue": "newsclf-queue/1", "rank": 1, "id": "...", "title": "...", "text": "...",
     "reason": "disagreement", "reasons": ["disagreement", "uncertainty"],
     "suggested": "governance", "score": 0.81,
     "scores": {"margin": 0.12, "probs": {...}, "rule_label": "other", "label_error": 0.4, ...},
     "keywords": [{"word": "...", "weight": 0.2}], "labels": ["governance", ..., "other"]}

``suggested`` is the label the model (or the cheap cross-validated model) thinks most likely and ``score`` its
probability; ``scores`` holds everything the choice was based on. ``keywords`` may be empty.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

QUEUE_FORMAT = "newsclf-queue/1"
REQUIRED = ("id", "title", "text", "reason", "suggested", "score", "labels")


def validate_row(row: Any, where: str) -> dict[str, Any]:
    """Check one queue line; raise ``ValueError`` naming ``where`` (file:line) and what is wrong."""
    if not isinstance(row, dict):
        raise ValueError(f"{where}: expected a JSON object (a newsclf queue line), found {type(row).__name__}")
    if row.get("queue") != QUEUE_FORMAT:
        raise ValueError(
            f"{where}: not a newsclf queue (expected \"queue\": \"{QUEUE_FORMAT}\", found "
            f"{row.get('queue')!r}); make one with `newsclf suggest DATA --n N --out QUEUE.jsonl`"
        )
    missing = [k for k in REQUIRED if k not in row]
    if missing:
        raise ValueError(f"{where}: queue line lacks {missing}; rewrite the queue with `newsclf suggest`")
    labels = row["labels"]
    if not isinstance(labels, list) or len(labels) < 2 or not all(isinstance(x, str) and x for x in labels):
        raise ValueError(f"{where}: 'labels' must be a list of at least two label names, found {labels!r}")
    if row["suggested"] not in labels:
        raise ValueError(f"{where}: suggested label {row['suggested']!r} is not in the queue's labels {labels}")
    row["id"] = str(row["id"])
    return row


def read_queue(path: str | Path) -> list[dict[str, Any]]:
    """Every line of a queue file, checked; all lines must share one label set and ids must be unique."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"queue {str(path)!r} does not exist; make one with `newsclf suggest`")
    if path.is_dir():
        raise IsADirectoryError(f"queue {str(path)!r} is a folder; give the JSONL file `newsclf suggest` wrote")
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{n}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{where}: not JSON ({err.msg}); a queue is JSON lines from `newsclf suggest`") from None
            row = validate_row(obj, where)
            if rows and row["labels"] != rows[0]["labels"]:
                raise ValueError(f"{where}: label set {row['labels']} differs from the first line's {rows[0]['labels']}")
            if row["id"] in seen:
                raise ValueError(f"{where}: article id {row['id']!r} appears twice in the queue")
            seen.add(row["id"])
            rows.append(row)
    if not rows:
        raise ValueError(f"queue {str(path)!r} is empty; nothing to read")
    return rows


def write_jsonl(rows: Iterable[dict[str, Any]], out: str | Path, example: str = "out.jsonl") -> Path:
    """Write ``rows`` as JSON lines atomically (a temp file beside ``out``, then renamed); returns the path.

    The one JSONL writer of the labelling loop (queues, label-error flags): a reader never sees half a file.
    """
    target = Path(out)
    if target.is_dir():
        raise IsADirectoryError(f"--out {str(target)!r} is a folder; give a file name such as {example}")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=str(target.parent))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def write_queue(rows: Iterable[dict[str, Any]], out: str | Path) -> Path:
    """Write queue lines atomically (see :func:`write_jsonl`), each with the format marker."""
    return write_jsonl(({"queue": QUEUE_FORMAT, **row} for row in rows), out, example="queue.jsonl")
