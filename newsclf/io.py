"""Reading articles from files and standard input: the one reader behind ``load_articles`` and ``newsclf predict``.

A source is read in one format, chosen by its file extension or named explicitly (``format=``, the CLI's
``--format``): ``jsonl`` (also gzipped, also a ``.json`` file of JSON lines), ``json`` (an array of
objects), ``csv``/``tsv``, ``parquet``, ``page`` (a newspaper page, split into its articles) or ``text``
(the whole file is one article, title on the first line). Nothing falls back silently to another format:
an unknown extension or standard input that is not JSONL is an error asking for ``--format``.

Readers yield :class:`Raw` records lazily. A record that cannot be used (malformed JSON, a line that is
not UTF-8, a lone surrogate escape, a line that is not an object, a CSV row with the wrong number of
fields) is yielded as a ``Raw`` with ``error`` set, naming file and line, so callers decide whether to
stop, skip and count, or write an error line; it never ends a stream. Problems with the file as a whole
(missing, not UTF-8 from the start, broken gzip, not Parquet) raise ``ValueError``/``FileNotFoundError``
naming the file and, where there is one, the line.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
import re
import sys
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO


def clean_text(text: str) -> str:
    """An article body as the model reads it, from files (``load_articles``) and from ``predict`` alike."""
    # Newspaper dumps indent paragraphs with full-width spaces and leave blank lines; neither is content.
    lines = (
        line.strip(" \t\u3000\xa0") for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    )
    return "\n".join(line for line in lines if line)


def clean_title(title: str) -> str:
    """A title on one line, whitespace runs (full-width spaces too) collapsed to one space."""
    return " ".join(title.split())


__all__ = ["FORMATS", "Raw", "clean_text", "clean_title", "detect_format", "read_source", "read_text", "source_stem"]

FORMATS = ("jsonl", "json", "csv", "tsv", "parquet", "page", "text")
PAGE_SUFFIXES = (".md", ".txt")
_SUFFIXES = (
    ((".jsonl", ".ndjson"), "jsonl"),
    ((".json",), "json"),
    ((".csv",), "csv"),
    ((".tsv",), "tsv"),
    ((".parquet",), "parquet"),
    (PAGE_SUFFIXES, "page"),
)
FORMATS_HELP = ".jsonl/.ndjson (optionally .gz), .json, .csv/.tsv (optionally .gz), .parquet, .md/.txt page files"
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# (our column, alternative source column names): for tables, one of the names must exist.
Required = list[tuple[str, list[str]]] | None


@dataclass
class Raw:
    """One record as read: ``data`` (a dict for good records, any JSON value for a non-object line) or
    ``error`` (a message naming file and line) with ``reason`` (a short key to count it under)."""

    loc: str
    data: Any = None
    error: str | None = None
    reason: str | None = None


def source_stem(path: Path | str) -> str:
    """The file name without its data extensions (``a.jsonl.gz`` → ``a``): default ids and sources."""
    name = Path(path).name
    for suffix in (".gz", ".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".parquet", ".md", ".txt"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return name or Path(path).name


def date_from_name(name: str) -> str:
    """A date written in a file name (``page-2024-01-05.md``) as ``YYYY-MM-DD``, else ``""``."""
    m = re.search(r"(?<!\d)(\d{4})[-_.]?(\d{2})[-_.]?(\d{2})(?!\d)", name)
    if m:
        try:
            return dt.date(int(m[1]), int(m[2]), int(m[3])).isoformat()
        except ValueError:
            return ""
    return ""


def detect_format(path: Path | str, explicit: str | None = None) -> str:
    """The format of ``path``: ``explicit`` if given (checked), else from the extension, else an error."""
    if explicit is not None:
        if explicit not in FORMATS:
            raise ValueError(f"unknown format {explicit!r}; expected one of {', '.join(FORMATS)}")
        return explicit
    name = Path(path).name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    for suffixes, kind in _SUFFIXES:
        if name.endswith(suffixes):
            return kind
    raise ValueError(
        f"{path}: unknown file type {Path(path).suffix!r}; expected one of {FORMATS_HELP}, "
        f"or name the format (format=/--format {{{','.join(FORMATS)}}})"
    )


# ---------------------------------------------------------------- bytes and text


def _open_bytes(path: Path) -> BinaryIO:
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")  # type: ignore[return-value]


def _decode(where: str, data: bytes, base_offset: int = 0) -> str:
    """Decode UTF-8 strictly; binary or mis-encoded input is an error naming the byte offset."""
    nul = data.find(b"\x00")
    if nul >= 0:
        raise ValueError(
            f"{where}: NUL byte at byte offset {base_offset + nul}; this looks like a binary file, "
            f"expected UTF-8 text ({FORMATS_HELP})"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{where}: not valid UTF-8 at byte offset {base_offset + err.start} "
            f"(byte 0x{data[err.start]:02x}); re-encode the file as UTF-8, e.g. "
            "`iconv -f GB18030 -t UTF-8 FILE > fixed-FILE`"
        ) from None


def _gzip_error(name: str, err: Exception, line: int | None = None) -> ValueError:
    at = f" after line {line} (the lines before it were read)" if line else ""
    return ValueError(f"{name}: broken or truncated gzip data{at} ({err}); re-create or re-download the file")


def read_text(source: str | Path) -> str:
    """The whole text of a file (or ``"-"``: standard input), strictly UTF-8; errors name the file."""
    if str(source) == "-":
        return _decode("stdin", sys.stdin.buffer.read()).lstrip("\ufeff")
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"input {path} does not exist" if not path.exists() else f"{path} is not a file")
    return _read_all(path)


def _read_all(path: Path) -> str:
    try:
        with _open_bytes(path) as fh:
            data = fh.read()
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise _gzip_error(str(path), err) from None
    except OSError as err:
        raise ValueError(f"{path}: cannot read the file ({err}); expected an intact {FORMATS_HELP} file") from None
    return _decode(str(path), data).lstrip("\ufeff")


def _check_surrogates(value: Any) -> str | None:
    """The first lone surrogate in a parsed JSON value's strings, described; JSON allows ``"\\ud83d"``,
    but it is half a character and cannot be encoded, tokenised or written back as UTF-8."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            m = _LONE_SURROGATE.search(v)
            if m:
                return f"a lone surrogate escape \\u{ord(m.group()):04x} (half of a character)"
        elif isinstance(v, dict):
            stack.extend(v.values())
            stack.extend(k for k in v if isinstance(k, str))
        elif isinstance(v, list):
            stack.extend(v)
    return None


