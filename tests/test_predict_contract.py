"""The ``predict`` contract on a tiny random model: option checks, abstain reasons, non-Chinese text, shapes.

The model is trained for a few steps only (its labels mean nothing), so nothing here expects a label from
it; only what ``predict`` promises whatever the model says.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from newsclf.config import load_config
from newsclf.predict import (
    MIN_CJK_CHARS,
    Classifier,
    not_chinese_reason,
    parse_item,
    predict,
)
from newsclf.train import train

CHINESE = "市应急管理局开展安全生产隐患排查\n检查组深入化工企业，排查危险化学品储存隐患，督促限期整改。"
NOT_CHINESE = {
    "english": "City council approves budget\nThe city council met on Monday to discuss the budget for next year.",
    "kana": "きょうはいいてんきですね\nあしたもはれるでしょう。みんなでこうえんにいきましょう。",
    "emoji": "🎉🎉🎉\n😀😀😀👍👍👍🔥🔥🔥🚒🚒",
    "digits": "2024\n12345 67890 3.1415926 100% 2024-01-01",
    # Eleven Han characters, but only in names inside English prose: the share rule catches it.
    "english_with_names": "President Xi Jinping (习近平) met Premier Li Qiang (李强) in Beijing (北京)\n"
    "They later travelled to Shanghai (上海) and Guangzhou (广州) to discuss the economy with local officials.",
}


def _train(out, toy_dataset_dir, **over):
    return train(load_config("tiny", {"dataset_dir": str(toy_dataset_dir), "output_dir": str(out), "max_steps": 2,
                                      "eval_steps": 2, **over}))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, toy_dataset_dir, tiny_backbone):
    return _train(tmp_path_factory.mktemp("contract-runs"), toy_dataset_dir)


@pytest.fixture(scope="module")
def clf(model_dir):
    return Classifier.from_dir(model_dir, precision="fp32")


# -- training stores the threshold's record ---------------------------------------------------------
def test_training_stores_the_abstain_record(model_dir, clf):
    meta = json.loads((model_dir / "newsclf.json").read_text(encoding="utf-8"))
    assert isinstance(meta["abstain_threshold"], float) and 0 <= meta["abstain_threshold"] <= 1
    rec = meta["abstain"]
    assert rec["source"] == "validation" and rec["target_precision"] == 0.97 and rec["min_coverage"] == 0.5
    assert rec["n"] == 10  # the validation split
    assert 0.5 <= rec["coverage"] <= 1 and 0 <= rec["precision"] <= 1
    assert rec["target_reached"] == (rec["precision"] >= 0.97)
    assert clf.abstain_threshold == meta["abstain_threshold"]


def test_a_config_threshold_overrides_and_is_recorded(tmp_path, toy_dataset_dir, tiny_backbone):
    meta = json.loads((_train(tmp_path, toy_dataset_dir, abstain_threshold=0.3, max_steps=1) / "newsclf.json").read_text())
    assert meta["abstain_threshold"] == 0.3
    assert meta["abstain"]["source"] == "config" and meta["abstain"]["target_precision"] is None
    assert meta["abstain"]["n"] == 10 and 0 <= meta["abstain"]["coverage"] <= 1


# -- result shape and reasons -----------------------------------------------------------------------
def test_single_list_tuple_and_empty(clf):
    one = clf.predict(CHINESE)
    assert isinstance(one, dict)
    assert set(one) == {"label", "score", "scores", "abstained", "reason"}
    assert clf.predict([]) == [] and clf.predict(()) == [] and predict([], model=clf) == []
    many = clf.predict([CHINESE, {"title": "消防", "text": CHINESE}])
    assert isinstance(many, list) and len(many) == 2
    assert clf.predict((CHINESE,)) == [one] == clf.predict([CHINESE])


def test_chinese_news_is_answered_without_a_reason(clf):
    res = clf.predict(CHINESE, threshold=0)
    assert res["abstained"] is False and res["reason"] is None
    assert res["label"] == max(res["scores"], key=res["scores"].get)
    assert res["score"] == max(res["scores"].values())
    assert not_chinese_reason(*parse_item(CHINESE)) is None


def test_toy_articles_pass_the_language_rule(toy_rows):
    assert all(not_chinese_reason(r["title"], r["text"]) is None for r in toy_rows)
    # A link does not make a short Xinwen Lianbo item "not Chinese".
    item = ("市图书馆新馆开馆迎接首批读者参观", "[查看原文](https://news.example.org/2024/05/12/video-1234567890abcdef.html)")
    assert not_chinese_reason(*item) is None


@pytest.mark.parametrize("kind", sorted(NOT_CHINESE))
def test_text_that_is_not_chinese_news_abstains_with_a_reason(clf, kind):
    text = NOT_CHINESE[kind]
    res = clf.predict(text, threshold=0)
    assert res["abstained"] is True
    assert res["label"] == ("other" if "other" in clf.labels else max(res["scores"], key=res["scores"].get))
    assert "Chinese characters" in res["reason"] and "not Chinese news" in res["reason"]
    # The scores are still the model's.
    expected = clf.probabilities([parse_item(text)])[0]
    assert [res["scores"][lab] for lab in clf.labels] == pytest.approx(expected.tolist(), abs=1e-6)
    assert res["score"] == pytest.approx(float(expected.max()), abs=1e-6)


def test_language_reasons_say_what_was_found_and_needed():
    assert not_chinese_reason("Hello 你好", "world") == (
        f"too few Chinese characters (found 2, need at least {MIN_CJK_CHARS}): not Chinese news text"
    )
    assert not_chinese_reason("🎉", "12345").startswith("too few Chinese characters (found 0,")
    reason = not_chinese_reason(*parse_item(NOT_CHINESE["english_with_names"]))
    assert reason.startswith("Chinese characters are only ") and "(11 of " in reason and "need at least 60%" in reason


def test_low_score_abstains_with_the_score_and_threshold(clf):
    res = clf.predict(CHINESE, threshold=1)
    assert res["abstained"] is True and res["label"] == "other"
    assert res["reason"].startswith("top score ") and res["reason"].endswith("below the abstain threshold 1.00")
    # Close numbers get enough digits to differ.
    s = res["score"]
    close = clf.predict(CHINESE, threshold=min(1.0, s + 1e-4))
    a, b = close["reason"].removeprefix("top score ").split(" below the abstain threshold ")
    assert a != b and float(a) < float(b)


def test_both_reasons_are_given(clf):
    res = clf.predict(NOT_CHINESE["english"], threshold=1)
    first, second = res["reason"].split("; ")
    assert first.startswith("too few Chinese characters") and second.startswith("top score ")


def test_the_model_threshold_applies_when_threshold_is_none(model_dir):
    high = Classifier.from_dir(model_dir, precision="fp32")
    high.abstain_threshold = 0.999  # as if training had chosen it
    res = high.predict(CHINESE)
    assert res["abstained"] is True
    assert res["reason"] == f"top score {res['score']:.2f} below the abstain threshold 1.00"
    assert high.predict(CHINESE, threshold=0)["reason"] is None


# -- option checks ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "err", "match"),
    [
        ({"top_k": 0}, ValueError, r"top_k: expected an int between 1 and 5 .*found 0; top_k=5 ranks every"),
        ({"top_k": 6}, ValueError, r"top_k: expected an int between 1 and 5 .*found 6"),
        ({"top_k": True}, TypeError, r"top_k: expected an int .*found bool True"),
        ({"top_k": 2.0}, TypeError, r"top_k: expected an int .*found float 2.0"),
        ({"top_k": "3"}, TypeError, r"top_k: expected an int .*found str '3'"),
        ({"threshold": float("nan")}, ValueError, r"threshold: expected None .* or a number in \[0, 1\].*found nan"),
        ({"threshold": 2}, ValueError, r"threshold: expected .*found 2;"),
        ({"threshold": -0.1}, ValueError, r"threshold: expected .*found -0.1;"),
        ({"threshold": math.inf}, ValueError, r"threshold: expected .*found inf;"),
        ({"threshold": "0.5"}, TypeError, r"threshold: expected .*found str '0.5'; pass a number, e.g. threshold=0.5"),
        ({"threshold": True}, TypeError, r"threshold: expected .*found bool True"),
        ({"batch_size": -1}, ValueError, r"batch_size: expected an int >= 1 .*found int -1"),
        ({"batch_size": 0}, ValueError, r"batch_size: expected an int >= 1 .*found int 0"),
        ({"batch_size": True}, TypeError, r"batch_size: expected an int >= 1 .*found bool True"),
        ({"batch_size": 2.5}, TypeError, r"batch_size: expected an int >= 1 .*found float 2.5"),
        ({"explain": "yes"}, TypeError, r"explain: expected True or False, found str 'yes'"),
        ({"explain": 1}, TypeError, r"explain: expected True or False, found int 1"),
    ],
)
def test_bad_options_say_expected_found_and_fix(clf, kwargs, err, match):
    with pytest.raises(err, match=match):
        clf.predict(CHINESE, **kwargs)
    with pytest.raises(err, match=match):
        predict(CHINESE, model=clf, **kwargs)
    with pytest.raises(err, match=match):  # checked even when there is nothing to predict
        clf.predict([], **kwargs)


def test_options_are_checked_before_the_model_is_loaded(tmp_path):
    with pytest.raises(ValueError, match=r"batch_size: expected an int >= 1"):
        predict(CHINESE, model=tmp_path / "no-model-here", batch_size=-1)


def test_good_option_edges(clf):
    n = len(clf.labels)
    res = clf.predict(CHINESE, top_k=n, threshold=np.float64(0.0), batch_size=1)
    assert len(res["top_k"]) == n and [s for _, s in res["top_k"]] == sorted(res["scores"].values(), reverse=True)
    assert clf.predict(CHINESE, threshold=0)["abstained"] is False
    assert clf.predict(CHINESE, top_k=np.int64(2), explain=np.bool_(False))["top_k"][0][0] == max(
        res["scores"], key=res["scores"].get
    )
    assert clf.predict(CHINESE, batch_size=1)["scores"] == pytest.approx(clf.predict(CHINESE, batch_size=64)["scores"])


# -- lone surrogates ------------------------------------------------------------------------------------
def test_lone_surrogates_do_not_crash(clf):
    res = predict("标题\n正文\ud83d……", model=clf)
    assert set(res) >= {"label", "scores", "reason"}
    assert clf.predict({"title": "标题\udc00", "text": CHINESE + "\ud83d"})["score"] > 0
    assert parse_item("标题\n正文\ud83d……") == ("标题", "正文\ufffd……")
    # A valid pair (as written in Python source) becomes the character it encodes.
    assert parse_item({"title": "标题", "text": "笑\ud83d\ude00"}) == ("标题", "笑😀")
    assert json.loads('"\\ud83d"') == "\ud83d"  # why it matters: JSON input can carry one


def test_an_article_reads_the_same_from_a_dict_a_str_and_a_file(tmp_path, clf):
    """Paragraph indents (full-width spaces), CRLFs and blank lines are cleaned by predict as by load_articles,
    so the model and the baseline see the same text whichever way an article comes in."""
    from newsclf.data.loaders import load_articles

    title, body = "\u3000市应急管理局  开展隐患排查 ", "\u3000\u3000检查组深入化工企业。\r\n\r\n\u3000\u3000督促限期整改，确保安全。\n \n"
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps({"id": "a1", "title": title, "text": body}, ensure_ascii=False) + "\n", encoding="utf-8")
    ds = load_articles([str(path)])
    from_file = (ds["title"][0], ds["text"][0])
    assert from_file == ("市应急管理局 开展隐患排查", "检查组深入化工企业。\n督促限期整改，确保安全。")
    assert parse_item({"title": title, "text": body}) == from_file
    assert parse_item(f"{title}\r\n{body}") == from_file
    assert clf.predict({"title": title, "text": body}) == clf.predict({"title": from_file[0], "text": from_file[1]})
