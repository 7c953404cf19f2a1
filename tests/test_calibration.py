"""Temperature scaling, ECE, reliability plots and the abstain threshold."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import log_softmax

from newsclf.calibration import (
    DEFAULT_MIN_COVERAGE,
    DEFAULT_TARGET_PRECISION,
    MAX_TEMPERATURE,
    MIN_TEMPERATURE,
    AbstainThreshold,
    choose_abstain_threshold,
    expected_calibration_error,
    fit_temperature,
    reliability_diagram,
    softmax,
)


def _synthetic(n: int, true_temperature: float, seed: int = 0):
    """Logits whose labels are drawn from softmax(logits / true_temperature)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 3, size=(n, 5))
    probs = softmax(logits, true_temperature)
    labels = np.array([rng.choice(5, p=p) for p in probs])
    return logits, labels


def _nll(logits, labels, t):
    return -log_softmax(logits / t, axis=1)[np.arange(len(labels)), labels].mean()


def test_softmax_rows_sum_to_one_and_temperature_flattens():
    logits = np.array([[1.0, 2.0, 3.0], [1000.0, 0.0, -1000.0]])
    p1 = softmax(logits)
    assert np.allclose(p1.sum(axis=1), 1) and np.all(np.isfinite(p1))
    p3 = softmax(logits, temperature=3.0)
    assert p3[0].max() < p1[0].max()
    assert np.allclose(p3, softmax(logits / 3.0))


def test_softmax_rejects_non_positive_temperature():
    with pytest.raises(ValueError, match="temperature must be > 0, found 0"):
        softmax(np.zeros((1, 2)), temperature=0)


@pytest.mark.parametrize("true_t", [0.5, 2.0])
def test_fit_temperature_recovers_the_generating_temperature(true_t):
    logits, labels = _synthetic(3000, true_t)
    t = fit_temperature(logits, labels)
    assert t == pytest.approx(true_t, rel=0.1)
    # It is a minimum of the NLL: nudging it either way does not help.
    assert _nll(logits, labels, t) <= min(_nll(logits, labels, t * 1.05), _nll(logits, labels, t / 1.05))


def test_temperature_scaling_lowers_ece_of_an_overconfident_model():
    logits, labels = _synthetic(3000, 2.5, seed=1)  # raw logits are 2.5x too sharp
    before = expected_calibration_error(softmax(logits), labels)
    t = fit_temperature(logits, labels)
    after = expected_calibration_error(softmax(logits, t), labels)
    assert after < before / 2


@pytest.mark.parametrize(
    ("logits", "labels"),
    [
        (np.array([[5.0, 0.0]]), np.array([0])),  # one correct example: NLL falls forever as T -> 0
        (np.array([[5.0, 0.0]]), np.array([1])),  # one wrong example: NLL falls forever as T -> inf
        (np.array([[3.0, 0.0, 0.0], [0.0, 4.0, 0.0]]), np.array([0, 1])),
    ],
)
def test_fit_temperature_is_finite_and_bounded_on_tiny_sets(logits, labels):
    t = fit_temperature(logits, labels)
    assert MIN_TEMPERATURE <= t <= MAX_TEMPERATURE
    assert np.isfinite(t)


@pytest.mark.parametrize(
    ("logits", "labels", "match"),
    [
        (np.zeros((3,)), np.array([0, 1, 0]), r"2-D array .* found shape \(3,\)"),
        (np.zeros((0, 3)), np.array([], dtype=int), r"at least one row"),
        (np.zeros((3, 2)), np.array([0, 1]), r"one entry per row .* found shape \(2,\) for 3 rows"),
        (np.zeros((2, 2)), np.array([0, 2]), r"labels must lie in 0\.\.1"),
        (np.zeros((2, 2)), np.array([0.0, 1.0]), r"integer label ids"),
        (np.array([[np.nan, 0.0]]), np.array([0]), r"NaN or infinite"),
    ],
)
def test_fit_temperature_rejects_bad_input(logits, labels, match):
    with pytest.raises(ValueError, match=match):
        fit_temperature(logits, labels)


def test_ece_hand_computed():
    # 10 examples at confidence 0.9 with 9 right: calibrated, ECE 0.
    probs = np.tile([0.9, 0.1], (10, 1))
    labels = np.array([0] * 9 + [1])
    assert expected_calibration_error(probs, labels) == pytest.approx(0.0)
    # Half at 0.8 all right (gap 0.2), half at 0.6 all wrong (gap 0.6): ECE = 0.5*0.2 + 0.5*0.6.
    probs = np.array([[0.8, 0.2]] * 4 + [[0.6, 0.4]] * 4)
    labels = np.array([0] * 4 + [1] * 4)
    assert expected_calibration_error(probs, labels) == pytest.approx(0.4)


def test_ece_puts_confidence_one_in_the_last_bin():
    probs = np.array([[1.0, 0.0], [1.0, 0.0]])
    assert expected_calibration_error(probs, np.array([0, 1])) == pytest.approx(0.5)


def test_ece_rejects_logits_and_bad_bins():
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\] \(apply softmax"):
        expected_calibration_error(np.array([[3.0, -1.0]]), np.array([0]))
    with pytest.raises(ValueError, match="n_bins must be a positive integer"):
        expected_calibration_error(np.array([[0.7, 0.3]]), np.array([0]), n_bins=0)


def test_reliability_diagram_writes_a_png(tmp_path):
    logits, labels = _synthetic(300, 2.0)
    out = reliability_diagram(softmax(logits), labels, tmp_path / "plots" / "rel.png", title="test model")
    assert out == tmp_path / "plots" / "rel.png"
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def _calibrated_per_bin(confidences, per_bin=20):
    """Two-class probabilities where every bin holds one confidence c and exactly a fraction c is right."""
    probs, labels = [], []
    for c in confidences:
        right = round(per_bin * c)
        probs += [[c, 1 - c]] * per_bin
        labels += [0] * right + [1] * (per_bin - right)
    return np.array(probs), np.array(labels)


def test_reliability_diagram_draws_accuracy_and_confidence_side_by_side(tmp_path, monkeypatch):
    import newsclf.plots as report

    figures = []
    real_save = report.save_figure

    def keep(fig, path):
        figures.append(fig)
        return real_save(fig, path)

    monkeypatch.setattr(report, "save_figure", keep)
    confidences = [0.55, 0.65, 0.75, 0.85, 0.95]
    probs, labels = _calibrated_per_bin(confidences)
    assert expected_calibration_error(probs, labels) == pytest.approx(0, abs=1e-12)
    out = reliability_diagram(probs, labels, tmp_path / "rel.png", title="calibrated")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    top = figures[0].axes[0]
    bars = {container.get_label(): list(container) for container in top.containers}
    assert set(bars) == {"accuracy", "mean confidence"}
    accuracy = [bar.get_height() for bar in bars["accuracy"]]
    confidence = [bar.get_height() for bar in bars["mean confidence"]]
    assert accuracy == pytest.approx(confidence) and confidence == pytest.approx(confidences)
    for acc, conf in zip(bars["accuracy"], bars["mean confidence"]):
        # Side by side in the same bin, both from 0: not one stacked on the other.
        assert acc.get_y() == 0 and conf.get_y() == 0
        assert acc.get_x() + acc.get_width() <= conf.get_x() + 1e-9
        assert np.floor(acc.get_x() * 10) == np.floor((conf.get_x() + conf.get_width()) * 10 - 1e-9)
    assert [t.get_text() for t in top.get_legend().get_texts()] == [
        "perfect calibration", "accuracy", "mean confidence"
    ]
    assert "ECE = 0.000" in top.get_title()
    counts = [bar.get_height() for bar in figures[0].axes[1].patches]
    assert sum(counts) == len(labels)


def _probs_with_confidences(conf):
    return np.array([[c, 1 - c] for c in conf])


def test_abstain_threshold_zero_when_precision_already_met():
    probs = _probs_with_confidences([0.9, 0.8, 0.7, 0.6])
    choice = choose_abstain_threshold(probs, np.array([0, 0, 0, 1]), target_precision=0.75)
    assert isinstance(choice, AbstainThreshold)
    assert choice.threshold == 0.0 and choice.reached
    assert (choice.precision, choice.coverage, choice.n, choice.target_precision) == (0.75, 1.0, 4, 0.75)


def test_abstain_threshold_default_target_abstains_where_the_old_0_9_did_not():
    # 20 answers, only the least confident one wrong: 19/20 = 0.95 precision answering everything, which the
    # old 0.9 target accepted (threshold 0, never abstaining). The 0.97 default drops the wrong one.
    conf = [1 - 0.02 * i for i in range(20)]  # 1.00, 0.98, ..., 0.62
    labels = np.array([0] * 19 + [1])
    choice = choose_abstain_threshold(_probs_with_confidences(conf), labels)
    assert choice.target_precision == DEFAULT_TARGET_PRECISION == 0.97
    assert choice.min_coverage == DEFAULT_MIN_COVERAGE == 0.5
    assert choice.threshold == pytest.approx(0.64)
    assert choice.precision == 1.0 and choice.coverage == pytest.approx(0.95) and choice.n == 20
    assert choice.reached


def test_abstain_threshold_smallest_that_reaches_target_within_coverage():
    # Confidences descend; the two lowest-confidence answers are wrong.
    conf = [0.99, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55]
    labels = np.array([0] * 8 + [1, 1])
    probs = _probs_with_confidences(conf)
    # Answering the top 8 (threshold 0.65) gives precision 1.0 at coverage 0.8.
    choice = choose_abstain_threshold(probs, labels, target_precision=0.9, min_coverage=0.8)
    assert choice.threshold == pytest.approx(0.65)
    assert (choice.precision, choice.coverage) == (1.0, pytest.approx(0.8))
    # With a 0.85 target, answering 9 (threshold 0.6, precision 8/9 = 0.889) is the smallest that reaches it.
    choice = choose_abstain_threshold(probs, labels, target_precision=0.85, min_coverage=0.5)
    assert choice.threshold == pytest.approx(0.6)
    assert (choice.precision, choice.coverage) == (pytest.approx(8 / 9), pytest.approx(0.9))


def test_abstain_threshold_non_monotone_precision_takes_the_smallest_reaching():
    # Precision by answered count: 1/1, 1/2, 2/3, 3/4, 4/5, 5/6 — it rises again after an early miss.
    conf = [0.95, 0.9, 0.85, 0.8, 0.75, 0.7]
    labels = np.array([0, 1, 0, 0, 0, 0])
    choice = choose_abstain_threshold(_probs_with_confidences(conf), labels, target_precision=0.8, min_coverage=0.5)
    # Answering all 6 gives 5/6 = 0.833 >= 0.8: threshold 0, nothing abstained.
    assert choice.threshold == 0.0 and choice.precision == pytest.approx(5 / 6) and choice.coverage == 1.0
    choice = choose_abstain_threshold(_probs_with_confidences(conf), labels, target_precision=0.9, min_coverage=0.1)
    # 0.9 is reached only by answering the single top example (coverage 1/6 >= 0.1).
    assert choice.threshold == pytest.approx(0.95) and choice.coverage == pytest.approx(1 / 6)


def test_abstain_threshold_respects_the_coverage_floor_when_target_unreachable():
    conf = [0.99, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55]
    labels = np.array([0, 1, 0, 1, 0, 0, 0, 0, 1, 1])
    probs = _probs_with_confidences(conf)
    choice = choose_abstain_threshold(probs, labels, target_precision=0.99, min_coverage=0.8)
    answered = probs.max(axis=1) >= choice.threshold
    assert answered.mean() >= 0.8
    # The best precision reachable with >= 8 answers: top 8 -> 6/8; top 9 -> 6/9; all -> 6/10.
    assert choice.threshold == pytest.approx(0.65)
    assert choice.precision == 0.75 and choice.coverage == pytest.approx(0.8) and not choice.reached
    # The top example alone would reach 0.99 but answers 10%, under the floor: the floor wins.
    assert choose_abstain_threshold(probs, labels, target_precision=0.99, min_coverage=0.5).threshold == pytest.approx(0.65)


def test_abstain_threshold_treats_tied_confidences_together():
    probs = _probs_with_confidences([0.9, 0.7, 0.7, 0.7])
    labels = np.array([0, 0, 1, 1])
    # Answering only the 0.9 example reaches 100% precision but coverage 0.25; with a 0.2 floor it is allowed.
    choice = choose_abstain_threshold(probs, labels, target_precision=0.9, min_coverage=0.2)
    assert choice.threshold == pytest.approx(0.9) and choice.coverage == 0.25
    # With a 0.5 floor the ties cannot be split: all four (precision 0.5) is the only allowed candidate.
    choice = choose_abstain_threshold(probs, labels, target_precision=0.9, min_coverage=0.5)
    assert choice.threshold == 0.0 and choice.precision == 0.5 and choice.coverage == 1.0


def test_abstain_threshold_measure_and_summary():
    probs = _probs_with_confidences([0.9, 0.8, 0.7, 0.6])
    m = AbstainThreshold.measure(probs, np.array([0, 1, 0, 0]), 0.75)
    assert (m.threshold, m.precision, m.coverage, m.n, m.target_precision) == (0.75, 0.5, 0.5, 4, None)
    assert not m.reached
    assert AbstainThreshold.measure(probs, np.array([0, 1, 0, 0]), 0.95).precision == 1.0  # nothing answered
    summary = choose_abstain_threshold(probs, np.array([0, 0, 0, 1]), target_precision=0.75).summary()
    assert summary == {"target_precision": 0.75, "min_coverage": 0.5, "precision": 0.75, "coverage": 1.0,
                       "n": 4, "target_reached": True}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"target_precision": 0}, r"target_precision must be in \(0, 1\]"),
        ({"target_precision": float("nan")}, r"target_precision must be in \(0, 1\]"),
        ({"min_coverage": 1.5}, "min_coverage"),
    ],
)
def test_abstain_threshold_rejects_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        choose_abstain_threshold(_probs_with_confidences([0.9]), np.array([0]), **kwargs)


