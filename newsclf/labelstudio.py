"""Label Studio interop: a reading queue out as pre-annotated tasks, a Label Studio JSON export back as gold labels.

``newsclf label-studio export QUEUE.jsonl --out tasks.json`` writes Label Studio tasks (each article's fields under
``data``, newsclf's suggestion as a ``predictions`` entry so the suggested choice is preselected) and, beside them,
``tasks.label_config.xml``: the labelling interface to paste into the project's settings. Its control names
(``section`` choosing on ``text``) are what the predictions refer to, so the two files go together.

``newsclf label-studio import export.json --out gold/my-labels.csv`` reads Label Studio's *JSON* export (not
JSON-MIN or CSV) and merges one ``id,label,annotator,timestamp`` row per labelled article into the CSV, which a
config's ``gold:`` key reads as it is.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

FROM_NAME = "section"  # the <Choices> control's name; predictions and imports refer to it
TO_NAME = "text"  # the <Text> object the choice is about
MODEL_VERSION = "newsclf"
GOLD_COLUMNS = ["id", "label", "annotator", "timestamp"]
_DATA_KEYS = ("id", "title", "text", "reason", "suggested", "score", "rank")
_MAX_LISTED = 10  # error messages list this many offending tasks, then a count


def _listed(items: list[str]) -> str:
    more = f"; and {len(items) - _MAX_LISTED} more" if len(items) > _MAX_LISTED else ""
    return "; ".join(items[:_MAX_LISTED]) + more


def _check_labels(labels: Any) -> list[str]:
    if not isinstance(labels, (list, tuple)) or not labels or not all(isinstance(x, str) and x for x in labels):
        raise ValueError(f"labels: expected a non-empty list of label names, found {labels!r}")
    if len(set(labels)) != len(labels):
        raise ValueError(f"labels: {list(labels)} names a label twice; give each once")
    return list(labels)


# --- export ---------------------------------------------------------------------------------------------------


def export_tasks(queue_rows: list[dict[str, Any]], labels: list[str] | None = None) -> list[dict[str, Any]]:
    """Label Studio tasks for queue rows (as :func:`newsclf.queue.read_queue` returns them).

    ``data`` holds the article id (the import reads it back from there), title, text, why it was queued and the
    suggestion; ``predictions`` holds the suggestion as a single-choice pre-annotation scored with its probability,
    so Label Studio shows it preselected and can sort tasks by it. ``labels`` defaults to the queue's own.
    """
    if not queue_rows:
        raise ValueError("the queue is empty; nothing to export")
    labels = _check_labels(labels if labels is not None else queue_rows[0].get("labels"))
    tasks = []
    for row in queue_rows:
        if row.get("suggested") not in labels:
            raise ValueError(f"queue article {row.get('id')!r}: suggested label {row.get('suggested')!r} is not in "
                             f"the label set {labels}; export with the queue's own labels (leave out --labels)")
        data = {k: row[k] for k in _DATA_KEYS if k in row}
        data["id"] = str(row["id"])
        # Label Studio shows data fields as text, so keywords travel as one readable string.
        words = [k.get("word") for k in row.get("keywords") or [] if isinstance(k, dict) and k.get("word")]
        data["keywords"] = "、".join(str(w) for w in words)
        prediction: dict[str, Any] = {
            "model_version": MODEL_VERSION,
            "result": [{"from_name": FROM_NAME, "to_name": TO_NAME, "type": "choices",
                        "value": {"choices": [row["suggested"]]}}],
        }
        score = row.get("score")
        # NaN/inf would make the file invalid JSON for Label Studio; such a score is left out, not invented.
        if isinstance(score, (int, float)) and not isinstance(score, bool) and math.isfinite(score):
            prediction["score"] = float(score)
        tasks.append({"data": data, "predictions": [prediction]})
    return tasks


def label_config_xml(labels: list[str]) -> str:
    """The labelling interface matching :func:`export_tasks`: title as header, text, one single choice."""
    from xml.sax.saxutils import quoteattr

    choices = "\n".join(f"    <Choice value={quoteattr(lab)}/>" for lab in _check_labels(labels))
    return (f'<View>\n  <Header value="$title"/>\n  <Text name="{TO_NAME}" value="$text"/>\n'
            f'  <Choices name="{FROM_NAME}" toName="{TO_NAME}" choice="single" showInline="true">\n'
            f"{choices}\n  </Choices>\n</View>\n")


def config_path_for(out: str | Path) -> Path:
    """Where the labelling config goes: ``tasks.json`` → ``tasks.label_config.xml`` beside it."""
    out = Path(out)
    return out.with_name(f"{out.stem}.label_config.xml")


def _write_atomic(target: Path, text: str, what: str) -> None:
    """Write ``text`` atomically through the project's one text writer, with a message that names ``what``."""
    from newsclf.report import _write_atomic as write_text

    if target.is_dir():
        raise IsADirectoryError(f"--out {str(target)!r} is a folder; give a file name ({what})")
    try:
        write_text(target, text)
    except OSError as err:
        raise OSError(f"cannot write {what} {str(target)!r}: {err.strerror or err}; choose a folder you can "
                      "write to") from None


