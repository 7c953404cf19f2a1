"""The OpenVINO backend (newsclf[openvino]): same answers as PyTorch, one conversion per model, and clean
fallbacks when the package, a CPU feature or the cache is missing or broken."""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("openvino", reason="the openvino extra is not installed (pip install 'newsclf[openvino]')")

from newsclf import ov_backend  # noqa: E402
from newsclf.inputs import pad_rows  # noqa: E402
from newsclf.predict import Classifier  # noqa: E402

ARTICLES = [
    ("市委常委会研究部署安全生产工作", "会议强调，要压实企业主体责任，开展隐患排查整治，坚决遏制重特大事故发生。"),
    ("非遗展演活动在市文化馆举行", "剪纸、皮影、豫剧等传统艺术集中亮相，吸引众多市民前来观看。"),
    ("基层党组织开展主题党日活动", "党员们重温入党誓词，学习党的二十大精神，交流学习体会。"),
    ("短讯", "今日晴。"),
    # Long enough to fill max_length: runs on the fixed-shape graphs.
    ("全市文化惠民工程持续推进", "图书馆、文化馆、博物馆免费开放，" * 40),
]


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    """A fresh, empty conversion cache for one test."""
    monkeypatch.setenv("NEWSCLF_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _entries(cache: Path) -> list[Path]:
    return sorted(p for p in cache.glob("openvino-*") if (p / ov_backend.ENTRY_FILE).is_file())


def _copy(model: Path, dest: Path) -> Path:
    shutil.copytree(model, dest)
    return dest


def test_openvino_fp32_gives_pytorchs_probabilities(tiny_model, cache):
    torch_clf = Classifier.from_dir(tiny_model, precision="fp32", backend="torch")
    ov_clf = Classifier.from_dir(tiny_model, precision="fp32", backend="openvino")
    assert (ov_clf.backend, ov_clf.precision, ov_clf.model) == ("openvino", "fp32", None)
    want, got = torch_clf.probabilities(ARTICLES), ov_clf.probabilities(ARTICLES)
    assert got.shape == want.shape == (len(ARTICLES), len(torch_clf.labels))
    assert np.allclose(got, want, atol=1e-4), np.abs(got - want).max()
    # The public result too: same labels, same abstentions, same keys.
    a, b = torch_clf.predict([{"title": t, "text": x} for t, x in ARTICLES]), ov_clf.predict(
        [{"title": t, "text": x} for t, x in ARTICLES])
    assert [(r["label"], r["abstained"], sorted(r)) for r in a] == [(r["label"], r["abstained"], sorted(r)) for r in b]


def test_auto_converts_once_and_reuses_the_cache(tiny_model, cache, caplog):
    with caplog.at_level(logging.WARNING, logger="newsclf.ov_backend"):
        first = Classifier.from_dir(tiny_model)  # precision auto, backend auto: OpenVINO when installed
    assert first.backend == "openvino"
    assert first.precision in {"int8", "bf16", "fp32"}
    assert any("converting" in r.getMessage() for r in caplog.records)
    entries = _entries(cache)
    assert entries, f"no cache entry in {cache}"
    record = json.loads((entries[-1] / ov_backend.ENTRY_FILE).read_text())
    if first.precision == "int8":
        # int8 is used only when, with thin margins re-run on fp32, it agreed on the check articles.
        assert record["agreement"]["same_label"] >= ov_backend.INT8_MIN_AGREEMENT
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="newsclf.ov_backend"):
        second = Classifier.from_dir(tiny_model)
    assert not [r for r in caplog.records if "converting" in r.getMessage()]
    assert _entries(cache) == entries
    assert np.array_equal(first.probabilities(ARTICLES).argmax(1), second.probabilities(ARTICLES).argmax(1))