# ---------------------------------------------------------------- one reader per format


def _jsonl_lines(lines: Iterable[bytes], name: str) -> Iterator[Raw]:
    """JSONL from byte lines. The first non-empty line must decode as UTF-8 (else the file is not UTF-8: one
    error); later undecodable lines become error records, so one bad line never loses the rest."""
    offset = 0
    seen_content = False
    n = 0
    try:
        for n, raw in enumerate(lines, 1):
            loc = f"{name}, line {n}"
            start = offset
            offset += len(raw)
            try:
                line = _decode(name, raw, start)
            except ValueError as err:
                if not seen_content:
                    raise ValueError(f"{err} (line {n})") from None
                yield Raw(loc, error=f"{loc}: {str(err).split(': ', 1)[1]}", reason="not UTF-8")
                continue
            if n == 1:
                line = line.lstrip("\ufeff")
            if not line.strip():
                continue
            seen_content = True
            try:
                value = json.loads(line)
            except json.JSONDecodeError as err:
                yield Raw(loc, error=f"{loc}: malformed JSON ({err.msg} at column {err.colno})",
                          reason="malformed JSON")
                continue
            bad = _check_surrogates(value)
            if bad:
                yield Raw(loc, error=f"{loc}: the record holds {bad}; fix the escape in the source",
                          reason="lone surrogate")
                continue
            yield Raw(loc, value)
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise _gzip_error(name, err, n) from None


def _iter_jsonl(path: Path) -> Iterator[Raw]:
    try:
        fh = _open_bytes(path)
    except OSError as err:
        raise ValueError(f"{path}: cannot read the file ({err})") from None
    with fh:
        yield from _jsonl_lines(fh, path.name)


def _looks_like_json_lines(text: str) -> bool:
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    try:
        return isinstance(json.loads(first), dict)
    except json.JSONDecodeError:
        return False


def _iter_json_text(text: str, name: str) -> Iterator[Raw]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        if err.msg == "Extra data" and _looks_like_json_lines(text):
            # Many tools (pandas' to_json(lines=True), exports) write JSON lines under .json: read them as such.
            yield from _jsonl_lines((ln.encode("utf-8") for ln in text.splitlines(keepends=True)), name)
            return
        raise ValueError(
            f"{name}: malformed JSON ({err.msg} at line {err.lineno}, column {err.colno}); expected a JSON "
            "array of article objects (or one object per line, JSONL)"
        ) from None
    if isinstance(data, dict):
        data = [data]  # one article as one object
    if not isinstance(data, list):
        raise ValueError(f"{name}: expected a JSON array of article objects, found a {type(data).__name__}")
    for n, rec in enumerate(data, 1):
        loc = f"{name}, record {n}"
        bad = _check_surrogates(rec)
        if bad:
            yield Raw(loc, error=f"{loc}: the record holds {bad}; fix the escape in the source", reason="lone surrogate")
        else:
            yield Raw(loc, rec)