def write_tasks(tasks: list[dict[str, Any]], labels: list[str], out: str | Path) -> tuple[Path, Path]:
    """Write the tasks JSON and its ``<stem>.label_config.xml``, each atomically; returns both paths."""
    out = Path(out)
    if out.suffix.lower() != ".json":
        raise ValueError(f"--out {str(out)!r}: Label Studio imports tasks from a .json file; give a name such "
                         "as tasks.json")
    config = config_path_for(out)
    _write_atomic(config, label_config_xml(labels), "the labelling config")
    _write_atomic(out, json.dumps(tasks, ensure_ascii=False, indent=1) + "\n", "the tasks file")
    return out, config


# --- import ---------------------------------------------------------------------------------------------------


class ImportedRows(list):
    """Gold rows (``id``, ``label``, ``annotator``, ``timestamp``) plus what the import left out, for reporting."""

    def __init__(self) -> None:
        super().__init__()
        self.tasks = 0
        self.unlabelled: list[str] = []  # tasks with no annotation left after dropping cancelled ones
        self.cancelled = 0  # cancelled ("skipped") annotations ignored
        self.unknown: list[str] = []  # "task 7 (article a1): choice 'x'", skipped under skip_unknown


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:  # Label Studio writes ISO 8601 with a trailing Z, which fromisoformat reads from Python 3.11 only
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _annotator(ann: dict[str, Any]) -> str:
    """Who labelled: the user's e-mail where the export expands ``completed_by``, else ``label-studio:<user id>``."""
    who = ann.get("completed_by")
    if isinstance(who, dict):
        return str(who.get("email") or f"label-studio:{who.get('id')}")
    if isinstance(who, str) and who:
        return who
    return f"label-studio:{who}" if who is not None else ""


def _choices(ann: dict[str, Any]) -> list[str]:
    """The choices of our ``section`` control; any single-choice control where the project renamed it."""
    results = [r for r in ann.get("result") or [] if isinstance(r, dict) and r.get("type") == "choices"]
    ours = [r for r in results if r.get("from_name") == FROM_NAME] or results
    out: list[str] = []
    for r in ours:
        value = r.get("value") if isinstance(r.get("value"), dict) else {}
        out.extend(str(c) for c in value.get("choices") or [])
    return out


def _load_export(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        raise FileNotFoundError(f"Label Studio export {str(path)!r} does not exist; in Label Studio use Export → JSON")
    if path.is_dir():
        raise IsADirectoryError(f"{str(path)!r} is a folder; give the .json file Label Studio's Export → JSON saved")
    try:
        tasks = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not JSON ({err}); expected Label Studio's JSON export (Export → JSON, not CSV "
                         "or TSV)") from None
    if isinstance(tasks, dict) and "data" in tasks:
        raise ValueError(f"{path}: holds one task object; expected Label Studio's JSON export, a list of tasks")
    if not isinstance(tasks, list) or not all(isinstance(t, dict) for t in tasks):
        raise ValueError(f"{path}: expected Label Studio's JSON export, a list of task objects; found "
                         f"{type(tasks).__name__}{' with non-object items' if isinstance(tasks, list) else ''}")
    # JSON-MIN flattens each task and drops "data"/"annotations": say which export to pick rather than read nothing.
    if tasks and not any("data" in t or "annotations" in t for t in tasks):
        raise ValueError(f"{path}: tasks have no 'data' or 'annotations' (a JSON-MIN or other export?); export "
                         "again choosing JSON")
    return tasks


