"""Where ``newsclf annotate`` keeps its decisions: an append-only journal, a gold CSV rebuilt from it, a lock.

Three files sit beside ``--out``:

- ``<out>.journal.jsonl``: one JSON line per action (``label``, ``skip``, ``undo``, and ``keep`` for rows a
  CSV already held before its first session), appended, flushed and fsynced before the browser is told the
  action was taken. It is the truth: replaying it gives every decision, so a ``kill -9`` loses nothing
  acknowledged, and undo is a line of its own rather than an edit of the past.
- ``<out>`` itself: ``id,label,annotator,timestamp``, rewritten from the journal after every action (temp
  file, fsync, ``os.replace``), so it is always whole and is what a config's ``gold:`` reads. Skips are in
  the journal only, which keeps the CSV a clean list of labels.
- ``<out>.lock``: held with ``flock`` for as long as the store is open, so a second annotator process on the
  same CSV stops at once with a message instead of interleaving writes.

Within one process a ``threading.Lock`` serialises actions (two browser tabs). A decision names its article
and is refused if that article already has one, and an undo names the decision it means to take back, so a
stale tab gets a 409 and reloads instead of labelling or undoing the wrong article.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import tempfile
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

JOURNAL_FORMAT = "newsclf-annotate/1"
CSV_COLUMNS = ("id", "label", "annotator", "timestamp")


class Conflict(ValueError):
    """An action that no longer fits the store's state (another tab got there first); HTTP 409."""


class UnknownArticle(KeyError):
    """An article id that is not in the queue; HTTP 404."""

    def __str__(self) -> str:  # KeyError's own str() wraps the message in quotes
        return str(self.args[0])