def _iter_csv_text(text: str, name: str, delimiter: str, required: Required) -> Iterator[Raw]:
    # Article bodies easily pass csv's 128 KiB default field limit.
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = reader.fieldnames or []
    except csv.Error as err:
        raise ValueError(f"{name}: unreadable CSV header ({err})") from None
    if not header:
        raise ValueError(f"{name}: empty CSV file; expected a header row with at least a 'text' column")
    check_columns(name, list(header), required, "CSV")
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            loc = f"{name}, line {reader.line_num}"
            yield Raw(loc, error=f"{loc}: malformed CSV ({err})", reason="malformed CSV")
            continue
        loc = f"{name}, line {reader.line_num}"
        if None in row:
            yield Raw(loc, error=f"{loc}: {len(header) + len(row[None])} fields, but the header has {len(header)}",
                      reason="wrong number of CSV fields")
            continue
        yield Raw(loc, {k: v for k, v in row.items() if v is not None})


def check_columns(name: str, columns: list[str], required: Required, kind: str) -> None:
    """A table without a required column (any of several names) is a file-level error: every row would be bad."""
    for col, names in required or []:
        if not set(columns) & set(names):
            shown = ", ".join(columns) or "none"
            raise ValueError(
                f"{name}: no {kind} column {' or '.join(repr(n) for n in names)} for {col!r} (columns: {shown}); "
                f"rename the column or map it with field_map (the CLI's --field-map), e.g. {{{col}: your_column}}"
            )


def _iter_parquet(path: Path, required: Required) -> Iterator[Raw]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises several types for a file that is not Parquet
        raise ValueError(f"{path}: not a readable Parquet file ({err})") from None
    check_columns(str(path), list(pf.schema_arrow.names), required, "Parquet")
    n = 0
    for batch in pf.iter_batches(batch_size=4096):
        for rec in batch.to_pylist():
            n += 1
            yield Raw(f"{path.name}, row {n}", rec)


def _iter_page_text(text: str, name: str, source: str | None, date: str) -> Iterator[Raw]:
    from newsclf.data.pages import page_to_records

    stem = source_stem(name)
    try:
        records = page_to_records(text, source=source or stem, date=date)
    except ValueError as err:
        raise ValueError(f"{name}: {err}; if the file is a single article, read it with format 'text'") from None
    for n, rec in enumerate(records):
        rec["id"] = f"{stem}-{n:03d}"
        yield Raw(f"{name}, article {n + 1}", rec)


def _iter_text(text: str, name: str) -> Iterator[Raw]:
    title, _, body = text.strip().partition("\n")
    yield Raw(f"{name}, article 1", {"id": f"{source_stem(name)}-000", "title": title.strip(), "text": body.strip()})


# ---------------------------------------------------------------- entry point


def read_source(
    source: str | Path,
    *,
    format: str | None = None,
    required_columns: Required = None,
    page_source: str | None = None,
) -> Iterator[Raw]:
    """Yield the records of one file (or ``"-"``: standard input) lazily.

    ``required_columns``: for tables (CSV/TSV/Parquet), ``(column, alternative names)`` pairs of which one
    name must exist (a file-level error otherwise). ``page_source`` fills the source of page articles (default: the
    file name).
    """
    if str(source) == "-":
        yield from _read_stdin(format, required_columns)
        return
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"input {path} does not exist")
    if path.is_dir():
        raise ValueError(f"{path} is a folder; pass the files in it (page folders: load_articles reads them)")
    kind = detect_format(path, format)
    name = path.name
    if kind == "jsonl":
        yield from _iter_jsonl(path)
    elif kind == "parquet":
        yield from _iter_parquet(path, required_columns)
    else:
        text = _read_all(path)
        if kind == "json":
            yield from _iter_json_text(text, name)
        elif kind in ("csv", "tsv"):
            delim = "\t" if kind == "tsv" or ".tsv" in name.lower() else ","
            yield from _iter_csv_text(text, name, delim, required_columns)
        elif kind == "page":
            yield from _iter_page_text(text, name, page_source, date_from_name(name))
        else:
            yield from _iter_text(text, name)


def _read_stdin(format: str | None, required_columns: Required) -> Iterator[Raw]:
    stream = sys.stdin.buffer
    name = "stdin"
    if format in (None, "jsonl"):
        first = b""
        for first in stream:
            if first.strip():
                break
        head = first.lstrip(b"\xef\xbb\xbf \t\r\n")
        if format is None and head and not head.startswith(b"{"):
            shown = head[:20].decode("utf-8", "replace")
            raise ValueError(
                f"standard input does not look like JSONL (its first line starts with {shown!r}); "
                f"pipe one JSON object per line, or name the format with --format {{{','.join(FORMATS)}}}"
            )
        yield from _jsonl_lines(_chain(first, stream) if first else stream, name)
        return
    if format == "parquet":
        raise ValueError("Parquet cannot be read from standard input; pass the file by name")
    text = _decode(name, stream.read()).lstrip("\ufeff")
    if format == "json":
        yield from _iter_json_text(text, name)
    elif format in ("csv", "tsv"):
        yield from _iter_csv_text(text, name, "\t" if format == "tsv" else ",", required_columns)
    elif format == "page":
        yield from _iter_page_text(text, name, None, "")
    else:
        yield from _iter_text(text, name)


def _chain(first: bytes, rest: Iterable[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest
