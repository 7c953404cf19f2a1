"""Loading articles from JSONL (also gzipped), JSON, CSV/TSV, Parquet and newspaper page files.

Every source becomes the same table, a :class:`datasets.Dataset` whose columns are all strings:

``id``, ``title``, ``text``, ``date`` (``YYYY-MM-DD`` or ``""``), ``source``, ``page``, ``section`` and
``label`` (``None`` when the input has none).

Records are read with plain ``json``/``csv``/``gzip`` streaming (the shared 20k-article corpora load in a few
seconds) and checked one by one. A bad record (malformed line, missing or wrongly typed field, unreadable
date, repeated id) is an error naming file, line and field, or, with ``on_bad_record="skip"``, is skipped
and counted. Records shorter than ``min_chars`` are always dropped and counted. Nothing is dropped
silently: the counts are logged, printed to stderr and stored as JSON in ``dataset.info.description``
(read them back with :func:`load_report`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from datasets import Dataset, DatasetInfo, Features, Value

from newsclf.io import (
    FORMATS_HELP,
    PAGE_SUFFIXES,
    clean_text,
    clean_title,
    detect_format,
    read_source,
    source_stem,
)

__all__ = ["COLUMNS", "EMBEDDED_DIR", "PAGES_DIR", "load_articles", "load_report", "normalize_date"]

log = logging.getLogger(__name__)

COLUMNS = ["id", "title", "text", "date", "source", "page", "section", "label"]
EMBEDDED_DIR = Path(__file__).resolve().parents[1] / "corpus"
PAGES_DIR = EMBEDDED_DIR / "pages"
# Field names tried, in order, when field_map does not name one; the first present wins.
DEFAULT_FIELDS: dict[str, tuple[str, ...]] = {
    "id": ("id",),
    "title": ("title",),
    "text": ("text",),
    "date": ("date",),
    "source": ("source",),
    "page": ("page",),
    "section": ("section", "column"),
    "label": ("label",),
}
FEATURES = Features({c: Value("string") for c in COLUMNS})
_FIX = "fix the record, map the field with field_map, or pass on_bad_record='skip'"
_FORMATS = FORMATS_HELP


class _BadRecord(Exception):
    """One record that cannot be used; ``reason`` is the short key it is counted under."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


def normalize_date(value: Any) -> str:
    """``20200526``, ``2020-5-26``, ``2020/05/26``, ``2020年5月26日``, ISO timestamps → ``2020-05-26``.

    ``None``/``""`` → ``""``; anything else that is not a real date raises ``ValueError``.
    """
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    s = str(value).strip()
    if not s:
        return ""
    m = re.fullmatch(r"(\d{4})(\d{2})(\d{2})", s) or re.fullmatch(
        r"(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?(?:[T ].*)?", s
    )
    if m:
        try:
            return dt.date(int(m[1]), int(m[2]), int(m[3])).isoformat()
        except ValueError:
            pass
    raise ValueError(f"unreadable date {s!r}; expected YYYY-MM-DD, YYYYMMDD, YYYY/MM/DD or YYYY年M月D日")


def _check_field_map(field_map: dict | None) -> dict[str, str | list[str]]:
    fmap = dict(field_map or {})
    for col, spec in fmap.items():
        if col not in COLUMNS:
            raise ValueError(
                f"field_map key {col!r} is not a column; expected one of {', '.join(COLUMNS)} "
                "(keys are our column names, values the field names in your records)"
            )
        ok = (
            isinstance(spec, str)
            and spec
            or (isinstance(spec, list) and spec and all(isinstance(s, str) and s for s in spec))
        )
        if not ok:
            raise ValueError(
                f"field_map[{col!r}] = {spec!r}; expected a field name or a non-empty list of field names "
                "(a list is joined with newlines, e.g. {'text': ['lead', 'subtitle', 'body']})"
            )
    return fmap


# ---------------------------------------------------------------- records → rows


def _as_text(value: Any, col: str, loc: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float, bool, dt.date)):
        return str(value)
    raise _BadRecord(
        f"bad type in field '{col}'",
        f"{loc}: field for {col!r} holds a {type(value).__name__}, expected text; {_FIX}",
    )


