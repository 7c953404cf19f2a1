"""The TF-IDF baseline blended into a saved model: fitted at the end of training, saved in the model folder,
used by every prediction path, refitted or removed by `newsclf blend` (tiny model, real code paths)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from newsclf import artifact
from newsclf.cli import main
from newsclf.config import load_config
from newsclf.predict import Classifier
from newsclf.train import train


@pytest.fixture(scope="module")
def blended(tmp_path_factory, toy_rows, tiny_backbone):
    """A run whose validation split has 20 articles (the fewest a blend is fitted on): the toy articles
    with title and text swapped, so validation is not the training text."""
    from datasets import Dataset, DatasetDict

    rows = [{**r, "label_source": "gold:input", "group": i} for i, r in enumerate(toy_rows)]
    swapped = [{**r, "id": r["id"] + "-v", "title": r["text"], "text": r["title"], "group": 100 + i} for i, r in enumerate(rows)]
    data = tmp_path_factory.mktemp("blendds") / "dataset"
    DatasetDict({"train": Dataset.from_list(rows), "validation": Dataset.from_list(swapped),
                 "test": Dataset.from_list(rows[1::2])}).save_to_disk(str(data))
    out = tmp_path_factory.mktemp("blendruns")
    cfg = load_config("tiny", {"dataset_dir": str(data), "output_dir": str(out), "max_steps": 4, "eval_steps": 2})
    assert cfg.blend_baseline  # the default
    return train(cfg, progress=False)


def _copy_run(model_dir, tmp_path):
    """The model and its run's dataset folder, copied (tests that change a folder work on their own copy)."""
    shutil.copytree(model_dir.parent / "dataset", tmp_path / "dataset")
    shutil.copytree(model_dir, tmp_path / "model")
    return tmp_path / "model"


def test_training_saves_the_blend_and_the_transformers_own_score(blended):
    meta = artifact.read_meta(blended)
    assert set(meta.blend) == {"model", "baseline"} and all(v >= 0 for v in meta.blend.values())
    assert (blended / "baseline.json").is_file() and (blended / "baseline.safetensors").is_file()
    assert "model_alone_macro_f1" in meta.metrics["validation"]
    assert 0 <= meta.abstain_threshold <= 1


def test_predictions_are_the_blend_of_the_two_models(blended, toy_rows):
    from scipy.special import log_softmax, softmax

    clf = Classifier.from_dir(blended, precision="fp32", backend="torch")
    assert clf.baseline is not None
    pairs = [(r["title"], r["text"]) for r in toy_rows] + [("", "今天天气晴朗，适合出游")]
    # The blend written out from its parts: exponents on the calibrated transformer and the baseline.
    logits = clf.logits(pairs)
    base = clf.baseline.predict_proba([f"{t}\n{x}" for t, x in pairs])
    a, b = clf.blend["model"], clf.blend["baseline"]
    expected = softmax(a * log_softmax(logits / clf.temperature, axis=1) + b * np.log(np.clip(base, 1e-6, 1)), axis=1)
    assert np.allclose(clf.probabilities(pairs), expected, atol=1e-9)
    result = clf.predict({"title": pairs[0][0], "text": pairs[0][1]})
    assert result["score"] == pytest.approx(expected[0].max())
    # With b > 0 the blend differs from the transformer alone (else this test could not fail).
    alone = softmax(logits / clf.temperature, axis=1)
    assert b == 0 or not np.allclose(expected, alone)