def import_export(export_json_path: str | Path, labels: list[str], *, skip_unknown: bool = False) -> ImportedRows:
    """Gold rows from a Label Studio JSON export, one per article with a usable annotation.

    - the article id is the task's ``data.id`` (where :func:`export_tasks` put it); a task without one is an error
      naming its Label Studio id, since its label could not be matched to an article;
    - cancelled (skipped) annotations are ignored; a task with several annotations gives the **latest**
      non-cancelled one (``updated_at``, else ``created_at``; on a tie the later in the file), so a re-label or a
      reviewer's correction wins; the same rule picks between tasks that carry the same article id;
    - a task with no usable annotation is counted in ``.unlabelled``;
    - a choice outside ``labels`` (or not exactly one choice) raises ``ValueError`` listing every such task, unless
      ``skip_unknown``: then those annotations are left out and listed in ``.unknown``.
    """
    labels = _check_labels(labels)
    path = Path(export_json_path)
    tasks = _load_export(path)
    result = ImportedRows()
    result.tasks = len(tasks)
    no_id = [str(t.get("id", f"#{n}")) for n, t in enumerate(tasks, 1)
             if not isinstance(t.get("data"), dict) or str(t["data"].get("id") or "").strip() == ""]
    if no_id:
        raise ValueError(f"{path}: Label Studio task(s) {_listed(no_id)} have no data.id, so their labels cannot be "
                         "matched to articles; import tasks made by `newsclf label-studio export`, which puts the "
                         "article id there")
    best: dict[str, tuple[tuple[datetime, int], dict[str, str]]] = {}
    order = 0
    oldest = datetime.min.replace(tzinfo=timezone.utc)
    for task in tasks:
        aid = str(task["data"]["id"]).strip()
        where = f"task {task.get('id', '?')} (article {aid})"
        anns = [a for a in task.get("annotations") or [] if isinstance(a, dict)]
        live = [a for a in anns if not a.get("was_cancelled")]
        result.cancelled += len(anns) - len(live)
        picked = None
        for ann in live:
            order += 1
            if not _choices(ann):  # submitted with nothing chosen: no decision to keep
                continue
            key = (_parse_time(ann.get("updated_at")) or _parse_time(ann.get("created_at")) or oldest, order)
            if picked is None or key >= picked[0]:
                picked = (key, ann)
        if picked is None:
            result.unlabelled.append(where)
            continue
        choices = _choices(picked[1])
        if len(choices) != 1 or choices[0] not in labels:
            result.unknown.append(f"{where}: choice {choices[0]!r}" if len(choices) == 1
                                  else f"{where}: {len(choices)} choices {choices}, expected one")
            continue
        ann = picked[1]
        row = {"id": aid, "label": choices[0], "annotator": _annotator(ann),
               "timestamp": str(ann.get("updated_at") or ann.get("created_at") or "")}
        if aid not in best or picked[0] >= best[aid][0]:
            best[aid] = (picked[0], row)
    if result.unknown and not skip_unknown:
        raise ValueError(f"{path}: {len(result.unknown)} annotation(s) with a choice outside the labels {labels}: "
                         f"{_listed(result.unknown)}. Give the project's label set with --labels a,b,c, or "
                         "--skip-unknown to import the rest and report these")
    result.extend(row for _, row in best.values())
    return result


def merge_gold_csv(rows: list[dict[str, str]], out: str | Path) -> dict[str, int]:
    """Merge ``rows`` into the gold CSV/TSV ``out`` by id and rewrite it atomically.

    Existing rows (and any extra columns) are kept; a new id is added; an id already there takes the imported row
    unless the existing row's timestamp is newer (newest wins). Returns counts: added, updated, unchanged, kept_newer.
    """
    import csv
    import io

    out = Path(out)
    if out.suffix.lower() not in (".csv", ".tsv"):
        raise ValueError(f"--out {str(out)!r}: gold labels are written as .csv (or .tsv), which a config's gold: "
                         "key reads; give a name such as gold/my-labels.csv")
    delimiter = "\t" if out.suffix.lower() == ".tsv" else ","
    columns = list(GOLD_COLUMNS)
    merged: dict[str, dict[str, str]] = {}
    if out.exists():
        from newsclf.data.gold import read_labelled_rows

        for row in read_labelled_rows(out):
            row.pop("_line", None)
            if "id" not in row or "label" not in row:
                raise ValueError(f"{out}: exists but has no id and label columns (found {sorted(row)}); give a new "
                                 "--out or fix its header")
            columns += [c for c in row if c not in columns and c is not None]
            merged[str(row["id"]).strip()] = {k: v for k, v in row.items() if k is not None}
    counts = {"added": 0, "updated": 0, "unchanged": 0, "kept_newer": 0}
    for row in rows:
        old = merged.get(row["id"])
        if old is None:
            counts["added"] += 1
        elif old.get("label") == row["label"]:
            counts["unchanged"] += 1
            continue  # same decision: keep who made it first and when
        else:
            t_old, t_new = _parse_time(old.get("timestamp")), _parse_time(row.get("timestamp"))
            if t_old and t_new and t_old > t_new:
                counts["kept_newer"] += 1
                continue
            counts["updated"] += 1
        merged[row["id"]] = {**(old or {}), **row}
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, delimiter=delimiter, lineterminator="\n", restval="")
    writer.writeheader()
    writer.writerows(merged.values())
    _write_atomic(out, buf.getvalue(), "the gold CSV")
    return counts