def _experts(n: int, seed: int, informative: str):
    """Labels, model logits and baseline probabilities where only ``informative`` knows the labels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 5, size=n)
    noise = rng.normal(0, 1, size=(n, 5))
    knowing = noise + 3 * np.eye(5)[labels]
    model = knowing if informative == "model" else noise
    baseline = softmax(noise if informative == "model" else knowing, 1.0)
    return labels, model, baseline


def test_fit_blend_weighs_the_expert_that_knows():
    from newsclf.calibration import blend_logits, fit_blend

    labels, model, baseline = _experts(600, 0, "baseline")
    w = fit_blend(model, 1.0, baseline, labels)
    assert w["baseline"] > 0.8 and w["model"] < 0.2, w
    labels, model, baseline = _experts(600, 1, "model")
    w = fit_blend(model, 1.0, baseline, labels)
    assert w["model"] > 0.8 and w["baseline"] < 0.2, w
    # The blend of the fitted weights beats the model alone in held-out NLL when the baseline knows.
    labels, model, baseline = _experts(600, 2, "baseline")
    w = fit_blend(model, 1.0, baseline, labels)
    test_labels, test_model, test_baseline = _experts(600, 3, "baseline")
    rows = np.arange(600)
    blended = -log_softmax(blend_logits(test_model, 1.0, test_baseline, w), axis=1)[rows, test_labels].mean()
    alone = -log_softmax(test_model, axis=1)[rows, test_labels].mean()
    assert blended < alone - 0.3


def test_fit_blend_checks_its_inputs():
    from newsclf.calibration import fit_blend

    labels, model, baseline = _experts(20, 0, "model")
    with pytest.raises(ValueError, match="one per column of baseline_probs"):
        fit_blend(model, 1.0, baseline[:, :4], labels)
    with pytest.raises(ValueError, match="one entry per row"):
        fit_blend(model, 1.0, baseline, labels[:5])