def test_openvino_int8_rechecks_on_the_blends_margin(blended, toy_rows, tmp_path, monkeypatch):
    """On int8 with an fp32 fallback, a blended model reruns on fp32 exactly the articles whose blended margin
    is under (model weight / temperature) x the runtime's recheck margin, and keeps int8 for the others."""
    pytest.importorskip("openvino", reason="the openvino extra is not installed (pip install 'newsclf[openvino]')")
    from newsclf.calibration import blend_logits, softmax
    from newsclf.ov_backend import margins

    monkeypatch.setenv("NEWSCLF_CACHE", str(tmp_path / "cache"))
    clf = Classifier.from_dir(blended, precision="int8", backend="openvino")
    runtime = clf._runtime
    pairs = [(r["title"], r["text"]) for r in toy_rows]
    fast = clf.logits(pairs, recheck="none")
    exact = clf.logits(pairs, recheck="all")
    base = clf.baseline.predict_proba([f"{t}\n{x}" for t, x in pairs])
    blended_fast = blend_logits(fast, clf.temperature, base, clf.blend)
    # A recheck margin at the median blended margin, so that some articles are rechecked and some not.
    scale = clf.blend["model"] / clf.temperature
    assert scale > 0
    runtime.recheck_margin = float(np.median(margins(blended_fast))) / scale
    thin = margins(blended_fast) < scale * runtime.recheck_margin
    assert 0 < thin.sum() < len(pairs)
    runtime.rechecked = 0
    tokenised: list = []
    encode_many = clf.encode_many
    clf.encode_many = lambda articles: tokenised.append(len(articles)) or encode_many(articles)
    got, alone = clf.probability_parts(pairs)
    clf.encode_many = encode_many
    assert runtime.rechecked == int(thin.sum())  # one row per toy article
    assert tokenised == [len(pairs)]  # the rechecked articles reuse their rows: tokenised once
    want = np.where(thin[:, None], exact, fast)
    assert np.allclose(alone, softmax(want, clf.temperature), atol=1e-6)
    assert np.allclose(got, softmax(blend_logits(want, clf.temperature, base, clf.blend), 1.0), atol=1e-6)
    # What evaluate reports as the transformer alone also reruns the articles thin on int8's own margin.
    own = margins(fast) < runtime.recheck_margin
    assert (own & ~thin).any()  # else this part could not fail
    _, alone_exact = clf.probability_parts(pairs, exact_alone=True)
    assert np.allclose(alone_exact, softmax(np.where((thin | own)[:, None], exact, fast), clf.temperature), atol=1e-6)


@pytest.mark.parametrize("lone_on_fallback", [True, False])
def test_openvino_int8_runs_a_lone_article_once_on_the_fallback(blended, toy_rows, tmp_path, monkeypatch,
                                                                lone_on_fallback):
    """Where lone rows run on the fallback (AMX CPUs), a single article is not run on int8 and then again on
    fp32 when its blended margin is thin: it runs once, on the fallback graph, and the blend skips its
    recheck. Elsewhere it runs on int8, and the blend's thin margin sends it to the fallback once."""
    pytest.importorskip("openvino", reason="the openvino extra is not installed (pip install 'newsclf[openvino]')")
    from newsclf.calibration import blend_logits, softmax

    monkeypatch.setenv("NEWSCLF_CACHE", str(tmp_path / "cache"))
    clf = Classifier.from_dir(blended, precision="int8", backend="openvino")
    runtime = clf._runtime
    runtime.lone_on_fallback = lone_on_fallback
    runtime.recheck_margin = np.inf  # every article's blended margin is thin
    pair = (toy_rows[0]["title"], toy_rows[0]["text"])
    calls: list = []
    infer = runtime._infer
    runtime._infer = lambda kind, ids, mask: calls.append(kind) or infer(kind, ids, mask)
    got, alone = clf.probability_parts([pair], exact_alone=True)
    if lone_on_fallback:
        assert len(calls) == 1 and runtime.rechecked == 0, (calls, runtime.rechecked)
    else:
        assert calls[1:] == ["fallback"] and calls[0] != "fallback" and runtime.rechecked == 1, calls
    runtime._infer = infer
    exact = clf.logits([pair, pair], recheck="all")[:1]  # two rows: the multi-row fallback graph
    base = clf.baseline.predict_proba([f"{pair[0]}\n{pair[1]}"])
    # One row and two run on different fallback graphs: bf16 (AMX CPUs) rounds them apart by ~1e-4.
    assert np.allclose(alone, softmax(exact, clf.temperature), atol=2e-3)
    assert np.allclose(got, softmax(blend_logits(exact, clf.temperature, base, clf.blend), 1.0), atol=2e-3)


def test_the_folder_stays_a_standard_hugging_face_folder(blended):
    from transformers import pipeline

    out = pipeline("text-classification", model=str(blended), device="cpu")("市消防救援支队开展火灾隐患排查")
    assert out[0]["label"] in artifact.read_meta(blended).labels