# --- command line ---------------------------------------------------------------------------------------------


def _label_list(text: str | None) -> list[str] | None:
    if text is None:
        return None
    labels = [x.strip() for x in text.split(",") if x.strip()]
    if not labels:
        raise ValueError(f"--labels {text!r}: expected comma-separated label names, e.g. governance,safety,other")
    return labels


def _cmd_export(args: argparse.Namespace, extra: list[str]) -> int:
    from newsclf.queue import read_queue

    rows = read_queue(args.queue)
    labels = _label_list(args.labels) or rows[0]["labels"]
    tasks = export_tasks(rows, labels)
    out, config = write_tasks(tasks, labels, args.out)
    print(f"{len(tasks)} tasks -> {out} (Label Studio: Import); labelling config -> {config} (Settings → "
          "Labeling Interface → Code)", file=sys.stderr)
    return 0


def _cmd_import(args: argparse.Namespace, extra: list[str]) -> int:
    labels = _label_list(args.labels)
    if labels is None:
        from newsclf.config import DEFAULT_LABELS

        labels = list(DEFAULT_LABELS)
    rows = import_export(args.export, labels, skip_unknown=args.skip_unknown)
    notes = []
    if rows.unlabelled:
        notes.append(f"{len(rows.unlabelled)} unlabelled ({_listed(rows.unlabelled)})")
    if rows.cancelled:
        notes.append(f"{rows.cancelled} cancelled annotation(s) ignored")
    if rows.unknown:
        notes.append(f"{len(rows.unknown)} skipped for an unknown choice ({_listed(rows.unknown)})")
    print(f"{len(rows)} labelled articles from {rows.tasks} tasks" + (f"; {'; '.join(notes)}" if notes else ""),
          file=sys.stderr)
    if not rows:
        print(f"nothing to write; {args.out} left as it was", file=sys.stderr)
        return 0
    c = merge_gold_csv(rows, args.out)
    kept = f", {c['kept_newer']} kept (the CSV's row is newer)" if c["kept_newer"] else ""
    print(f"{args.out}: {c['added']} added, {c['updated']} updated, {c['unchanged']} unchanged{kept}",
          file=sys.stderr)
    return 0


def add_subcommand(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register ``newsclf label-studio export|import``."""
    p = sub.add_parser("label-studio", parents=[common],
                       help="export a reading queue as Label Studio tasks; import a Label Studio JSON export as gold")
    actions = p.add_subparsers(dest="action", required=True)

    e = actions.add_parser("export", parents=[common],
                           help="queue -> Label Studio tasks JSON with pre-annotations, plus <out>.label_config.xml")
    e.add_argument("queue", help="a queue JSONL written by `newsclf suggest`")
    e.add_argument("--out", required=True, help="tasks .json (the labelling config is written beside it)")
    e.add_argument("--labels", help="comma-separated label set (default: the queue's)")
    e.set_defaults(func=_cmd_export)

    i = actions.add_parser("import", parents=[common],
                           help="Label Studio JSON export -> id,label,annotator,timestamp rows merged into a gold CSV")
    i.add_argument("export", help="the .json file from Label Studio's Export → JSON")
    i.add_argument("--out", required=True, help="gold CSV to create or merge into (written atomically)")
    i.add_argument("--labels", help="comma-separated label set (default: the default labels)")
    i.add_argument("--skip-unknown", action="store_true",
                   help="leave out annotations whose choice is not in the label set (reported) instead of failing")
    i.set_defaults(func=_cmd_import)
