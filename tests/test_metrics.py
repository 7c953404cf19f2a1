"""The local evaluate metric module against scikit-learn, offline."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

from newsclf.metrics import METRIC_DIR, compute_metrics, load_metric

LABELS = ["governance", "party_building", "safety", "culture", "other"]


def _sklearn_expected(refs, preds, n_labels):
    ids = list(range(n_labels))
    p, r, f, s = precision_recall_fscore_support(refs, preds, labels=ids, zero_division=0)
    return {
        "accuracy": accuracy_score(refs, preds),
        "macro_f1": f1_score(refs, preds, labels=ids, average="macro", zero_division=0),
        "p": p,
        "r": r,
        "f": f,
        "s": s,
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_sklearn_on_random_data(seed):
    rng = np.random.default_rng(seed)
    refs = rng.integers(0, len(LABELS), size=200)
    # Mostly right with noise, so the numbers are neither trivial nor all equal.
    preds = np.where(rng.random(200) < 0.6, refs, rng.integers(0, len(LABELS), size=200))
    got = compute_metrics(refs, preds, LABELS)
    want = _sklearn_expected(refs, preds, len(LABELS))
    assert got["accuracy"] == pytest.approx(want["accuracy"])
    assert got["macro_f1"] == pytest.approx(want["macro_f1"])
    for i, name in enumerate(LABELS):
        assert got[f"precision/{name}"] == pytest.approx(want["p"][i])
        assert got[f"recall/{name}"] == pytest.approx(want["r"][i])
        assert got[f"f1/{name}"] == pytest.approx(want["f"][i])
        assert got[f"support/{name}"] == want["s"][i]
    assert got["macro_precision"] == pytest.approx(want["p"].mean())
    assert got["macro_recall"] == pytest.approx(want["r"].mean())


def test_label_strings_and_ids_give_the_same_result():
    refs = ["safety", "culture", "other", "safety", "governance", "party_building"]
    preds = ["safety", "other", "other", "culture", "governance", "governance"]
    by_name = compute_metrics(refs, preds, LABELS)
    by_id = compute_metrics([LABELS.index(x) for x in refs], [LABELS.index(x) for x in preds], LABELS)
    assert by_name == by_id
    assert by_name["accuracy"] == pytest.approx(3 / 6)


def test_label_never_predicted_scores_zero_and_counts_in_macro():
    refs = [0, 1, 2, 2, 3, 4]
    preds = [0, 1, 3, 3, 3, 4]  # safety (2) is never predicted
    got = compute_metrics(refs, preds, LABELS)
    assert got["precision/safety"] == 0.0 and got["recall/safety"] == 0.0 and got["f1/safety"] == 0.0
    assert got["support/safety"] == 2
    assert got["macro_f1"] == pytest.approx(_sklearn_expected(refs, preds, 5)["macro_f1"])


def test_single_class_counts_absent_labels_and_warns():
    refs = ["other"] * 4
    preds = ["other"] * 4
    with pytest.warns(UserWarning, match=r"'governance'.*neither references nor predictions"):
        got = compute_metrics(refs, preds, LABELS)
    assert got["accuracy"] == 1.0
    assert got["f1/other"] == 1.0
    # Macro-F1 runs over all five labels: the four absent ones score 0.
    assert got["macro_f1"] == pytest.approx(1 / 5)


def test_all_labels_present_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compute_metrics([0, 1, 2, 3, 4], [0, 1, 2, 3, 4], LABELS)


@pytest.mark.parametrize(
    ("refs", "preds", "match"),
    [
        (["safety"], ["sport"], r"predictions: unknown label names \['sport'\]; expected one of"),
        ([0, 7], [0, 1], r"references: label ids \[7\] are outside 0\.\.4"),
        ([0, 1], [0], r"same length; found 2 references and 1 predictions"),
        ([], [], r"no examples to score"),
        (["safety", 1], [0, 1], r"found a mix of types"),
    ],
)
def test_bad_input_is_a_clear_error(refs, preds, match):
    with pytest.raises(ValueError, match=match):
        compute_metrics(refs, preds, LABELS)


def test_load_metric_is_cached_and_module_computes_directly():
    metric = load_metric(LABELS)
    assert load_metric(list(LABELS)) is metric
    out = metric.compute(predictions=[0, 1, 1, 2, 3, 4], references=[0, 1, 0, 2, 3, 4])
    assert out["accuracy"] == pytest.approx(5 / 6)
    # Repeated compute calls on the cached module must not leak state between calls.
    with pytest.warns(UserWarning, match="neither references nor predictions"):
        assert metric.compute(predictions=[2, 2], references=[2, 2])["accuracy"] == 1.0


def test_load_metric_rejects_duplicate_labels():
    with pytest.raises(ValueError, match="unique names"):
        load_metric(["a", "a"])


def test_evaluate_load_works_offline_in_a_fresh_process(tmp_path):
    # A fresh interpreter with the hub switched off and an empty module cache: proves nothing is fetched.
    code = (
        "import evaluate, sys\n"
        f"m = evaluate.load({str(METRIC_DIR)!r}, keep_in_memory=True, label_names=['a', 'b'])\n"
        "r = m.compute(predictions=[0, 1, 0], references=[0, 1, 1])\n"
        "assert abs(r['accuracy'] - 2/3) < 1e-9 and r['support/b'] == 2, r\n"
        "print('ok')\n"
    )
    env = dict(
        os.environ,
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        HF_HOME=str(tmp_path / "hf"),
        HF_MODULES_CACHE=str(tmp_path / "modules"),
        HTTP_PROXY="http://127.0.0.1:9",
        HTTPS_PROXY="http://127.0.0.1:9",
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"


def test_gap_interval_is_zero_for_identical_predictions_and_brackets_the_gap():
    from newsclf.metrics import macro_f1_gap_interval

    labels = ["a", "b", "c"]
    refs = ["a", "b", "c", "a", "b", "c", "a", "b", "c", "a"] * 4
    same = list(refs)
    same[0] = "b"
    assert macro_f1_gap_interval(refs, same, same, labels) == (0.0, 0.0)
    worse = list(same)
    for i in range(1, 40, 4):
        worse[i] = "c" if worse[i] != "c" else "a"
    low, high = macro_f1_gap_interval(refs, same, worse, labels, seed=1)
    gap = 100 * (f1_score(refs, same, average="macro") - f1_score(refs, worse, average="macro"))
    assert 0 < low < gap < high
    assert macro_f1_gap_interval(refs, same, worse, labels, seed=1) == (low, high)  # seeded


def test_gap_interval_rejects_mismatched_lengths():
    from newsclf.metrics import macro_f1_gap_interval

    with pytest.raises(ValueError, match="same length; found 3, 3 and 2"):
        macro_f1_gap_interval(["a", "b", "a"], ["a", "b", "a"], ["a", "b"], ["a", "b"])