def _field(rec: dict, col: str, fmap: dict, loc: str) -> tuple[str | None, bool]:
    """The record's value for our column ``col`` and whether any source field was present."""
    spec = fmap.get(col)
    if spec is None:
        for name in DEFAULT_FIELDS[col]:
            if name in rec:
                return rec[name], True
        return None, False
    names = [spec] if isinstance(spec, str) else spec
    present = [n for n in names if n in rec]
    if not present:
        return None, False
    if isinstance(spec, str):
        return rec[spec], True
    parts = [_as_text(rec[n], col, loc).strip() for n in present]
    return "\n".join(p for p in parts if p), True


def _to_row(rec: Any, loc: str, fmap: dict, stem: str, line_id: str, source: str | None) -> dict[str, Any]:
    if not isinstance(rec, dict):
        raise _BadRecord(
            "not a JSON object",
            f"{loc}: expected an object with article fields, found {type(rec).__name__}; {_FIX}",
        )
    row: dict[str, Any] = {}
    for col in COLUMNS:
        value, present = _field(rec, col, fmap, loc)
        required = col == "text" or col in fmap
        if required and not present:
            names = fmap.get(col, DEFAULT_FIELDS[col])
            names = [names] if isinstance(names, str) else list(names)
            shown = ", ".join(map(str, list(rec)[:12])) or "none"
            raise _BadRecord(
                f"missing field '{col}'",
                f"{loc}: missing required field {' / '.join(repr(n) for n in names)} for {col!r} "
                f"(fields present: {shown}); {_FIX}",
            )
        if col == "label":
            row[col] = None if value is None else _as_text(value, col, loc)
            continue
        row[col] = _as_text(value, col, loc)
    row["text"] = clean_text(row["text"])
    if not row["text"]:
        raise _BadRecord("empty text", f"{loc}: field for 'text' is empty; {_FIX}")
    row["title"] = clean_title(row["title"])
    try:
        row["date"] = normalize_date(row["date"])
    except ValueError as err:
        raise _BadRecord("unreadable date", f"{loc}: field 'date': {err}; {_FIX}") from None
    row["id"] = row["id"].strip() or f"{stem}-{line_id}"
    row["source"] = row["source"].strip() or source or stem
    return row


def _required_columns(fmap: dict) -> list[tuple[str, list[str]]]:
    """Column-name alternatives a table must have: the text column (or its mapping) and every mapped column."""
    specs = [("text", fmap.get("text", DEFAULT_FIELDS["text"]))] + [(c, s) for c, s in fmap.items() if c != "text"]
    return [(col, [spec] if isinstance(spec, str) else list(spec)) for col, spec in specs]


def _expand(paths: str | Path | Sequence[str | Path], format: str | None = None) -> list[Path]:
    items = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if not items:
        raise ValueError("no input paths given; expected files, folders, 'embedded' or 'embedded-pages'")
    files: list[Path] = []
    for item in items:
        if str(item) == "embedded":
            found = sorted(EMBEDDED_DIR.glob("articles*.jsonl"))
            if not found:
                raise ValueError(f"no embedded corpus: expected articles*.jsonl files in {EMBEDDED_DIR}")
            files.extend(found)
            continue
        p = PAGES_DIR if str(item) == "embedded-pages" else Path(item)
        if p.is_dir():
            pages = sorted(x for x in p.iterdir() if x.is_file() and x.suffix.lower() in PAGE_SUFFIXES)
            if not pages:
                others = ", ".join(sorted(x.name for x in p.iterdir())[:8]) or "nothing"
                raise ValueError(
                    f"{p}: folder holds no page files (.md/.txt), found {others}; "
                    "pass data files such as .jsonl or .csv by name"
                )
            files.extend(pages)
        elif p.is_file():
            if format is None:
                detect_format(p)  # an unknown extension fails here, before any reading
            files.append(p)
        else:
            raise FileNotFoundError(
                f"{p}: no such file or folder; expected a file ({_FORMATS}), a folder of page files, "
                "'embedded' or 'embedded-pages'"
            )
    return files


