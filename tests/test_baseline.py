"""The jieba + TF-IDF + logistic-regression baseline on tiny self-written Chinese texts."""

from __future__ import annotations

import numpy as np
import pytest

from newsclf.baseline import TfidfBaseline, evaluate_baseline_on

LABELS = ["governance", "party_building", "safety", "culture", "other"]

TOY = {
    "safety": [
        "市应急管理局开展安全生产隐患排查，督促企业整改消防隐患",
        "消防救援支队组织高层建筑火灾应急演练，检查灭火器材",
        "交警部门开展道路交通安全整治，查处酒后驾驶和超速行为",
        "燃气管道安全检查覆盖老旧小区，排查泄漏隐患",
    ],
    "culture": [
        "市博物馆举办非遗文化展览，展出剪纸、刺绣等传统技艺",
        "图书馆开展全民阅读活动，读者在书香中度过周末",
        "文艺演出走进乡村，戏曲演员为村民表演豫剧经典剧目",
        "民俗文化节开幕，舞龙舞狮表演吸引众多市民观看",
    ],
    "party_building": [
        "市委组织部召开党建工作会议，部署基层党组织建设任务",
        "党员干部参加主题教育专题党课，学习党章党规",
        "社区党支部开展组织生活会，党员开展批评与自我批评",
        "机关党委推进党风廉政建设，加强党员教育管理",
    ],
    "governance": [
        "市政府常务会议研究部署营商环境优化和政务服务改革",
        "人大常委会审议地方性法规草案，推进依法行政",
        "政务服务中心推行一网通办，群众办事少跑腿",
        "市长主持召开专题会议，研究城市规划和财政预算",
    ],
}


def _toy():
    texts = [t for label in TOY for t in TOY[label]]
    labels = [label for label in TOY for _ in TOY[label]]
    return texts, labels


def test_learns_separable_toy_classes():
    texts, labels = _toy()
    model = TfidfBaseline(LABELS, seed=0).fit(texts, labels)
    assert model.predict(texts) == labels
    # Unseen texts with the classes' own vocabulary land in the right class.
    assert model.predict(["消防部门检查火灾隐患", "博物馆展出非遗剪纸技艺"]) == ["safety", "culture"]


def test_label_absent_from_training_gets_probability_zero():
    texts, labels = _toy()  # "other" never occurs in training
    proba = TfidfBaseline(LABELS).fit(texts, labels).predict_proba(texts + ["今天天气晴朗"])
    assert proba.shape == (len(texts) + 1, len(LABELS))
    assert np.allclose(proba.sum(axis=1), 1)
    assert np.all(proba[:, LABELS.index("other")] == 0)
    # Columns follow the label order given to the constructor, not the training order.
    assert proba[0].argmax() == LABELS.index(labels[0])


def test_is_deterministic_for_a_seed():
    texts, labels = _toy()
    a = TfidfBaseline(LABELS, seed=3).fit(texts, labels).predict_proba(texts)
    b = TfidfBaseline(LABELS, seed=3).fit(texts, labels).predict_proba(texts)
    assert np.array_equal(a, b)


def test_truncates_texts_to_max_chars():
    texts, labels = _toy()
    # With only the first 2 characters kept, a long safety tail cannot rescue a culture head.
    model = TfidfBaseline(LABELS, max_chars=2).fit(texts, labels)
    padded = ["市博" + "消防安全隐患" * 50]
    assert np.array_equal(model.predict_proba(padded), model.predict_proba(["市博"]))


def test_evaluate_baseline_on_returns_metrics():
    texts, labels = _toy()
    out = evaluate_baseline_on(texts, labels, texts, labels, LABELS[:4])
    assert out["metrics"]["accuracy"] == 1.0
    assert out["predictions"] == labels
    assert out["proba"].shape == (len(texts), 4)


@pytest.mark.parametrize(
    ("texts", "labels", "error", "match"),
    [
        (["a", "b"], ["safety"], ValueError, r"same length; found 2 and 1"),
        (["a", "b"], ["safety", "sport"], ValueError, r"unknown labels \['sport'\]"),
        (["a", "b"], ["safety", "safety"], ValueError, r"at least two labels; found only \['safety'\]"),
        ("一段文字", ["safety"], TypeError, r"single string; wrap it in a list"),
        (["a", None], ["safety", "culture"], TypeError, r"found NoneType at positions \[1\]"),
    ],
)
def test_bad_training_input_is_a_clear_error(texts, labels, error, match):
    with pytest.raises(error, match=match):
        TfidfBaseline(LABELS).fit(texts, labels)


def test_predict_before_fit_and_bad_labels_are_errors():
    with pytest.raises(RuntimeError, match=r"not fitted; call fit"):
        TfidfBaseline(LABELS).predict(["文本"])
    with pytest.raises(ValueError, match="at least two unique names"):
        TfidfBaseline(["a", "a"])


