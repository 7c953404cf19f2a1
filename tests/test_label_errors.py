"""label-errors: out-of-fold TF-IDF probabilities + cleanlab find deliberately flipped labels."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from datasets import Dataset

from newsclf.cli import main
from newsclf.label_errors import find_label_errors

LABELS = ["governance", "party_building", "safety", "culture", "other"]
# Distinctive words per label for self-written template articles (no real text).
WORDS = {
    "governance": ["人大常委会", "纪委监委", "营商环境", "放管服", "法治政府", "执法检查", "政务服务", "巡视整改",
                   "立法调研", "基层治理", "接诉即办", "行政审批", "依法行政", "条例审议"],
    "party_building": ["党支部", "党员", "主题党日", "组织部", "党性教育", "入党誓词", "党建引领", "党组织",
                       "干部培训", "组织生活会", "先锋队", "党课", "党费", "发展党员"],
    "safety": ["应急管理", "消防救援", "隐患排查", "防汛", "火灾", "安全生产", "地质灾害", "危化品", "抢险",
               "交通事故", "燃气泄漏", "救援队", "应急演练", "森林防火"],
    "culture": ["博物馆", "非遗", "文物", "话剧", "图书馆", "书法展", "考古", "民俗", "戏曲", "美术馆",
                "读书会", "文化遗产", "音乐会", "剪纸"],
    "other": ["外贸", "小麦", "工业增加值", "气温", "足球赛", "新能源汽车", "高铁", "消费券", "物流",
              "芯片", "降雨", "出口", "农产品", "人工智能"],
}
TITLES = ["{a}工作推进会在{city}召开", "{city}扎实开展{a}工作", "{a}和{b}取得新进展", "记者走进{city}看{a}",
          "{city}：{a}见实效", "聚焦{a} {city}出新招"]
SENTENCES = ["{city}近日围绕{a}开展专项行动", "有关负责人介绍{b}成效明显", "{c}和{a}将继续推进",
             "第{n}批{b}项目已经落地", "群众对{c}的满意度提高", "下一步将把{b}同{c}结合起来",
             "{a}被列入年度重点", "今年以来共完成{c}{n}项"]
CITIES = ["青河市", "东川县", "南岭区", "北湖镇", "西塘村", "临江市", "松原县", "云山区", "石桥镇", "柳湾村",
          "白沙市", "金水县"]
FLIPS = {"culture-03": "safety", "governance-07": "other", "party_building-05": "culture"}


def make_articles(flips: dict[str, str] | None = None) -> list[dict]:
    """5 labels x 12 short template articles; ``flips`` gives some of them a wrong label."""
    rng = random.Random(7)
    rows = []
    for label, words in WORDS.items():
        for k in range(12):
            city = rng.choice(CITIES)
            a, b, c, d, e = rng.sample(words, 5)
            title = rng.choice(TITLES).format(a=a, b=b, city=city)
            parts = [t.format(a=rng.choice((a, d)), b=rng.choice((b, e)), c=c, city=city, n=rng.randint(2, 99))
                     for t in rng.sample(SENTENCES, 3)]
            aid = f"{label}-{k:02d}"
            rows.append({"id": aid, "title": title, "text": "，".join(parts) + "。",
                         "label": (flips or {}).get(aid, label)})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_flipped_labels_rank_at_the_top():
    rows = find_label_errors(Dataset.from_list(make_articles(FLIPS)), LABELS, folds=5, seed=42, flagged_only=False)
    assert len(rows) == 60
    top = [r["id"] for r in rows[: 2 * len(FLIPS)]]
    assert set(FLIPS) <= set(top), top
    by_id = {r["id"]: r for r in rows}
    for aid, wrong in FLIPS.items():
        assert by_id[aid]["flagged"] is True
        assert by_id[aid]["label"] == wrong
        assert by_id[aid]["suggested"] == aid.rsplit("-", 1)[0]
    scores = [r["score"] for r in rows]
    assert scores == sorted(scores, reverse=True)
    assert all(abs(sum(r["probs"].values()) - 1) < 1e-3 for r in rows)
    # Seeded: the same call gives the same ranking.
    again = find_label_errors(Dataset.from_list(make_articles(FLIPS)), LABELS, folds=5, seed=42, flagged_only=False)
    assert [r["id"] for r in again] == [r["id"] for r in rows]


def test_cli_writes_ranked_jsonl(tmp_path, capsys):
    data = write_jsonl(tmp_path / "labelled.jsonl", make_articles(FLIPS))
    out = tmp_path / "sub" / "flags.jsonl"
    assert main(["label-errors", str(data), "--out", str(out), "--quiet"]) == 0
    lines = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert lines, "nothing flagged"
    for row in lines:
        assert {"id", "label", "suggested", "score", "title", "label_source", "probs"} <= set(row)
        assert set(row["probs"]) == set(LABELS)
    scores = [r["score"] for r in lines]
    assert scores == sorted(scores, reverse=True)
    assert set(FLIPS) <= {r["id"] for r in lines}
    err = capsys.readouterr().err
    assert "60 labelled articles" in err and str(out) in err
    assert not list(out.parent.glob("*.tmp"))


@pytest.mark.parametrize(
    "case, message",
    [
        ("unlabelled", "has a label"),
        ("one_label", "at least two labels"),
        ("too_few", "for 5 folds"),
        ("unknown", "not in the label set"),
    ],
)
def test_cli_bad_inputs_are_clear_errors(tmp_path, capsys, case, message):
    rows = make_articles()
    extra: list[str] = []
    if case == "unlabelled":
        rows = [{k: v for k, v in r.items() if k != "label"} for r in rows]
    elif case == "one_label":
        rows = [r for r in rows if r["label"] == "safety"]
    elif case == "too_few":
        rows = [rows[0], rows[12], rows[24]]
    elif case == "unknown":
        extra = ["--labels", "governance,party_building,safety,other"]
    data = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "flags.jsonl"
    assert main(["label-errors", str(data), "--out", str(out), "--quiet", *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err, err
    assert not out.exists()


def test_library_rejects_bad_arguments():
    ds = Dataset.from_list(make_articles())
    with pytest.raises(ValueError, match="folds"):
        find_label_errors(ds, LABELS, folds=1)
    with pytest.raises(ValueError, match="two unique"):
        find_label_errors(ds, ["other"])
