"""Training, saving, loading and predicting with the tiny backbone on the toy articles (real code paths)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import numpy as np
import pytest
from datasets import Dataset

from newsclf.config import load_config
from newsclf.predict import Classifier, load, predict
from newsclf.train import TrainingInterrupted, train


def tiny_config(tmp_path, dataset_dir, **over):
    return load_config("tiny", {"dataset_dir": str(dataset_dir), "output_dir": str(tmp_path), **over})


@pytest.fixture(scope="module")
def trained(tmp_path_factory, toy_dataset_dir, tiny_backbone):
    out = tmp_path_factory.mktemp("runs")
    # Enough steps at a high learning rate that the tiny model fits the 20 toy articles.
    cfg = tiny_config(out, toy_dataset_dir, max_steps=60, eval_steps=30, learning_rate=3e-3, head_learning_rate=3e-3)
    return train(cfg)


def test_model_folder_is_complete(trained):
    names = {p.name for p in trained.iterdir()}
    for expected in ["config.json", "model.safetensors", "tokenizer.json", "newsclf.json", "metrics.json",
                     "confusion_matrix.png", "predictions.jsonl", "README.md"]:
        assert expected in names
    meta = json.loads((trained / "newsclf.json").read_text())
    assert meta["labels"] == ["governance", "party_building", "safety", "culture", "other"]
    assert meta["input_mode"] == "head" and meta["temperature"] > 0
    config = json.loads((trained / "config.json").read_text())
    assert config["id2label"]["0"] == "governance"
    assert not any(p.name.startswith(".model-tmp") for p in trained.parent.iterdir())


def test_tiny_model_learns_the_toy_articles(trained, toy_rows):
    clf = Classifier.from_dir(trained, precision="fp32")
    preds = clf.predict([{"title": r["title"], "text": r["text"]} for r in toy_rows])
    acc = np.mean([p["label"] == r["label"] for p, r in zip(preds, toy_rows)])
    assert acc >= 0.8


def test_pipeline_loads_the_saved_model_and_agrees(trained, toy_rows):
    from transformers import pipeline

    pipe = pipeline("text-classification", model=str(trained), device=-1)
    clf = Classifier.from_dir(trained, precision="fp32")
    texts = [f"{r['title']}\n{r['text']}" for r in toy_rows]
    ours = clf.logits([(r["title"], r["text"]) for r in toy_rows]).argmax(1)
    theirs = [clf.labels.index(p["label"]) for p in pipe(texts, truncation=True, max_length=64)]
    assert list(ours) == theirs


def test_predict_contract(trained):
    clf = load(trained)
    one = predict("市消防救援支队开展火灾隐患排查\n消防员检查居民楼消防通道。", model=clf)
    assert set(one) >= {"label", "score", "scores", "abstained"}
    assert abs(sum(one["scores"].values()) - 1) < 1e-4
    assert one["score"] == max(one["scores"].values()) or one["abstained"]
    many = predict(["博物馆举办文物展\n展出青铜器。", {"title": "安全检查", "text": "排查隐患"}], model=clf, top_k=2)
    assert isinstance(many, list) and len(many) == 2 and len(many[0]["top_k"]) == 2
    # same order: predicting one at a time gives the same answers
    assert [predict(x, model=clf)["label"] for x in ["博物馆举办文物展\n展出青铜器。"]] == [many[0]["label"]]


def test_predict_abstains_below_threshold(trained):
    res = predict("博物馆举办文物展\n展出青铜器。", model=trained, threshold=1.0)
    assert res["abstained"] and res["label"] == "other"


def test_explain_returns_weighted_words(trained):
    res = predict("市应急管理局开展安全生产隐患排查\n检查组排查危险化学品隐患。", model=trained, explain=True)
    assert isinstance(res["keywords"], list)
    assert all(k["weight"] > 0 and isinstance(k["word"], str) for k in res["keywords"])


@pytest.mark.parametrize(
    "item,err,match",
    [
        ("   ", ValueError, "empty or whitespace"),
        (42, TypeError, "expected an article as a str .* found int"),
        ({"title": "x"} | {"body": "y"}, None, None),
        ({"body": "y"}, ValueError, "needs a 'text'"),
    ],
)
def test_bad_items(trained, item, err, match):
    if err is None:
        predict(item, model=trained)
        return
    with pytest.raises(err, match=match):
        predict(item, model=trained)


def test_mixed_list_names_the_index(trained):
    with pytest.raises(ValueError, match="item 2: the article text is empty"):
        predict(["标题\n正文", "另一篇\n正文", ""], model=trained)


def test_million_characters_and_non_chinese(trained):
    res = predict("标题\n" + "安全生产" * 250_000, model=trained)
    assert res["label"] in load(trained).labels
    res = predict("The city council met on Monday to discuss the budget.", model=trained)
    assert 0 < res["score"] <= 1


def test_threads_share_one_model(trained):
    clf = load(trained)
    assert load(trained) is clf
    out: list = []
    threads = [threading.Thread(target=lambda: out.append(predict("博物馆举办文物展\n展出青铜器。", model=trained)["label"]))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(out)) == 1 and len(out) == 4


def test_default_model_from_env(trained, monkeypatch):
    monkeypatch.setenv("NEWSCLF_MODEL", str(trained))
    assert predict("博物馆举办文物展\n展出青铜器。")["label"] in load(trained).labels


def test_missing_model_and_missing_metadata(tmp_path, trained):
    with pytest.raises(FileNotFoundError, match="no model folder at .*train one with"):
        Classifier.from_dir(tmp_path / "nothing")
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "config.json").write_text((trained / "config.json").read_text())
    with pytest.raises(ValueError, match="has no newsclf.json: it is not a newsclf model folder"):
        Classifier.from_dir(plain)


def test_label_outside_label_set_is_rejected(tmp_path, toy_dataset_dir, tiny_backbone):
    cfg = tiny_config(tmp_path, toy_dataset_dir, labels=["governance", "party_building", "safety", "culture"])
    with pytest.raises(ValueError, match=r"labels \['other'\] that are not in the label set"):
        train(cfg)


def test_empty_training_split(tmp_path, toy_rows, tiny_backbone):
    data = tmp_path / "two.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in toy_rows[:2]), encoding="utf-8")
    cfg = load_config("tiny", {"data": [str(data)], "output_dir": str(tmp_path), "split_by": "date",
                               "validation_fraction": 0.45, "test_fraction": 0.4})
    with pytest.raises(ValueError, match="the training split is empty"):
        train(cfg)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_unwritable_run_dir(tmp_path, toy_dataset_dir):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    with pytest.raises(OSError, match="cannot write to the run folder"):
        train(tiny_config(ro, toy_dataset_dir))


def test_unwritable_run_dir_as_file(tmp_path, toy_dataset_dir):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(OSError, match="cannot write to the run folder"):
        train(tiny_config(blocker, toy_dataset_dir))


def test_ctrl_c_leaves_a_resumable_checkpoint(tmp_path, toy_dataset_dir, tiny_backbone):
    cfg = tiny_config(tmp_path, toy_dataset_dir, max_steps=100_000, eval_steps=100_000)
    ckpts = tmp_path / "tiny" / "checkpoints"

    def interrupt() -> None:
        # Once the run has written its settings it is past the imports and about to install its handler.
        deadline = time.time() + 120
        while not (ckpts / "newsclf-config.json").exists() and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    with pytest.raises(TrainingInterrupted, match="--resume"):
        train(cfg)
    saved = sorted(ckpts.glob("checkpoint-*"))
    assert saved, "a checkpoint must be written on Ctrl-C"
    assert not (tmp_path / "tiny" / "model").exists()
    step = int(saved[-1].name.split("-")[1])
    # A shorter max_steps than the interrupted run: a deliberate change of settings, hence force=True.
    resumed = train(tiny_config(tmp_path, toy_dataset_dir, max_steps=step + 2, eval_steps=100_000), resume=True, force=True)
    state = json.loads((resumed / "log_history.json").read_text())
    assert state[-1]["step"] == step + 2


def test_resume_with_other_settings_is_refused(tmp_path, toy_dataset_dir, tiny_backbone):
    train(tiny_config(tmp_path, toy_dataset_dir, max_steps=2, eval_steps=2))
    changed = tiny_config(tmp_path, toy_dataset_dir, max_steps=4, eval_steps=2, learning_rate=0.01)
    with pytest.raises(ValueError, match=r"written with other settings \(learning_rate: checkpoint 0.001, now 0.01; "
                                         r"max_steps: checkpoint 2, now 4\).*--force"):
        train(changed, resume=True)
    resumed = train(changed, resume=True, force=True)
    assert json.loads((resumed / "log_history.json").read_text())[-1]["step"] == 4


def test_best_so_far_counts_the_evaluations_before_a_resume(capsys):
    from types import SimpleNamespace

    from newsclf.run_state import _concise_progress

    # The state a resumed run has at its first evaluation: the history up to the checkpoint comes back with
    # it (0.90 at step 450), and this process has seen only the new entry (0.87 at step 600).
    now = {"eval_macro_f1": 0.87, "eval_accuracy": 0.9, "eval_loss": 0.4, "step": 600}
    history = [{"eval_macro_f1": 0.80, "step": 150}, {"eval_macro_f1": 0.90, "step": 450}, now]
    state = SimpleNamespace(is_world_process_zero=True, global_step=600, max_steps=792, epoch=2.27,
                            log_history=history)
    bar = _concise_progress()()
    bar.on_log(None, state, None, logs=now)
    out = capsys.readouterr().out
    assert "step 600/792 (epoch 2.27): validation macro-F1 0.8700" in out
    assert "best so far 0.9000" in out


def test_resume_without_checkpoint(tmp_path, toy_dataset_dir):
    with pytest.raises(FileNotFoundError, match="no checkpoint in"):
        train(tiny_config(tmp_path, toy_dataset_dir), resume=True)


@pytest.fixture()
def toy_jsonl(tmp_path, toy_rows):
    path = tmp_path / "toy.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in toy_rows), encoding="utf-8")
    return path


def test_evaluate_writes_report_with_baseline(trained, toy_jsonl, tmp_path):
    from newsclf.evaluation import evaluate_model

    out = tmp_path / "eval"
    m = evaluate_model(trained, toy_jsonl, out_dir=out)
    assert m["articles"] == 20
    assert 0 <= m["model_metrics"]["macro_f1"] <= 1 and 0 <= m["baseline_metrics"]["macro_f1"] <= 1
    assert m["gap_macro_f1_points"] == pytest.approx(
        100 * (m["model_metrics"]["macro_f1"] - m["baseline_metrics"]["macro_f1"]), abs=0.01
    )
    for name in ["eval.json", "report.md", "confusion_matrix.png", "confusion_matrix.txt", "reliability.png", "errors.json"]:
        assert (out / name).exists(), name
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "baseline" in report.lower()
    ci = m["gap_macro_f1_interval_points"]
    assert ci["confidence"] == 0.95 and ci["low"] <= ci["high"]
    assert "paired bootstrap interval" in report and f"{ci['low']:+.1f} to {ci['high']:+.1f} points" in report


def test_evaluate_rejects_unlabelled_and_unknown_labels(trained, tmp_path, toy_rows):
    from newsclf.evaluation import evaluate_model

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({**toy_rows[0], "label": "sports"}, ensure_ascii=False) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"labels \['sports'\] in .* are not among the model's labels"):
        evaluate_model(trained, bad, out_dir=tmp_path / "e")
    unl = tmp_path / "unl.jsonl"
    unl.write_text(json.dumps({"id": "a", "title": "标题", "text": "正文内容"}, ensure_ascii=False) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="have no 'label'; evaluation needs labelled articles"):
        evaluate_model(trained, unl, out_dir=tmp_path / "e")


def test_cli_predict_jsonl_and_resume(trained, toy_jsonl, tmp_path, capsys, monkeypatch):
    import newsclf.tagging as tagging
    from newsclf.cli import main

    out = tmp_path / "tags.jsonl"
    assert main(["predict", str(toy_jsonl), "--model", str(trained), "--out", str(out), "--quiet"]) == 0
    rows = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == [f"toy-{i:02d}" for i in range(20)]
    assert all(set(r) >= {"id", "label", "score"} for r in rows)
    assert "20 articles written" in capsys.readouterr().err
    # Ctrl-C after the first batch of 5: one line says what was kept and how to go on.
    real, calls = tagging._predict_batch, []

    def interrupted_second_time(clf, batch):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(clf, batch)

    monkeypatch.setattr(tagging, "BATCH", 5)
    monkeypatch.setattr(tagging, "_predict_batch", interrupted_second_time)
    out2 = tmp_path / "tags2.jsonl"
    assert main(["predict", str(toy_jsonl), "--model", str(trained), "--out", str(out2), "--quiet"]) == 130
    err = capsys.readouterr().err
    assert "interrupted: 5 articles are in" in err and "--resume" in err and "Traceback" not in err
    partial = tmp_path / "tags2.jsonl.partial"
    # A crash mid-write leaves half a line: it is dropped and that article redone.
    partial.write_text(partial.read_text(encoding="utf-8") + '{"id": "toy-0', encoding="utf-8")
    monkeypatch.setattr(tagging, "_predict_batch", real)
    assert main(["predict", str(toy_jsonl), "--model", str(trained), "--out", str(out2), "--resume", "--quiet"]) == 0
    assert out2.read_text(encoding="utf-8") == out.read_text(encoding="utf-8")
    assert not partial.exists() and not (tmp_path / "tags2.jsonl.partial.json").exists()


def test_resume_refuses_a_partial_of_another_input(trained, toy_jsonl, tmp_path, capsys, monkeypatch):
    import newsclf.tagging as tagging
    from newsclf.cli import main

    monkeypatch.setattr(tagging, "BATCH", 5)
    real = tagging._predict_batch
    monkeypatch.setattr(tagging, "_predict_batch", lambda clf, b: (_ for _ in ()).throw(KeyboardInterrupt)
                        if b[0]["id"] == "toy-05" else real(clf, b))
    out = tmp_path / "tags.jsonl"
    assert main(["predict", str(toy_jsonl), "--model", str(trained), "--out", str(out), "--quiet"]) == 130
    other = tmp_path / "other.jsonl"
    other.write_text(toy_jsonl.read_text(encoding="utf-8").replace("toy-", "new-"), encoding="utf-8")
    capsys.readouterr()
    assert main(["predict", str(other), "--model", str(trained), "--out", str(out), "--resume", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --resume: ") and "belongs to another run (the input files differ" in err
    # A partial file with no record of its run is refused too, not trusted.
    (tmp_path / "tags.jsonl.partial.json").unlink()
    assert main(["predict", str(toy_jsonl), "--model", str(trained), "--out", str(out), "--resume", "--quiet"]) == 2
    assert "has no record of the inputs and model" in capsys.readouterr().err


def test_resume_refuses_a_partial_written_on_another_runtime(trained, toy_jsonl, tmp_path, capsys, monkeypatch):
    """``--precision``/``--backend`` choose the runtime; a partial file records it, and a resume on another
    one is refused (int8 and fp32 score apart: one output file should not mix them)."""
    import newsclf.tagging as tagging
    from newsclf.cli import main

    monkeypatch.setattr(tagging, "BATCH", 5)
    real = tagging._predict_batch
    monkeypatch.setattr(tagging, "_predict_batch", lambda clf, b: (_ for _ in ()).throw(KeyboardInterrupt)
                        if b[0]["id"] == "toy-05" else real(clf, b))
    out = tmp_path / "tags.jsonl"
    run = ["predict", str(toy_jsonl), "--model", str(trained), "--out", str(out), "--quiet"]
    assert main([*run, "--precision", "fp32", "--backend", "torch"]) == 130
    sidecar = tmp_path / "tags.jsonl.partial.json"
    record = json.loads(sidecar.read_text(encoding="utf-8"))
    assert record["runs"] == "torch fp32"
    sidecar.write_text(json.dumps({**record, "runs": "openvino int8"}), encoding="utf-8")  # as if written there
    capsys.readouterr()
    monkeypatch.setattr(tagging, "_predict_batch", real)
    assert main([*run, "--precision", "fp32", "--backend", "torch", "--resume"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --resume: ") and "written on openvino int8, this run is on torch fp32" in err
    sidecar.write_text(json.dumps(record), encoding="utf-8")
    assert main([*run, "--precision", "fp32", "--backend", "torch", "--resume"]) == 0
    assert len(out.read_text(encoding="utf-8").splitlines()) == 20
    with pytest.raises(SystemExit) as usage:  # not a choice: argparse's usage error
        main([*run, "--precision", "fp16"])
    assert usage.value.code == 2 and "invalid choice: 'fp16'" in capsys.readouterr().err


def test_cli_evaluate_runs_and_records_the_chosen_runtime(trained, toy_jsonl, tmp_path, capsys):
    from newsclf.cli import main

    out = tmp_path / "eval"
    assert main(["evaluate", "--model", str(trained), "--data", str(toy_jsonl), "--out", str(out), "--no-baseline",
                 "--precision", "fp32", "--backend", "torch", "--quiet"]) == 0
    assert capsys.readouterr().out.startswith("runs on: torch fp32\n")
    assert json.loads((out / "eval.json").read_text(encoding="utf-8"))["runs"] == {"backend": "torch", "precision": "fp32"}
    assert "- **runs on**: torch fp32" in (out / "report.md").read_text(encoding="utf-8")


def test_cli_predict_keeps_bad_lines_as_errors(trained, tmp_path):
    from newsclf.tagging import tag_file

    src = tmp_path / "mixed.jsonl"
    src.write_text('{"id": "a", "title": "博物馆", "text": "文物展"}\nnot json\n{"id": "c", "text": "  "}\n', encoding="utf-8")
    out = tmp_path / "o.jsonl"
    report = tag_file([str(src)], str(out), model=trained, progress=False)
    assert (report.written, report.errors) == (3, 2)
    rows = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert "label" in rows[0]
    assert rows[1]["error"].startswith("mixed.jsonl, line 2: malformed JSON")
    assert rows[2]["error"].startswith("mixed.jsonl, line 3: ") and "empty" in rows[2]["error"]


def test_cli_split_and_unknown_model(tmp_path, capsys):
    from newsclf.cli import main

    page = tmp_path / "page.md"
    page.write_text("## 市博物馆新馆开放\n\n本报讯 市博物馆新馆今天正式开放，展出文物三百余件。\n\n## 全市启动防汛演练\n\n本报讯 今天全市开展防汛应急演练。\n",
                    encoding="utf-8")
    assert main(["split", str(page)]) == 0
    arts = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [a["title"] for a in arts] == ["市博物馆新馆开放", "全市启动防汛演练"]
    assert main(["predict", str(page), "--model", str(tmp_path / "none")]) == 2
    assert "no model folder" in capsys.readouterr().err


def test_tag_dataset_with_two_processes(trained, toy_rows):
    from newsclf.tagging import tag_dataset

    ds = Dataset.from_list(toy_rows[:6])
    tagged = tag_dataset(ds, trained, num_proc=2, batch_size=2)
    single = predict([{"title": r["title"], "text": r["text"]} for r in toy_rows[:6]], model=trained)
    assert tagged["predicted"] == [r["label"] for r in single]


def test_bench_predict_compares_with_the_pipeline(trained):
    from benchmarks.bench_predict import bench_predict

    out = bench_predict(trained, n_articles=12, single=2, repeats=1)
    assert out["articles"] == 12 and out["pipeline_fp32_batch16"]["articles_per_s"] > 0
    for precision in ("fp32", "bf16", "int8", "auto"):
        entry = out[f"newsclf_{precision}"]
        assert entry["articles_per_s"] > 0 and entry["single_p95_ms"] >= entry["single_p50_ms"] > 0
    # The fp32 path is the pipeline's computation with a different batching: the labels must not move.
    assert out["newsclf_fp32"]["agreement_with_pipeline"] == 1.0
    assert out["peak_rss_mb_predict_alone"] > 0


def test_layer_lr_decay_gives_each_depth_its_rate(tmp_path, toy_dataset_dir, tiny_backbone):
    from transformers import BertConfig, BertForSequenceClassification

    from newsclf.train import encoder_param_groups

    model = BertForSequenceClassification(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=3,
                                                     num_attention_heads=2, intermediate_size=32, num_labels=3))
    model.bert.embeddings.word_embeddings.weight.requires_grad_(False)  # as freeze_embeddings does
    encoder = {id(p): n for n, p in model.named_parameters()
               if p.requires_grad and not n.startswith(("classifier", "bert.pooler"))}

    (one,) = encoder_param_groups(model, 1e-4, 1.0, 0.01)
    assert sorted(map(id, one["params"])) == sorted(encoder) and one["lr"] == 1e-4

    groups = encoder_param_groups(model, 1e-4, 0.5, 0.01)
    assert [g["lr"] for g in groups] == pytest.approx([1e-4 / 8, 1e-4 / 4, 1e-4 / 2, 1e-4])
    assert sorted(id(p) for g in groups for p in g["params"]) == sorted(encoder)  # each once, head and frozen out
    names = [{encoder[id(p)] for p in g["params"]} for g in groups]
    assert all(".embeddings." in f".{n}" for n in names[0])
    for depth, group in enumerate(names[1:]):
        assert all(f"encoder.layer.{depth}." in n for n in group)

    # A real run with it trains and saves.
    cfg = tiny_config(tmp_path, toy_dataset_dir, max_steps=2, eval_steps=2, layer_lr_decay=0.8)
    assert (train(cfg) / "model.safetensors").exists()


@pytest.mark.parametrize("value", [0, 1.5, -0.1])
def test_layer_lr_decay_out_of_range_is_refused(tmp_path, toy_dataset_dir, value):
    with pytest.raises(ValueError, match="layer_lr_decay.*\\(0, 1\\]"):
        tiny_config(tmp_path, toy_dataset_dir, layer_lr_decay=value)