def test_changed_weights_are_converted_again(tiny_model, cache, tmp_path):
    from safetensors.numpy import load_file, save_file

    model = _copy(tiny_model, tmp_path / "model")
    before = Classifier.from_dir(model, precision="fp32", backend="openvino").probabilities(ARTICLES)
    # Same file size, same config, new weights: a size- or name-based key would serve the stale graph.
    weights = load_file(model / "model.safetensors")
    name = next(k for k in weights if k.startswith("classifier.") and k.endswith("weight"))
    weights[name] = -weights[name]
    save_file(weights, model / "model.safetensors", metadata={"format": "pt"})
    after = Classifier.from_dir(model, precision="fp32", backend="openvino").probabilities(ARTICLES)
    want = Classifier.from_dir(model, precision="fp32", backend="torch").probabilities(ARTICLES)
    assert len(_entries(cache)) == 2
    assert np.allclose(after, want, atol=1e-4)
    assert not np.allclose(after, before, atol=1e-4)


def test_a_corrupt_cache_entry_is_rebuilt(tiny_model, cache, caplog):
    want = Classifier.from_dir(tiny_model, precision="fp32", backend="openvino").probabilities(ARTICLES)
    (entry,) = _entries(cache)
    with (entry / "model.bin").open("r+b") as fh:  # flip bytes in the middle of the weights
        fh.seek(os.path.getsize(entry / "model.bin") // 2)
        fh.write(b"\x00\xff" * 64)
    with caplog.at_level(logging.WARNING, logger="newsclf.ov_backend"):
        got = Classifier.from_dir(tiny_model, precision="fp32", backend="openvino").probabilities(ARTICLES)
    assert any("does not match its recorded hash" in r.getMessage() for r in caplog.records)
    assert np.allclose(got, want, atol=1e-6)
    (entry,) = _entries(cache)
    (entry / ov_backend.ENTRY_FILE).write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="newsclf.ov_backend"):
        got = Classifier.from_dir(tiny_model, precision="fp32", backend="openvino").probabilities(ARTICLES)
    assert any("unreadable record" in r.getMessage() for r in caplog.records)
    assert np.allclose(got, want, atol=1e-6)