def test_a_missing_or_broken_baseline_is_named(blended, tmp_path, capsys):
    model = _copy_run(blended, tmp_path)
    (model / "baseline.safetensors").unlink()
    with pytest.raises(artifact.ModelFolderError, match="baseline.safetensors is missing"):
        Classifier.from_dir(model, precision="fp32", backend="torch")
    (tmp_path / "a.jsonl").write_text(json.dumps({"title": "标题", "text": "正文内容"}, ensure_ascii=False) + "\n")
    assert main(["predict", str(tmp_path / "a.jsonl"), "--model", str(model)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "baseline.safetensors is missing" in err[-1]
    shutil.copy(blended / "baseline.safetensors", model / "baseline.safetensors")
    (model / "baseline.json").write_text("{", encoding="utf-8")
    with pytest.raises(artifact.ModelFolderError, match="blended baseline is unreadable"):
        Classifier.from_dir(model, precision="fp32", backend="torch")


def test_newsclf_blend_removes_and_refits_the_blend_as_training_did(blended, tmp_path, capsys):
    model = _copy_run(blended, tmp_path)
    trained_meta = artifact.read_meta(blended)
    assert main(["blend", "--model", str(model), "--off"]) == 0
    off = artifact.read_meta(model)
    assert off.blend is None and not (model / "baseline.json").exists()
    assert off.temperature == pytest.approx(trained_meta.temperature)
    assert Classifier.from_dir(model, precision="fp32", backend="torch").baseline is None
    assert main(["blend", "--model", str(model)]) == 0
    assert "blend weights" in capsys.readouterr().out
    again = artifact.read_meta(model)
    # The same code as the end of training, on the same saved splits: the same weights and threshold.
    assert again.blend == pytest.approx(trained_meta.blend)
    assert again.abstain_threshold == pytest.approx(trained_meta.abstain_threshold)


def test_newsclf_blend_needs_the_runs_dataset(blended, tmp_path, capsys):
    shutil.copytree(blended, tmp_path / "model")
    assert main(["blend", "--model", str(tmp_path / "model")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and "no saved dataset" in err


def test_evaluate_reports_the_blend_and_the_transformer_alone(blended, tmp_path, toy_rows):
    from newsclf.evaluation import evaluate_model

    data = tmp_path / "held.jsonl"
    data.write_text("".join(json.dumps({"id": r["id"], "title": r["title"], "text": r["text"], "label": r["label"]},
                                       ensure_ascii=False) + "\n" for r in toy_rows), encoding="utf-8")
    m = evaluate_model(blended, data, out_dir=tmp_path / "eval")
    assert m["blend"] == artifact.read_meta(blended).blend
    assert 0 <= m["model_alone_metrics"]["macro_f1"] <= 1 and "baseline_metrics" in m


def test_a_blend_is_saved_with_its_baseline_or_not_at_all(blended, tmp_path):
    model, tokenizer, meta = artifact.load(blended)
    with pytest.raises(ValueError, match="meta.blend and baseline go together"):
        artifact.save(tmp_path / "m", model, tokenizer, meta)  # blend weights without the baseline's files
    assert not (tmp_path / "m").exists()


def test_evaluate_needs_only_the_folder_of_a_blended_model(blended, tmp_path, toy_rows):
    from newsclf.evaluation import evaluate_model

    shutil.copytree(blended, tmp_path / "model")  # no dataset folder beside it
    data = tmp_path / "held.jsonl"
    data.write_text("".join(json.dumps({"title": r["title"], "text": r["text"], "label": r["label"]},
                                       ensure_ascii=False) + "\n" for r in toy_rows), encoding="utf-8")
    m = evaluate_model(tmp_path / "model", data, out_dir=tmp_path / "eval")
    assert m["baseline_train_articles"] == 20 and "baseline_metrics" in m
    assert m["baseline_metrics"] == evaluate_model(blended, data, out_dir=tmp_path / "eval2")["baseline_metrics"]


def test_a_used_blended_classifier_can_be_sent_to_another_process(blended):
    import pickle

    clf = Classifier.from_dir(blended, precision="fp32", backend="torch")
    article = {"title": "市消防救援支队开展火灾隐患排查", "text": "检查组排查高层建筑消防隐患，督促限期整改。"}
    first = clf.predict(article)  # starts the baseline's helper thread
    again = pickle.loads(pickle.dumps(clf)).predict(article)
    assert again["label"] == first["label"]
    assert again["scores"] == pytest.approx(first["scores"], abs=1e-6)