def _sklearn_proba(model: TfidfBaseline, texts: list[str]) -> np.ndarray:
    """scikit-learn's own one-vs-rest probabilities, columns mapped to the constructor's label order."""
    out = np.zeros((len(texts), len(model.labels)))
    proba = model.pipeline_.predict_proba([t[: model.max_chars] for t in texts])
    for j, name in enumerate(model.pipeline_.classes_):
        out[:, model.labels.index(name)] = proba[:, j]
    return out


@pytest.mark.parametrize("present", [["safety", "culture", "party_building", "governance"], ["culture", "safety"]])
def test_saved_baseline_gives_scikit_learns_probabilities(tmp_path, present):
    texts, labels = _toy()
    keep = [i for i, lab in enumerate(labels) if lab in present]  # two labels: one binary model, not one per label
    texts, labels = [texts[i] for i in keep], [labels[i] for i in keep]
    model = TfidfBaseline(LABELS, seed=1).fit(texts, labels)
    unseen = ["消防部门检查火灾隐患", "博物馆展出非遗剪纸技艺", "党支部开展组织生活会", "今天天气晴朗"]
    assert np.allclose(model.predict_proba(texts + unseen), _sklearn_proba(model, texts + unseen), atol=1e-6)
    model.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["baseline.json", "baseline.safetensors"]
    loaded = TfidfBaseline.load(tmp_path)
    assert loaded.labels == LABELS and loaded.trained_labels_ == model.trained_labels_
    assert np.allclose(loaded.predict_proba(texts + unseen), model.predict_proba(texts + unseen), atol=1e-6)


def test_features_match_scikit_learns_vectorizers_on_awkward_text():
    """newsclf computes the TF-IDF rows itself at predict time (no scikit-learn import, a compact character
    vocabulary); they must be the fitted vectorizers' rows, whitespace runs, astral characters and NULs included."""
    texts, labels = _toy()
    odd = ["安全  生产\t\t检查\n\n消防", "😀😀 博物馆😀", "\x00\x00党支部\x00", "", "   ", "a", "馆", "𠀀𠀁𠀂 非遗"]
    model = TfidfBaseline(LABELS, seed=0).fit(texts + odd[:3], labels + ["safety", "culture", "party_building"])
    union = model.pipeline_.named_steps["features"]
    for features, (_name, vec) in zip(model._features, union.transformer_list):
        expected = vec.transform(texts + odd).toarray()
        for i, text in enumerate(texts + odd):
            index, values = features.row(text)
            row = np.zeros(expected.shape[1])
            row[index] = values
            assert np.allclose(row, expected[i], atol=1e-12), (features.kind, text)
    assert np.allclose(model.predict_proba(texts + odd), _sklearn_proba(model, texts + odd), atol=1e-9)


def test_rjieba_cuts_the_same_words_as_jieba():
    """The baseline segments with rjieba when installed (fast) and jieba otherwise: a model trained with one
    and used with the other must see the same words. Checked on the shipped corpus and awkward strings."""
    pytest.importorskip("rjieba", reason="rjieba is not installed (a newsclf dependency: pip install -e .)")
    from newsclf.baseline import _jieba_tokens, _python_jieba_tokens
    from newsclf.data.loaders import load_articles

    ds = load_articles("embedded")
    texts = [f"{t}\n{x}"[:500] for t, x in zip(ds["title"], ds["text"])]
    texts += ["", "  多个   空格 ", "ABC abc 123 4.5% C++ C# a&b x_y", "😀表情😀", "\x00党支部\x00",
              "Ｆｕｌｌ　ｗｉｄｔｈ　１２３", "第1季度GDP增长5.2%，CPI上涨0.1%", "https://www.example.com/a?b=1"]
    differ = [t for t in texts if _jieba_tokens(t) != _python_jieba_tokens(t)]
    assert not differ, differ[:3]


def test_broken_saved_baseline_is_a_clear_error(tmp_path):
    texts, labels = _toy()
    TfidfBaseline(LABELS).fit(texts, labels).save(tmp_path)
    (tmp_path / "baseline.safetensors").rename(tmp_path / "moved")
    with pytest.raises(ValueError, match="missing baseline.safetensors"):
        TfidfBaseline.load(tmp_path)
    (tmp_path / "moved").rename(tmp_path / "baseline.safetensors")
    import json

    settings = json.loads((tmp_path / "baseline.json").read_text(encoding="utf-8"))
    settings["words"] = settings["words"][:-1]  # one term fewer than the saved idf and weights
    (tmp_path / "baseline.json").write_text(json.dumps(settings), encoding="utf-8")
    with pytest.raises(ValueError, match="does not match baseline.json"):
        TfidfBaseline.load(tmp_path)
    (tmp_path / "baseline.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="cannot read the saved baseline"):
        TfidfBaseline.load(tmp_path)
    with pytest.raises(RuntimeError, match="not fitted"):
        TfidfBaseline(LABELS).save(tmp_path)