def _fsync_dir(path: Path) -> None:
    """Make a rename or a new file in ``path`` durable (the directory entry, not only the data)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # some systems cannot open a folder; the rename is still atomic there
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _csv_text(rows: list[dict[str, str]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _read_csv(path: Path) -> list[dict[str, str]]:
    """The rows of an existing output CSV; refuses one with columns the rewrite would drop."""
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        fields = reader.fieldnames or []
        if not fields:
            return []
        if "id" not in fields or "label" not in fields or set(fields) - set(CSV_COLUMNS):
            raise ValueError(f"--out {str(path)!r} has columns {fields}, expected {list(CSV_COLUMNS)} (id and label "
                             "at least); give a new file name, so that this file is left as it is")
        return [{k: (row.get(k) or "").strip() for k in CSV_COLUMNS} for row in reader if (row.get("id") or "").strip()]


class Store:
    """The decisions for one queue and one output CSV. Open it with :func:`open_store`; close it when done."""

    def __init__(self, queue: list[dict[str, Any]], out: Path, annotator: str) -> None:
        self.queue = queue
        self.ids = [row["id"] for row in queue]
        self._index = {aid: i for i, aid in enumerate(self.ids)}
        self.labels: list[str] = list(queue[0]["labels"])
        self.out = out
        self.journal_path = out.with_name(out.name + ".journal.jsonl")
        self.lock_path = out.with_name(out.name + ".lock")
        self.annotator = annotator
        self._lock = threading.Lock()
        self._lock_fd: int | None = None
        self._journal: Any = None
        # id -> the row the CSV shows; kept rows and ids outside the queue stay in it untouched.
        self.rows: dict[str, dict[str, str]] = {}
        self.skipped: set[str] = set()
        self.stack: list[dict[str, Any]] = []  # decisions this journal can undo, oldest first

    # -- state ------------------------------------------------------------------------------------
    def _apply(self, entry: dict[str, Any], where: str) -> None:
        op, aid = entry.get("op"), str(entry.get("id", ""))
        if op in ("label", "keep"):
            self.rows[aid] = {"id": aid, "label": entry["label"], "annotator": entry.get("annotator", ""),
                              "timestamp": entry.get("timestamp", "")}
            self.skipped.discard(aid)
        elif op == "skip":
            self.skipped.add(aid)
        elif op == "undo":
            if not self.stack or self.stack[-1]["id"] != aid:
                raise ValueError(f"{where}: undo of {aid!r} does not match the last decision; the journal was "
                                 "edited by hand — restore it, or move it aside to start a new one")
            last = self.stack.pop()
            if last["op"] == "skip":
                self.skipped.discard(aid)
            else:
                self.rows.pop(aid, None)
            return
        else:
            raise ValueError(f"{where}: unknown journal entry {entry!r}; this file was not written by newsclf annotate")
        if op != "keep":
            self.stack.append(entry)

    def decided(self, aid: str) -> str | None:
        """``"label"``, ``"skip"`` or None."""
        if aid in self.rows:
            return "label"
        return "skip" if aid in self.skipped else None

    def state(self) -> dict[str, Any]:
        """What the page shows: the first article without a decision, counts, and the last decision."""
        with self._lock:
            current = next((i for i, aid in enumerate(self.ids) if self.decided(aid) is None), None)
            labelled = sum(1 for aid in self.ids if aid in self.rows)
            skipped = sum(1 for aid in self.ids if aid in self.skipped and aid not in self.rows)
            last = self.stack[-1] if self.stack else None
            return {
                "total": len(self.ids), "labelled": labelled, "skipped": skipped,
                "position": None if current is None else current + 1,
                "article": None if current is None else self.queue[current],
                "last": None if last is None else {"id": last["id"], "op": last["op"], "label": last.get("label")},
                "labels": self.labels, "annotator": self.annotator, "out": str(self.out),
            }

    # -- actions ----------------------------------------------------------------------------------
    def decide(self, aid: str, label: str | None) -> dict[str, Any]:
        """Label article ``aid`` (``label=None``: skip it). Durable when this returns."""
        aid = str(aid)
        if aid not in self._index:
            raise UnknownArticle(f"article {aid!r} is not in this queue (it has {len(self.ids)} articles); "
                                 "reload the page")
        if label is not None and label not in self.labels:
            raise ValueError(f"label {label!r} is not one of the queue's labels {self.labels}")
        with self._lock:
            done = self.decided(aid)
            if done is not None:
                what = f"labelled {self.rows[aid]['label']!r}" if done == "label" else "skipped"
                raise Conflict(f"article {aid!r} was already {what} (another tab?); the page shows the next one")
            entry: dict[str, Any] = {"op": "skip" if label is None else "label", "id": aid}
            if label is not None:
                entry.update(label=label, annotator=self.annotator,
                             timestamp=datetime.now(timezone.utc).isoformat(timespec="seconds"))
            self._write(entry)
        return self.state()

    def undo(self, expect: str | None = None) -> dict[str, Any]:
        """Take back the last decision; ``expect``: the id the page believes it is (else 409)."""
        with self._lock:
            if not self.stack:
                raise Conflict("nothing to undo: no decision made with this journal yet")
            last = self.stack[-1]["id"]
            if expect is not None and str(expect) != last:
                raise Conflict(f"the last decision is for article {last!r}, not {str(expect)!r} (another tab?); "
                               "the page reloads")
            self._write({"op": "undo", "id": last})
        return self.state()

    def _write(self, entry: dict[str, Any]) -> None:
        """Journal first (fsync), then the CSV; the state changes only once both are on disk."""
        self._append(entry)
        self._apply(entry, str(self.journal_path))
        self._write_csv()

    def _append(self, entry: dict[str, Any]) -> None:
        self._journal.write(json.dumps(entry, ensure_ascii=False) + "\n")
        self._journal.flush()
        os.fsync(self._journal.fileno())

    def _write_csv(self) -> None:
        rows = list(self.rows.values())
        fd, tmp = tempfile.mkstemp(prefix=f".{self.out.name}.", suffix=".tmp", dir=str(self.out.parent))
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
                f.write(_csv_text(rows))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.out)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(self.out.parent)

    # -- opening and closing ----------------------------------------------------------------------
    def _take_lock(self) -> None:
        import fcntl

        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise OSError(f"--out {str(self.out)!r} is being written by another annotator ({holder}; lock file "
                          f"{str(self.lock_path)!r}); stop that one first, or give a different --out") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"newsclf annotate, pid {os.getpid()}, annotator {self.annotator}".encode())
        self._lock_fd = fd

    def _load(self) -> None:
        """Replay the journal (or start one from the rows an existing CSV holds), then rewrite the CSV."""
        before: list[dict[str, str]] | None = _read_csv(self.out) if self.out.exists() else None
        entries: list[dict[str, Any]] = []
        if self.journal_path.exists():
            with self.journal_path.open("rb") as f:
                data = f.read()
            lines = data.split(b"\n")
            for n, raw in enumerate(lines, 1):
                if not raw.strip():
                    continue
                try:
                    entry = json.loads(raw)
                except json.JSONDecodeError:
                    if n == len(lines) and not data.endswith(b"\n"):
                        # A line cut short by a crash mid-write: it was never acknowledged, so drop it.
                        with self.journal_path.open("r+b") as f:
                            f.truncate(len(data) - len(raw))
                        break
                    raise ValueError(f"{self.journal_path}:{n}: not JSON; this journal was damaged — restore it "
                                     "or move it aside") from None
                if n == 1 and isinstance(entry, dict) and "journal" in entry:
                    if entry["journal"] != JOURNAL_FORMAT:
                        raise ValueError(f"{self.journal_path}: format {entry['journal']!r}, expected {JOURNAL_FORMAT!r}")
                    continue
                if not isinstance(entry, dict):
                    raise ValueError(f"{self.journal_path}:{n}: expected a JSON object, found {raw[:60]!r}")
                entries.append(entry)
                self._apply(entry, f"{self.journal_path}:{n}")
            if before is not None and entries:
                self._check_csv(before, entries)
        self._journal = self.journal_path.open("a", encoding="utf-8")
        if not self.journal_path.stat().st_size:
            self._append({"journal": JOURNAL_FORMAT, "labels": self.labels})
            _fsync_dir(self.journal_path.parent)
        if not entries:
            # A CSV made elsewhere (or by hand): its rows are kept, never undone, never lost. With no entry in
            # the journal yet, any row the CSV holds came from outside it, so this is also right after a crash
            # that left a journal with only its first line.
            for row in before or []:
                entry = {"op": "keep", **row}
                self._append(entry)
                self._apply(entry, str(self.out))
        self._write_csv()

    def _check_csv(self, before: list[dict[str, str]], entries: list[dict[str, Any]]) -> None:
        """Refuse to overwrite a CSV edited by hand since the journal last wrote it.

        The CSV may lag the journal by the last entry (a crash between the two writes), never more.
        """
        found = {r["id"]: r["label"] for r in before}
        if found == {k: r["label"] for k, r in self.rows.items()}:
            return
        lagging = Store(self.queue, self.out, self.annotator)
        for entry in entries[:-1]:
            lagging._apply(entry, "")
        if found == {k: r["label"] for k, r in lagging.rows.items()}:
            return
        raise ValueError(f"--out {str(self.out)!r} differs from its journal {str(self.journal_path)!r} (edited by "
                         "hand?); move one of the two aside: without the journal the CSV's rows are kept as they are")

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_store(queue: list[dict[str, Any]], out: str | Path, annotator: str) -> Store:
    """Check ``out`` can be written, take its lock, replay its journal: a Store ready for decisions."""
    out = Path(out)
    if out.is_dir():
        raise IsADirectoryError(f"--out {str(out)!r} is a folder; give a CSV file name such as gold/my-labels.csv")
    if out.suffix.lower() != ".csv":
        raise ValueError(f"--out {str(out)!r}: expected a .csv file (what a config's gold: reads), found "
                         f"{out.suffix or 'no extension'!r}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OSError(f"--out {str(out)!r}: cannot create its folder ({err.strerror or err})") from None
    for path in (out.parent, out, out.with_name(out.name + ".journal.jsonl")):
        if path.exists() and not os.access(path, os.W_OK):
            raise PermissionError(f"--out {str(out)!r}: {str(path)!r} is not writable; fix its permissions or "
                                  "give a --out in a folder you can write")
    store = Store(queue, out, annotator)
    try:
        store._take_lock()
        store._load()
    except PermissionError as err:
        store.close()
        raise PermissionError(f"--out {str(out)!r}: cannot write {err.filename or out} ({err.strerror}); fix its "
                              "permissions or give a --out in a folder you can write") from None
    except BaseException:
        store.close()
        raise
    return store


# -- the label guide ---------------------------------------------------------------------------------
def parse_guide(text: str, labels: list[str]) -> dict[str, Any]:
    """``{"intro": str, "labels": {label: definition}}`` from Markdown where ``## label`` starts each definition.

    A heading may carry more after the label name (``## safety — accidents``); headings that name no label
    stay in the text of the section before them.
    """
    intro: list[str] = []
    defs: dict[str, list[str]] = {}
    current = intro
    for line in text.splitlines():
        m = re.match(r"^##\s+`?([\w-]+)`?", line)
        if m and m.group(1) in labels:
            current = defs.setdefault(m.group(1), [])
            continue
        current.append(line)
    intro_text = _unwrap("\n".join(x for x in intro if not x.startswith("# ")))
    return {"intro": intro_text, "labels": {k: _unwrap("\n".join(v)) for k, v in defs.items()}}


def _unwrap(text: str) -> str:
    """Join a Markdown paragraph's wrapped lines (a space between Latin words, none between Han characters);
    blank lines, list items and headings stay on lines of their own: the page wraps the text itself."""
    out: list[str] = []
    for line in text.strip().splitlines():
        line = line.strip()
        prev = out[-1] if out else ""
        if not line or not prev or prev.startswith("#") or re.match(r"([-*+]|\d+\.) |#", line):
            out.append(line)
        else:
            han = ord(prev[-1]) > 0x2E7F and ord(line[0]) > 0x2E7F
            out[-1] = prev + ("" if han else " ") + line
    return "\n".join(out)
