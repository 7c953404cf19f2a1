"""Gold labels: reading labelled CSV/TSV/JSONL files and checking them against the label set."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from newsclf.config import Config


def read_labelled_rows(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a CSV/TSV (header row) or JSONL file, each with its 1-based line number under ``_line``."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"gold file {str(p)!r} does not exist; fix config key 'gold' or create the file")
    rows: list[dict[str, Any]] = []
    if p.suffix.lower() in (".jsonl", ".json"):
        with p.open(encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    raise ValueError(f"gold file {p}, line {n}: not valid JSON ({err}); fix or remove the line") from err
                if not isinstance(row, dict):
                    raise ValueError(f"gold file {p}, line {n}: expected a JSON object with id and label")
                rows.append({**row, "_line": n})
    elif p.suffix.lower() in (".csv", ".tsv"):
        with p.open(encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f, delimiter="\t" if p.suffix.lower() == ".tsv" else ",")
            for n, row in enumerate(reader, 2):
                rows.append({**row, "_line": n})
    else:
        raise ValueError(f"gold file {p}: unsupported extension {p.suffix!r}; use .csv, .tsv or .jsonl with "
                         "columns id and label")
    return rows


def load_gold(paths: list[str | Path], labels: list[str]) -> dict[str, tuple[str, str]]:
    """``{id: (label, "file:line")}`` from gold files, every label checked against ``labels``."""
    gold: dict[str, tuple[str, str]] = {}
    for path in paths:
        for row in read_labelled_rows(path):
            where = f"gold file {path}, line {row['_line']}"
            if "id" not in row or "label" not in row:
                raise ValueError(f"{where}: expected columns id and label, found {sorted(k for k in row if k != '_line')}")
            gid, label = str(row["id"] or "").strip(), str(row["label"] or "").strip()
            if not gid:
                raise ValueError(f"{where}: empty id; fill it in or remove the row")
            if label not in labels:
                raise ValueError(f"{where}: unknown label {label!r} for id {gid!r}; allowed labels: {labels} "
                                 "(fix the label, or add it to config key 'labels')")
            if gid in gold and gold[gid][0] != label:
                raise ValueError(f"{where}: id {gid!r} is labelled {label!r} but {gold[gid][1]} says "
                                 f"{gold[gid][0]!r}; keep one of the two rows")
            gold[gid] = (label, f"{path}:{row['_line']}")
    return gold


def load_articles_for_labelling(config: Config) -> Any:
    """The config's articles as a ``datasets.Dataset``, loaded exactly as ``build_dataset`` loads them."""
    from newsclf.data.loaders import load_articles

    return load_articles(
        config.data, field_map=config.field_map or None, on_bad_record=config.on_bad_record, min_chars=config.min_chars
    )