def test_without_the_package_auto_runs_pytorch_and_openvino_says_how_to_install(tiny_model, cache):
    # A real missing package: the child process blocks the import (sys.modules entry None raises ImportError).
    code = (
        "import sys; sys.modules['openvino'] = None\n"
        "from newsclf.predict import Classifier\n"
        f"clf = Classifier.from_dir({str(tiny_model)!r})\n"
        "print(clf.backend)\n"
        "try:\n"
        f"    Classifier.from_dir({str(tiny_model)!r}, backend='openvino')\n"
        "except Exception as err:\n"
        "    print(type(err).__name__, err)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "NEWSCLF_CACHE": str(cache)}).stdout.splitlines()
    assert out[0] == "torch"
    assert out[1].startswith("OpenVINOUnavailable") and "pip install 'newsclf[openvino]'" in out[1]


def test_a_cpu_without_bf16_or_int8_gets_fp32(tiny_model, cache, monkeypatch):
    # What OpenVINO reports on such a CPU; the reported set is all the backend reads.
    monkeypatch.setattr(ov_backend, "capabilities", lambda: frozenset({"FP32"}))
    clf = Classifier.from_dir(tiny_model)
    assert (clf.backend, clf.precision) == ("openvino", "fp32")
    for precision in ("bf16", "int8"):
        with pytest.raises(ov_backend.OpenVINOUnavailable, match="use precision='fp32'"):
            Classifier.from_dir(tiny_model, precision=precision, backend="openvino")


def test_an_unwritable_cache_falls_back_to_pytorch(tiny_model, tmp_path, monkeypatch, caplog):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    monkeypatch.setenv("NEWSCLF_CACHE", str(ro))
    with caplog.at_level(logging.WARNING, logger="newsclf.ov_backend"):
        clf = Classifier.from_dir(tiny_model)
    assert clf.backend == "torch"
    assert any("running on PyTorch instead" in r.getMessage() for r in caplog.records)
    with pytest.raises(ov_backend.OpenVINOUnavailable, match="NEWSCLF_CACHE"):
        Classifier.from_dir(tiny_model, backend="openvino")


def test_a_cache_that_is_a_file_falls_back_to_pytorch(tiny_model, tmp_path, monkeypatch):
    # Runs as root too: a path that is a file cannot hold the cache whoever you are.
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("NEWSCLF_CACHE", str(blocker))
    assert Classifier.from_dir(tiny_model).backend == "torch"
    with pytest.raises(ov_backend.OpenVINOUnavailable, match="NEWSCLF_CACHE"):
        Classifier.from_dir(tiny_model, backend="openvino")


def test_bad_backend_is_refused_before_loading(tiny_model):
    with pytest.raises(ValueError, match="backend 'onnx' is not one of auto, torch, openvino"):
        Classifier.from_dir(tiny_model, backend="onnx")


def test_int8_rechecks_thin_margins_on_fp32(tiny_model, cache):
    clf = Classifier.from_dir(tiny_model, precision="int8", backend="openvino")
    runtime = clf._runtime
    assert runtime.fallback is not None and runtime.recheck_margin >= 0
    ids, mask = pad_rows([clf.encode(t, x)[0] for t, x in ARTICLES], clf.tokenizer.pad_token_id or 0)
    alone = runtime._fast(ids, mask)
    thin = ov_backend.margins(alone) < runtime.recheck_margin
    got = runtime(ids, mask)
    assert runtime.rechecked == int(thin.sum())
    # Rows with a thin int8 margin carry the fp32 graph's logits; the others int8's, untouched.
    assert np.array_equal(got[~thin], alone[~thin])
    if thin.any():
        assert np.allclose(got[thin], runtime._infer("fallback", ids[thin], mask[thin]), atol=1e-6)


def test_lone_rows_go_to_the_fallback_only_on_cpus_with_amx(tmp_path):
    flags = "fpu vme avx512f avx512_bf16 avx512_vnni"
    (tmp_path / "zen").write_text(f"processor\t: 0\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
    (tmp_path / "spr").write_text(f"processor\t: 0\nflags\t\t: {flags} amx_bf16 amx_tile amx_int8\n")
    (tmp_path / "odd").write_text("model name\t: amx_tile in a name is not a flag\n")
    assert ov_backend.has_amx(tmp_path / "spr")
    assert not ov_backend.has_amx(tmp_path / "zen") and not ov_backend.has_amx(tmp_path / "odd")
    assert not ov_backend.has_amx(tmp_path / "missing")  # not Linux: int8, right everywhere
    entry = tmp_path / "entry"
    entry.mkdir()
    np.save(entry / ov_backend.EMBEDDINGS, np.zeros((4, 2), dtype=np.float32))
    # The graphs are only read here; the choice is the constructor's.
    import openvino as ov

    param = ov.opset13.parameter([-1, -1, 2], np.float32)
    model = ov.Model([ov.opset13.relu(param)], [param])
    ov.save_model(model, entry / "g.xml")
    assert not ov_backend.OpenVINOForward(entry / "g.xml", "f32", 8).lone_on_fallback  # no fallback: nothing to choose
    forward = ov_backend.OpenVINOForward(entry / "g.xml", "f32", 8, fallback=entry / "g.xml")
    assert forward.lone_on_fallback == ov_backend.has_amx()
    for choice in (True, False):
        assert ov_backend.OpenVINOForward(entry / "g.xml", "f32", 8, fallback=entry / "g.xml",
                                          lone_on_fallback=choice).on_fallback(np.zeros((1, 8))) is choice


def test_int8_runs_a_lone_row_on_the_fallback_once_where_asked(tiny_model, cache):
    """One row is latency-bound: where lone rows run on the fallback (AMX CPUs), it runs on the fallback's
    graphs straight away (one row at max_length, a short one on its dynamic graph), and never a second time,
    whatever ``recheck`` says. A one-row leftover of a batch stays on int8, under the recheck rules like the
    rest of the batch."""
    clf = Classifier.from_dir(tiny_model, precision="int8", backend="openvino")
    runtime, seen = clf._runtime, []
    assert not runtime._requests
    runtime.lone_on_fallback = True
    pad = clf.tokenizer.pad_token_id or 0
    infer = _record_widths(runtime, seen)
    runtime.recheck_margin = np.inf  # every int8 row would be rechecked
    for article, kind in ((ARTICLES[-1], "single"), (("短讯", "今日晴。"), "lone_dynamic")):
        ids, mask = pad_rows([clf.encode(*article)[0]], pad)
        assert runtime.on_fallback(ids)
        for recheck in ("thin", "none", "all"):
            seen.clear()
            got = runtime(ids, mask, recheck)
            assert [k for k, _ in seen] == [kind] and runtime.rechecked == 0, (seen, runtime.rechecked)
            width = seen[0][1]
            fb = infer("fallback", np.pad(ids, ((0, 0), (0, runtime.max_length - ids.shape[1]))),
                       np.pad(mask, ((0, 0), (0, runtime.max_length - ids.shape[1]))))
            # bf16 on AMX CPUs: other padding, other rounding (~2e-4 here)
            assert np.allclose(got, fb, atol=2e-3) and width in (runtime.max_length, runtime._single_width(ids.shape[1]))
    n = ov_backend.STREAM_ROWS * len(runtime._stream_queue()) + 1  # a round on the streams, one row left
    ids, mask = pad_rows([clf.encode(f"{i}号", ARTICLES[-1][1])[0] for i in range(n)], pad)
    assert ids.shape[1] == runtime.max_length
    seen.clear()
    runtime(ids, mask, "none")
    assert seen == []  # the leftover row, on int8: in a round of the streamed graph filled with copies
    runtime(ids[:2], mask[:2], "none")
    assert seen == [("row", runtime.max_length)] * 2  # a small call: int8's one-row graph, not the fallback's


def test_a_thin_row_rechecked_alone_out_of_a_wider_batch_runs_as_it_would_alone(tiny_model, cache):
    """Where lone rows run on the fallback, a batch's only thin row is rechecked as a lone row: at its own
    length (a short row on the fallback's dynamic graph), not at the width of its batch, so its logits are
    those it gets when it is tagged alone."""
    clf = Classifier.from_dir(tiny_model, precision="int8", backend="openvino")
    runtime, seen = clf._runtime, []
    runtime.lone_on_fallback = True
    pad = clf.tokenizer.pad_token_id or 0
    longs = [clf.encode(f"{i}号", ARTICLES[-1][1])[0] for i in range(8)]
    long_row = longs[int(np.argmax(ov_backend.margins(runtime(*pad_rows(longs, pad), "none"))))]  # the least thin
    shorts = [clf.encode(*a)[0] for a in (("短讯", "今日晴。"), ("市场", "菜价平稳。"), ("简讯", "图书馆延长开放时间。"),
                                          ("党建", "支部召开组织生活会。"))]
    ids, mask = pad_rows([long_row, *shorts], pad)
    assert ids.shape[1] == runtime.max_length and all(len(r) < ov_backend.PAD_FROM * runtime.max_length for r in shorts)
    own = ov_backend.margins(runtime(ids, mask, "none"))
    short = 1 + int(np.argmin(own[1:]))  # make the thinnest short row the batch's only thin one
    assert own[short] < own[[i for i in range(len(own)) if i != short]].min(), own
    runtime.recheck_margin = float(np.sort(own)[:2].mean())
    _record_widths(runtime, seen)
    got = runtime(ids, mask, "thin")
    width = runtime._single_width(len(shorts[short - 1]))
    assert seen[-1] == ("lone_dynamic", width) and runtime.rechecked == 1, seen
    seen.clear()
    alone = runtime(*pad_rows([shorts[short - 1]], pad))
    assert seen == [("lone_dynamic", width)] and np.array_equal(got[short], alone[0])


def test_int8_runs_a_lone_row_on_int8_under_the_recheck_rules_without_amx(tiny_model, cache):
    """Without AMX a lone row runs on int8's own one-row graphs, and on the fallback (padded to max_length)
    only when its margin is thin and ``recheck`` asks; a one-row leftover of a batch uses the one-row graph."""
    clf = Classifier.from_dir(tiny_model, precision="int8", backend="openvino")
    runtime, seen = clf._runtime, []
    runtime.lone_on_fallback = False
    pad = clf.tokenizer.pad_token_id or 0
    infer = _record_widths(runtime, seen)
    for article, kind in ((ARTICLES[-1], "single"), (("短讯", "今日晴。"), "dynamic")):
        ids, mask = pad_rows([clf.encode(*article)[0]], pad)
        assert not runtime.on_fallback(ids)
        padded = (np.pad(ids, ((0, 0), (0, runtime.max_length - ids.shape[1]))),
                  np.pad(mask, ((0, 0), (0, runtime.max_length - ids.shape[1]))))
        fb = infer("fallback", *padded)
        for margin, recheck, kinds in ((np.inf, "thin", [kind, "fallback"]), (np.inf, "none", [kind]),
                                       (0.0, "thin", [kind]), (0.0, "all", ["fallback"])):
            runtime.recheck_margin, runtime.rechecked = margin, 0
            seen.clear()
            got = runtime(ids, mask, recheck)
            assert [k for k, _ in seen] == kinds, (margin, recheck, seen)
            assert runtime.rechecked == kinds.count("fallback")
            if kinds[-1] == "fallback":
                assert seen[-1][1] == runtime.max_length and np.allclose(got, fb, atol=1e-6)
            else:  # int8's logits at the width it ran, untouched
                width = seen[0][1]
                assert width in (runtime.max_length, runtime._single_width(ids.shape[1]))
                assert np.allclose(got, infer(kind, *(a[:, :width] for a in padded)), atol=1e-6)
    n = ov_backend.STREAM_ROWS * len(runtime._stream_queue()) + 1
    ids, mask = pad_rows([clf.encode(f"{i}号", ARTICLES[-1][1])[0] for i in range(n)], pad)
    runtime.recheck_margin = 0.0
    seen.clear()
    runtime(ids, mask, "none")
    assert seen == []  # the leftover row: in a round of the streamed graph filled with copies
    runtime(ids[:2], mask[:2], "none")
    assert seen == [("single", runtime.max_length)] * 2  # a small call: int8's one-row graph


def test_single_and_batched_calls_agree(tiny_model, cache):
    clf = Classifier.from_dir(tiny_model, precision="fp32", backend="openvino")
    many = clf.probabilities(ARTICLES * 5, batch_size=16)  # static 8-row slices and a remainder
    one = np.stack([clf.probabilities([a])[0] for a in ARTICLES])
    assert np.allclose(many[: len(ARTICLES)], one, atol=1e-5)


@pytest.mark.parametrize("lone_on_fallback", [True, False])
def test_a_rows_graph_depends_on_its_own_length_not_its_batch(tiny_model, cache, lone_on_fallback):
    """Rows from PAD_FROM of max_length run padded on the static graphs, shorter ones on the dynamic graph at
    the width of the longest of them, whatever they are batched with: the int8 graphs round apart, and an
    article's score must not change with how a run was chunked (resume, engines, batch sizes). Both ways a
    CPU may set lone_on_fallback (AMX or not): int8's one-row graph is "row" where lone rows run on the
    fallback, else "single"."""
    clf = Classifier.from_dir(tiny_model, precision="int8", backend="openvino")
    runtime, seen = clf._runtime, []
    runtime.lone_on_fallback = lone_on_fallback
    one_row = "row" if lone_on_fallback else "single"
    pad = clf.tokenizer.pad_token_id or 0
    full = clf.encode(*ARTICLES[-1])[0]
    cut = math.ceil(ov_backend.PAD_FROM * runtime.max_length)
    wide = [full[: cut + i] + [full[-1]] for i in range(3)]  # from PAD_FROM, under max_length
    narrow = [full[: cut - 12 + 4 * i] + [full[-1]] for i in range(3)]
    assert all(len(r) < runtime.max_length for r in wide) and all(len(r) < cut for r in narrow)
    _record_widths(runtime, seen)

    def logits(rows):
        return runtime(*pad_rows(rows, pad), "none")

    mixed = logits([wide[0], narrow[0], wide[1], narrow[2], narrow[1], wide[2]])
    assert sorted(seen) == [("dynamic", len(narrow[2]))] + [(one_row, runtime.max_length)] * 3, seen
    seen.clear()
    assert np.array_equal(logits(wide), mixed[[0, 2, 5]])  # padded: no narrow partner needed
    assert seen == [(one_row, runtime.max_length)] * 3, seen
    seen.clear()
    assert np.array_equal(logits(narrow[:2]), mixed[[1, 4]])  # a narrower batch: the same logits
    assert seen == [("dynamic", len(narrow[1]))], seen


def test_a_full_length_rows_logits_do_not_depend_on_the_call_it_is_in(tiny_model, cache):
    """Full-length rows run on static-shape graphs only: in calls of up to LEFTOVER_SINGLES such rows one by
    one on the one-row graph, in larger ones in rounds of the streamed graph (the last filled with copies).
    Either way a row gets the same logits whatever else its call holds; the batch-dynamic 1..8-row graph
    used before for leftovers did not (0.064 logits from the streamed graph on the reference model). (The
    two static graphs agreed exactly on the reference model's dev rows; on this tiny model they differ in
    the fourth decimal, so each is compared with itself.)"""
    clf = Classifier.from_dir(tiny_model, precision="int8", backend="openvino")
    runtime = clf._runtime
    runtime.lone_on_fallback = False  # (with it, a lone row runs on the fallback by design)
    pad = clf.tokenizer.pad_token_id or 0
    rows = [clf.encode(ARTICLES[i % 4][0] + str(i), ARTICLES[i // 4 % 4][1] + ARTICLES[-1][1])[0] for i in range(19)]
    ids, mask = pad_rows(rows, pad)
    assert ids.shape[1] == runtime.max_length
    alone = np.concatenate([runtime(ids[i : i + 1], mask[i : i + 1], "none") for i in range(len(rows))])
    streamed = runtime(ids, mask, "none")  # 19 rows: two full rounds of 8 and one filled with 5 copies
    small, large = ov_backend.LEFTOVER_SINGLES, ov_backend.LEFTOVER_SINGLES + 1
    for size, expected in ((2, alone), (small, alone), (large, streamed), (9, streamed), (13, streamed)):
        for start in (0, 3, len(rows) - size):
            got = runtime(ids[start : start + size], mask[start : start + size], "none")
            assert np.array_equal(got, expected[start : start + size]), (size, start)
    assert np.allclose(streamed, alone, atol=1e-3)


def _record_widths(runtime, seen: list) -> object:
    """Wrap the runtime's inference so each call appends (graph kind, width) to ``seen``; returns the original."""
    infer = runtime._infer

    def spy(kind, ids, mask):
        seen.append((kind, ids.shape[1]))
        return infer(kind, ids, mask)

    runtime._infer = spy
    return infer


def test_short_single_articles_run_at_few_widths(tiny_model, cache):
    """One-row calls on the dynamic graph are padded to a step, so a process meets few distinct widths (a new
    width's first call is slow); the mask keeps the probabilities those of the exact width."""
    clf = Classifier.from_dir(tiny_model, precision="fp32", backend="openvino")
    runtime, seen = clf._runtime, []
    infer = _record_widths(runtime, seen)
    short = [("短讯", "今日晴。" * n) for n in (1, 3, 5, 8, 11)]
    one = np.stack([clf.probabilities([a])[0] for a in short])
    widths = {w for kind, w in seen if kind == "dynamic"}
    exact = {len(clf.encode(*a)[0]) for a in short}
    assert len(exact) == len(short) and widths and len(widths) < len(exact), (exact, widths)
    assert all(w % ov_backend.SINGLE_WIDTH_STEP == 0 or w == runtime.max_length for w in widths), widths
    runtime._infer = infer
    assert np.allclose(clf.probabilities(short, batch_size=1), one, atol=1e-6)
    assert np.allclose(clf.probabilities(short, batch_size=16), one, atol=1e-5)


def test_warm_up_compiles_the_one_row_graph_and_runs_the_short_widths(tiny_model, cache):
    clf = Classifier.from_dir(tiny_model, precision="fp32", backend="openvino")
    runtime, seen = clf._runtime, []
    _record_widths(runtime, seen)
    assert "single" not in runtime._requests
    clf.warm_up()
    compiled, warmed = set(runtime._requests), set(seen)
    assert "single" in compiled
    seen.clear()
    clf.probabilities([ARTICLES[-1]])  # a full-length article alone: nothing left to compile
    for n in range(1, 40, 3):  # short ones of many lengths: only widths warm_up ran
        clf.probabilities([("短讯", "今日晴。" * n)])
    assert set(runtime._requests) == compiled
    assert set(seen) <= warmed and len({w for _, w in seen}) >= 2, (seen, warmed)
    Classifier.from_dir(tiny_model, precision="fp32", backend="torch").warm_up()  # a no-op there, not an error


@pytest.mark.parametrize("lone_on_fallback", [True, False])
def test_warm_up_compiles_every_graph_a_call_of_batch_size_rows_uses(tiny_model, cache, lone_on_fallback):
    """`serve` warms up before it reports ready: its first full batch must not compile the streamed graph
    (~1 s), nor its first thin int8 margin the fallback; a one-article script can skip the batch graphs."""
    clf = Classifier.from_dir(tiny_model, precision="int8", backend="openvino")
    runtime = clf._runtime
    runtime.lone_on_fallback = lone_on_fallback
    clf.warm_up(batch_size=1)
    if lone_on_fallback:  # lone rows run on the fallback's graphs (AMX)
        assert set(runtime._requests) == {"single", "lone_dynamic"}
    else:  # on int8's, and a thin one again on the fallback
        assert set(runtime._requests) == {"single", "dynamic", "fallback"}
    lone = set(runtime._requests)
    pad = clf.tokenizer.pad_token_id or 0
    for article in (ARTICLES[-1], ("短讯", "今日晴。"), ("短讯", "今日晴。" * 9)):  # one article: nothing to compile
        runtime(*pad_rows([clf.encode(*article)[0]], pad), "all")
        clf.probabilities([article])
    assert set(runtime._requests) == lone
    assert runtime._streams is None
    clf.warm_up()  # batch_size 16, as predict's and serve's default
    compiled, streams = set(runtime._requests), runtime._streams
    assert {"row" if lone_on_fallback else "single", "dynamic", "fallback"} <= compiled and streams is not None
    long = [(f"{i}号文件{t}", x + ARTICLES[-1][1]) for i, (t, x) in enumerate(ARTICLES[:4] * 4)]
    clf.probabilities(long, batch_size=16)
    runtime(*pad_rows([clf.encode(*a)[0] for a in ARTICLES[:3]], pad), "all")  # a recheck of several rows
    clf.probabilities(ARTICLES[:3], batch_size=16)  # a short batch
    assert set(runtime._requests) == compiled and runtime._streams is streams
    with pytest.raises(ValueError, match="batch_size"):
        clf.warm_up(batch_size=0)


def test_int8_conversion_keeps_stdout_clean_and_nncf_info_lines_out(tiny_model, cache, capfd):
    nncf_log = logging.getLogger("nncf")
    before = nncf_log.level
    clf = Classifier.from_dir(tiny_model, precision="int8", backend="openvino")
    assert clf.precision == "int8"
    out, err = capfd.readouterr()
    # stdout is where `newsclf predict` writes its JSON lines; NNCF's per-node info lines (one for each node
    # it leaves unquantised) are noise a user cannot act on, even on stderr.
    assert out == ""
    assert "activation input quantizer" not in err and "INFO:nncf" not in err
    assert nncf_log.level == before


def test_full_length_rows_run_as_concurrent_stream_requests(tiny_model, cache):
    clf = Classifier.from_dir(tiny_model, precision="fp32", backend="openvino")
    runtime = clf._runtime
    streams = len(runtime._stream_queue())
    n = ov_backend.STREAM_ROWS * streams + 3  # one whole round on the streams, three rows left over
    # Distinct heads (title x opening of the text from the short articles): one long body alone gives equal rows.
    rows = [clf.encode(ARTICLES[i % 4][0], ARTICLES[i // 4 % 4][1] + ARTICLES[-1][1])[0] for i in range(n)]
    ids, mask = pad_rows(rows, clf.tokenizer.pad_token_id or 0)
    assert ids.shape[1] == runtime.max_length and len({tuple(r) for r in ids}) == n
    seen: list = []
    infer = _record_widths(runtime, seen)
    got = runtime(ids, mask)
    assert seen == []  # the three left over ran in a second round, filled with copies of the last row
    runtime._infer = infer
    one_by_one = np.concatenate([runtime._infer("single", ids[i : i + 1], mask[i : i + 1]) for i in range(n)])
    assert got.shape == one_by_one.shape and np.allclose(got, one_by_one, atol=1e-5)
    assert np.allclose(runtime(ids[::-1], mask[::-1]), one_by_one[::-1], atol=1e-5)  # rows stay in their order