def load_articles(
    paths: str | Path | Sequence[str | Path],
    *,
    field_map: dict | None = None,
    on_bad_record: str = "error",
    min_chars: int = 0,
    source: str | None = None,
    format: str | None = None,
) -> Dataset:
    """Load articles from files, folders of page files, ``"embedded"`` or ``"embedded-pages"``.

    ``field_map`` maps our column to the record's field name, or to a list of names whose non-empty values
    are joined with newlines (``{"text": ["lead", "subtitle", "body"]}``); fields named there are required.
    ``on_bad_record``: ``"error"`` raises ``ValueError`` naming file, line and field; ``"skip"`` skips the
    record and counts it. Records with fewer than ``min_chars`` characters of text are dropped and counted.
    ``source`` fills the ``source`` column where a record has none (default: the file name without
    extensions). ``format`` names the files' format (one of ``newsclf.io.FORMATS``) instead of reading it
    from their extensions. A missing ``id`` becomes ``{file stem}-{line}``. The counts are logged, printed to stderr
    when anything was dropped, and stored as JSON in ``dataset.info.description`` (see :func:`load_report`).
    """
    if on_bad_record not in ("error", "skip"):
        raise ValueError(f"on_bad_record={on_bad_record!r}; expected 'error' or 'skip'")
    if isinstance(min_chars, bool) or not isinstance(min_chars, int) or min_chars < 0:
        raise ValueError(f"min_chars={min_chars!r}; expected a non-negative integer")
    fmap = _check_field_map(field_map)
    files = _expand(paths, format)
    columns: dict[str, list] = {c: [] for c in COLUMNS}
    dropped: Counter[str] = Counter()
    first_seen: dict[str, str] = {}
    read = 0
    for path in files:
        kind, stem = detect_format(path, None if path.parent == EMBEDDED_DIR else format), source_stem(path)
        records = read_source(path, format=kind, required_columns=_required_columns(fmap), page_source=source)
        # Page records already carry our column names; a field_map is for the user's data files.
        file_map = {} if kind in ("page", "text") else fmap
        for raw in records:
            read += 1
            loc = raw.loc
            try:
                if raw.error is not None:
                    raise _BadRecord(raw.reason or "unreadable record", f"{raw.error}; {_FIX}")
                row = _to_row(raw.data, loc, file_map, stem, loc.rsplit(" ", 1)[-1], source)
                if row["id"] in first_seen:
                    raise _BadRecord(
                        "duplicate id",
                        f"{loc}: duplicate id {row['id']!r} (first seen at {first_seen[row['id']]}); give "
                        "every record its own id, or pass on_bad_record='skip' to keep the first",
                    )
            except _BadRecord as bad:
                if on_bad_record == "error":
                    raise ValueError(str(bad)) from None
                dropped[bad.reason] += 1
                continue
            if len(row["text"]) < min_chars:
                dropped[f"shorter than min_chars={min_chars}"] += 1
                continue
            first_seen[row["id"]] = loc
            for c in COLUMNS:
                columns[c].append(row[c])
    kept = len(columns["id"])
    report = {
        "files": [str(p) for p in files],
        "records_read": read,
        "loaded": kept,
        "dropped": dict(sorted(dropped.items())),
    }
    if dropped:
        summary = ", ".join(f"{n} {reason}" for reason, n in sorted(dropped.items()))
        msg = f"load_articles: kept {kept} of {read} records from {len(files)} file(s); dropped {summary}"
        log.warning(msg)
        print(msg, file=sys.stderr)
    else:
        log.info("load_articles: loaded %d records from %d file(s)", kept, len(files))
    if kept == 0:
        why = (
            ", ".join(f"{n} {reason}" for reason, n in sorted(dropped.items()))
            or "the input holds no records"
        )
        hint = (
            "lower min_chars"
            if any(r.startswith("shorter") for r in dropped)
            else "check the files and field_map"
        )
        raise ValueError(
            f"no articles left after loading {len(files)} file(s) ({read} records read; {why}); {hint}"
        )
    info = DatasetInfo(description=json.dumps(report, ensure_ascii=False), features=FEATURES)
    return Dataset.from_dict(columns, features=FEATURES, info=info)


def load_report(dataset: Dataset) -> dict[str, Any]:
    """The load counts stored by :func:`load_articles`: files, records_read, loaded, dropped (by reason)."""
    try:
        report = json.loads(dataset.info.description or "")
    except json.JSONDecodeError:
        report = None
    if not isinstance(report, dict) or "loaded" not in report:
        raise ValueError("this dataset carries no load report; it was not made by load_articles")
    return report
