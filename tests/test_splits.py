from __future__ import annotations

import numpy as np
import pytest

from newsclf.data.splits import group_near_duplicates, split_groups


def test_near_duplicates_are_grouped_and_distinct_texts_are_not():
    base = "市应急管理局今天召开全市安全生产工作会议，部署开展为期三个月的隐患排查整治专项行动，要求各县区压实责任。"
    texts = [
        base,
        base + "（来源：江河日报）",  # a reprint with a source line
        "市博物馆推出青铜器文物特展，展览汇集馆藏文物两百余件，讲述古代文明与文化遗产保护故事，吸引大批市民。",
        "全市中学生田径运动会开幕，来自各校的运动员参加短跑跳远等比赛项目，展现青春风采，赛事持续三天。",
    ]
    g = group_near_duplicates(texts, threshold=0.8)
    assert g[0] == g[1]
    assert len({g[0], g[2], g[3]}) == 3


def test_date_split_puts_latest_in_test_and_never_splits_a_group():
    n = 100
    dates = [f"2024-{1 + i // 10:02d}-{1 + i % 10:02d}" for i in range(n)]
    groups = np.arange(n)
    groups[50:53] = 50  # one group straddling dates
    labels = ["a", "b"] * 50
    assign = split_groups(labels, groups, dates, split_by="date", validation_fraction=0.1, test_fraction=0.2)
    test_dates = [d for d, a in zip(dates, assign) if a == 2]
    train_dates = [d for d, a in zip(dates, assign) if a == 0]
    assert max(train_dates) < min(test_dates)
    assert 18 <= (assign == 2).sum() <= 22
    assert len(set(assign[50:53])) == 1


def test_stratified_split_is_seeded_and_groups_stay_together():
    labels = ["a"] * 60 + ["b"] * 40
    groups = np.repeat(np.arange(50), 2)
    dates = [""] * 100
    a1 = split_groups(labels, groups, dates, split_by="auto", seed=3)
    a2 = split_groups(labels, groups, dates, split_by="auto", seed=3)
    assert (a1 == a2).all()
    for g in range(50):
        assert len(set(a1[groups == g])) == 1
    for code in (1, 2):
        part = [lab for lab, a in zip(labels, a1) if a == code]
        assert 0.3 < part.count("b") / len(part) < 0.5


def test_date_split_without_dates_is_a_clear_error():
    with pytest.raises(ValueError, match="have no date; give every article a date, or set split_by: stratified"):
        split_groups(["a", "b"], np.arange(2), ["2024-01-01", ""], split_by="date")


def test_cap_keeps_gold_then_rule_then_lexicon_rows():
    from datasets import Dataset

    from newsclf.data.splits import _cap_per_label

    sources = ["lexicon"] * 6 + ["rule:roundup"] * 3 + ["gold"] * 2 + ["lexicon"] * 2
    labels = ["other"] * 11 + ["culture"] * 2
    ds = Dataset.from_dict({"label": labels, "label_source": sources, "id": [str(i) for i in range(13)]})
    capped = _cap_per_label(ds, cap=4, seed=0)
    kept = list(zip(capped["label"], capped["label_source"]))
    other = sorted(s for lab, s in kept if lab == "other")
    # 2 gold + 2 of the 3 rule rows fill the cap; no lexicon row gets in while better rows are left.
    assert other == ["gold", "gold", "rule:roundup", "rule:roundup"]
    assert [s for lab, s in kept if lab == "culture"] == ["lexicon", "lexicon"]
    assert capped["id"] == sorted(capped["id"], key=int), "the cap keeps the original row order"
    assert _cap_per_label(ds, cap=4, seed=0)["id"] == capped["id"], "seeded"
