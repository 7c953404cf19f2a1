"""Label Studio interop, round trip on files: queue → tasks JSON → (simulated) Label Studio export → gold CSV."""

from __future__ import annotations

import csv
import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from newsclf.cli import main
from newsclf.config import DEFAULT_LABELS
from newsclf.data.gold import load_gold
from newsclf.labelstudio import (
    config_path_for,
    export_tasks,
    import_export,
    label_config_xml,
    merge_gold_csv,
    write_tasks,
)
from newsclf.queue import read_queue, write_queue

LABELS = list(DEFAULT_LABELS)

# Self-written articles: (id, title, text, suggested, score).
ARTICLES = [
    ("a1", "街道开展燃气安全入户检查", "工作人员逐户查看燃气管道和报警器，提醒居民及时更换老化软管。", "safety", 0.91),
    ("a2", "老街书店举办方言故事会", "几位老人用本地方言讲述童年旧事，孩子们听得津津有味。", "culture", 0.62),
    ("a3", "区政务服务中心新增夜间窗口", "下班后的市民也能办理社保和营业执照业务，等候时间明显缩短。", "governance", 0.55),
    ("a4", "社区党员认领微心愿", "党员志愿者为独居老人送去助听器和台灯，帮助解决生活难题。", "party_building", 0.48),
    ("a5", "早稻开镰 收割机穿梭田间", "今年雨水适中，亩产比去年略有提高，粮站开始收购新粮。", "other", 0.7),
]


def _queue(tmp_path: Path) -> Path:
    rows = [{"rank": n, "id": aid, "title": title, "text": text, "reason": "uncertainty", "reasons": ["uncertainty"],
             "suggested": sug, "score": score, "scores": {"margin": 0.1}, "labels": LABELS,
             "keywords": [{"word": "安全", "weight": 0.3}] if sug == "safety" else []}
            for n, (aid, title, text, sug, score) in enumerate(ARTICLES, 1)]
    return write_queue(rows, tmp_path / "queue.jsonl")


def _annotation(ann_id: int, choice: str | None, when: str, user: object = 3, cancelled: bool = False) -> dict:
    result = [] if choice is None else [{"id": f"r{ann_id}", "from_name": "section", "to_name": "text",
                                         "type": "choices", "origin": "manual", "value": {"choices": [choice]}}]
    return {"id": ann_id, "completed_by": user, "result": result, "was_cancelled": cancelled, "ground_truth": False,
            "created_at": when, "updated_at": when, "lead_time": 4.2}


def _simulate_label_studio(tasks: list[dict], annotations: dict[str, list[dict]]) -> list[dict]:
    """What Label Studio's Export → JSON gives for imported tasks: its own ids, our data, annotations, predictions."""
    out = []
    for n, task in enumerate(tasks, 101):
        out.append({"id": n, "project": 7, "data": task["data"], "predictions": task["predictions"],
                    "annotations": annotations.get(task["data"]["id"], []),
                    "created_at": "2024-05-01T08:00:00.000000Z", "updated_at": "2024-05-02T08:00:00.000000Z"})
    return out


def _write_json(path: Path, obj: object) -> Path:
    path.write_text(json.dumps(obj, ensure_ascii=False), encoding="utf-8")
    return path


ANNOTATIONS = {
    "a1": [_annotation(1, "safety", "2024-05-02T09:00:00.000Z")],
    "a2": [_annotation(2, "culture", "2024-05-02T09:05:00.000Z", cancelled=True)],  # skipped in Label Studio
    # Two annotations: the later one (listed first here) is the decision kept.
    "a3": [_annotation(4, "other", "2024-05-03T10:00:00.000Z", user={"id": 4, "email": "li@example.org"}),
           _annotation(3, "governance", "2024-05-02T09:10:00.000Z")],
    # a4: never annotated
    "a5": [_annotation(5, "other", "2024-05-02T09:20:00.000Z")],
}


def _export_file(tmp_path: Path, annotations: dict[str, list[dict]] = ANNOTATIONS) -> Path:
    tasks = export_tasks(read_queue(_queue(tmp_path)), LABELS)
    return _write_json(tmp_path / "ls-export.json", _simulate_label_studio(tasks, annotations))


def test_export_tasks_and_config(tmp_path):
    tasks_path, config_path = write_tasks(export_tasks(read_queue(_queue(tmp_path)), None), LABELS,
                                          tmp_path / "out" / "tasks.json")
    assert config_path == tmp_path / "out" / "tasks.label_config.xml" == config_path_for(tasks_path)
    tasks = json.loads(tasks_path.read_text(encoding="utf-8"))
    assert [t["data"]["id"] for t in tasks] == [a[0] for a in ARTICLES]
    first = tasks[0]
    assert first["data"]["title"] == ARTICLES[0][1] and first["data"]["reason"] == "uncertainty"
    assert first["data"]["keywords"] == "安全"
    (pred,) = first["predictions"]
    assert pred["model_version"] == "newsclf" and pred["score"] == pytest.approx(0.91)
    assert pred["result"] == [{"from_name": "section", "to_name": "text", "type": "choices",
                               "value": {"choices": ["safety"]}}]
    # The config's control names are the ones the predictions refer to, and it offers exactly the label set.
    view = ET.fromstring(config_path.read_text(encoding="utf-8"))
    text, choices = view.find("Text"), view.find("Choices")
    assert view.find("Header").get("value") == "$title" and text.get("value") == "$text"
    assert choices.get("name") == pred["result"][0]["from_name"] and choices.get("toName") == text.get("name")
    assert choices.get("choice") == "single"
    assert [c.get("value") for c in choices.findall("Choice")] == LABELS


def test_config_escapes_label_names():
    view = ET.fromstring(label_config_xml(["a&b", 'say "x"']))
    assert [c.get("value") for c in view.iter("Choice")] == ["a&b", 'say "x"']


def test_round_trip_through_gold_loader(tmp_path):
    rows = import_export(_export_file(tmp_path), LABELS)
    assert sorted((r["id"], r["label"]) for r in rows) == [("a1", "safety"), ("a3", "other"), ("a5", "other")]
    assert rows.tasks == 5 and rows.cancelled == 1 and rows.unknown == []
    assert [u.split()[1] for u in rows.unlabelled] == ["102", "104"]  # a2 (only cancelled) and a4 (none)
    a3 = next(r for r in rows if r["id"] == "a3")
    assert a3["annotator"] == "li@example.org" and a3["timestamp"] == "2024-05-03T10:00:00.000Z"
    assert next(r for r in rows if r["id"] == "a1")["annotator"] == "label-studio:3"

    out = tmp_path / "gold" / "my-labels.csv"
    assert merge_gold_csv(rows, out) == {"added": 3, "updated": 0, "unchanged": 0, "kept_newer": 0}
    gold = load_gold([out], LABELS)
    assert {k: v[0] for k, v in gold.items()} == {"a1": "safety", "a3": "other", "a5": "other"}
    with out.open(encoding="utf-8", newline="") as f:
        assert csv.DictReader(f).fieldnames == ["id", "label", "annotator", "timestamp"]
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".tmp")]


def test_merge_keeps_rows_and_newest_wins(tmp_path):
    out = tmp_path / "labels.csv"
    out.write_text("id,label,annotator,timestamp,note\n"
                   "a1,other,wang,2024-04-01T00:00:00Z,旧的判断\n"  # older than the import: replaced
                   "a3,governance,zhao,2024-06-01T00:00:00Z,\n"  # newer than the import: kept
                   "a5,other,zhao,,\n"  # same label: unchanged
                   "z9,culture,wang,,手工补充\n", encoding="utf-8")
    counts = merge_gold_csv(import_export(_export_file(tmp_path), LABELS), out)
    assert counts == {"added": 0, "updated": 1, "unchanged": 1, "kept_newer": 1}
    gold = {k: v[0] for k, v in load_gold([out], LABELS).items()}
    assert gold == {"a1": "safety", "a3": "governance", "a5": "other", "z9": "culture"}
    with out.open(encoding="utf-8", newline="") as f:
        rows = {r["id"]: r for r in csv.DictReader(f)}
    assert rows["z9"]["note"] == "手工补充" and rows["a1"]["annotator"] == "label-studio:3"


def test_same_article_in_two_tasks_latest_wins(tmp_path):
    tasks = export_tasks(read_queue(_queue(tmp_path)), LABELS)[:1] * 2
    export = _simulate_label_studio(tasks, {})
    export[0]["annotations"] = [_annotation(1, "culture", "2024-05-05T00:00:00Z")]
    export[1]["annotations"] = [_annotation(2, "safety", "2024-05-01T00:00:00Z")]
    rows = import_export(_write_json(tmp_path / "e.json", export), LABELS)
    assert [(r["id"], r["label"]) for r in rows] == [("a1", "culture")]


@pytest.mark.parametrize(("content", "message"), [
    ("id,label\n1,x\n", "not JSON"),
    ('{"data": {"id": "a1"}, "annotations": []}', "one task object"),
    ('{"tasks": []}', "list of task objects"),
    ('["a1", "a2"]', "non-object items"),
    ('[{"id": 1, "title": "x", "section": "safety", "annotator": "u"}]', "JSON-MIN"),
])
def test_import_rejects_what_is_not_a_json_export(tmp_path, content, message):
    path = tmp_path / "export.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        import_export(path, LABELS)


def test_import_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="Export → JSON"):
        import_export(tmp_path / "nope.json", LABELS)


def test_unknown_choice_is_an_error_unless_skipped(tmp_path):
    annotations = {**ANNOTATIONS, "a4": [_annotation(9, "sports", "2024-05-02T10:00:00Z")]}
    path = _export_file(tmp_path, annotations)
    with pytest.raises(ValueError, match=r"task 104 \(article a4\): choice 'sports'.*--skip-unknown"):
        import_export(path, LABELS)
    rows = import_export(path, LABELS, skip_unknown=True)
    assert rows.unknown == ["task 104 (article a4): choice 'sports'"] and len(rows) == 3


def test_missing_data_id_names_the_label_studio_task(tmp_path):
    export = json.loads(_export_file(tmp_path).read_text(encoding="utf-8"))
    del export[2]["data"]["id"]
    with pytest.raises(ValueError, match=r"task\(s\) 103 have no data.id"):
        import_export(_write_json(tmp_path / "e.json", export), LABELS)


def test_export_rejects_suggestion_outside_labels(tmp_path):
    with pytest.raises(ValueError, match="suggested label 'party_building' is not in the label set"):
        export_tasks(read_queue(_queue(tmp_path)), ["governance", "safety", "culture", "other"])


def test_output_must_be_csv(tmp_path):
    with pytest.raises(ValueError, match=r"\.csv"):
        merge_gold_csv([{"id": "a1", "label": "safety"}], tmp_path / "labels.json")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can write to a read-only folder")
def test_output_not_writable(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(OSError, match="cannot write the gold CSV"):
            merge_gold_csv([{"id": "a1", "label": "safety"}], locked / "labels.csv")
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


def test_output_under_a_file(tmp_path):
    """Runs as root too: a file where the output's folder should be cannot be written through."""
    (tmp_path / "gold").write_text("", encoding="utf-8")
    with pytest.raises(OSError, match="cannot write the gold CSV"):
        merge_gold_csv([{"id": "a1", "label": "safety"}], tmp_path / "gold" / "labels.csv")


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_cli_round_trip(tmp_path, capsys):
    queue, tasks = _queue(tmp_path), tmp_path / "tasks.json"
    assert main(["label-studio", "export", str(queue), "--out", str(tasks)]) == 0
    assert "5 tasks" in capsys.readouterr().err and (tmp_path / "tasks.label_config.xml").is_file()
    export = _write_json(tmp_path / "ls.json",
                         _simulate_label_studio(json.loads(tasks.read_text(encoding="utf-8")), ANNOTATIONS))
    out = tmp_path / "gold" / "my-labels.csv"
    assert main(["label-studio", "import", str(export), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "3 labelled articles from 5 tasks" in err and "2 unlabelled" in err and "3 added" in err
    assert set(load_gold([out], LABELS)) == {"a1", "a3", "a5"}
    # Importing again changes nothing and says so.
    assert main(["label-studio", "import", str(export), "--out", str(out)]) == 0
    assert "0 added, 0 updated, 3 unchanged" in capsys.readouterr().err


def test_cli_errors(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("not json", encoding="utf-8")
    out = tmp_path / "labels.csv"
    assert main(["label-studio", "import", str(bad), "--out", str(out)]) == 2
    assert "not JSON" in _one_error_line(capsys)

    export = _export_file(tmp_path, {"a1": [_annotation(1, "sports", "2024-05-02T10:00:00Z")]})
    assert main(["label-studio", "import", str(export), "--out", str(out)]) == 2
    assert "choice 'sports'" in _one_error_line(capsys) and not out.exists()
    assert main(["label-studio", "import", str(export), "--out", str(out), "--skip-unknown"]) == 0
    err = capsys.readouterr().err
    assert "1 skipped for an unknown choice (task 101 (article a1): choice 'sports')" in err
    assert "nothing to write" in err and not out.exists()
    assert main(["label-studio", "import", str(export), "--out", str(out), "--labels", "sports,other"]) == 0
    assert load_gold([out], ["sports", "other"])["a1"][0] == "sports"
    capsys.readouterr()

    assert main(["label-studio", "export", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "t.json")]) == 2
    assert "does not exist" in _one_error_line(capsys)
