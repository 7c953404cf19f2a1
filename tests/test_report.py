"""Report writers: text and PNG confusion matrices, the Markdown report, atomic JSON."""

from __future__ import annotations

import json
import logging
import warnings

import numpy as np
import pytest

from newsclf import plots
from newsclf.metrics import compute_metrics
from newsclf.plots import plot_confusion_matrix
from newsclf.report import confusion_matrix_text, write_json, write_markdown_report

LABELS = ["governance", "party_building", "safety", "culture", "other"]
REFS = ["safety", "safety", "culture", "other", "governance", "party_building", "safety", "other"]
PREDS = ["safety", "other", "culture", "other", "party_building", "party_building", "safety", "culture"]
BASE = ["other", "other", "culture", "other", "governance", "governance", "safety", "other"]


def _parse(text):
    lines = text.splitlines()
    header = lines[0].split()[3:]  # after "true \ predicted"
    table = {line.split()[0]: [int(x) for x in line.split()[1:]] for line in lines[1:]}
    return header, table


def test_confusion_text_rows_are_true_labels_with_totals():
    header, table = _parse(confusion_matrix_text(REFS, PREDS, LABELS))
    assert header == [*LABELS, "total"]
    for true in LABELS:
        for j, pred in enumerate(LABELS):
            expected = sum(r == true and p == pred for r, p in zip(REFS, PREDS))
            assert table[true][j] == expected
        assert table[true][-1] == REFS.count(true)
    assert table["total"][:-1] == [PREDS.count(label) for label in LABELS]
    assert table["total"][-1] == len(REFS)


def test_confusion_text_is_aligned_and_accepts_ids():
    text = confusion_matrix_text(REFS, PREDS, LABELS)
    assert len({len(line) for line in text.splitlines()}) == 1  # right-aligned counts end in one column
    ids = confusion_matrix_text([LABELS.index(x) for x in REFS], [LABELS.index(x) for x in PREDS], LABELS)
    assert ids == text


def test_confusion_rejects_unknown_labels_and_length_mismatch():
    with pytest.raises(ValueError, match=r"unknown label names \['sport'\]"):
        confusion_matrix_text(["sport"], ["safety"], LABELS)
    with pytest.raises(ValueError, match="same length; found 2 and 1"):
        confusion_matrix_text(["safety", "other"], ["safety"], LABELS)


def test_plot_confusion_matrix_writes_png(tmp_path):
    out = plot_confusion_matrix(REFS, PREDS, LABELS, tmp_path / "sub" / "cm.png", title="model on dev")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


ZH_LABELS = ["时政", "党建", "安全"]
ZH_REFS = ["时政", "党建", "安全", "安全", "时政"]
ZH_PREDS = ["时政", "安全", "安全", "党建", "时政"]


def _plot_keeping_figure(monkeypatch, tmp_path, name="cm.png"):
    figures = []
    real_save = plots.save_figure

    def keep(fig, path):
        figures.append(fig)
        return real_save(fig, path)

    monkeypatch.setattr(plots, "save_figure", keep)
    out = plot_confusion_matrix(ZH_REFS, ZH_PREDS, ZH_LABELS, tmp_path / name, title="模型在开发集上")
    return out, figures[0]


def _cmap(fname, index=0):
    """Code points the font file (face ``index`` of a collection) maps, read with fontTools when present."""
    try:
        from fontTools.ttLib import TTFont
    except ImportError:  # matplotlib's own FreeType wrapper reads the same table
        from matplotlib.ft2font import FT2Font

        return set(FT2Font(fname, face_index=index).get_charmap())
    with TTFont(fname, fontNumber=index, lazy=True) as font:
        return set(font.getBestCmap())


def test_chinese_labels_render_with_a_cjk_font(tmp_path, monkeypatch):
    from matplotlib.font_manager import findfont
    from matplotlib.text import Text

    font = plots.find_cjk_font()
    if font is None:
        pytest.skip(f"no CJK font installed (apt-get install {plots.CJK_FONT_PACKAGE})")
    needed = {ord(ch) for ch in "".join(ZH_LABELS) + "模型在开发集上"}
    assert needed <= _cmap(font.fname, font.index)
    assert plots.find_cjk_font() is font  # looked up once per process

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a "Glyph ... missing" warning would fail here
        out, fig = _plot_keeping_figure(monkeypatch, tmp_path)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    zh_texts = [t for t in fig.findobj(Text) if t.get_text() in {*ZH_LABELS, "模型在开发集上"}]
    assert len(zh_texts) >= 2 * len(ZH_LABELS) + 1  # both axes' tick labels and the title
    for text in zh_texts:
        assert text.get_fontfamily()[0] == font.name
        assert findfont(text.get_fontproperties(), fallback_to_default=False) == font.fname


def test_no_cjk_font_still_draws_with_one_warning(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(plots, "find_cjk_font", lambda: None)
    monkeypatch.setattr(plots, "_warned_no_cjk_font", False)
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING, "newsclf.plots"):
        warnings.simplefilter("always")
        first, _ = _plot_keeping_figure(monkeypatch, tmp_path, "a.png")
        second, _ = _plot_keeping_figure(monkeypatch, tmp_path, "b.png")
    assert first.read_bytes()[:8] == second.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ours = [r for r in caplog.records if r.name == "newsclf.plots" and r.levelno == logging.WARNING]
    assert len(ours) == 1 and "fonts-noto-cjk" in ours[0].getMessage()
    assert not [w for w in caught if "Glyph" in str(w.message)]
    assert plots.figure_fonts() == ["DejaVu Sans"]


def test_write_json_converts_numpy_and_round_trips(tmp_path):
    obj = {
        "acc": np.float32(0.75),
        "n": np.int64(8),
        "probs": np.array([[0.1, 0.9]]),
        "ok": np.bool_(True),
        "nan": float("nan"),
        "path": tmp_path,
        "labels": {"安全", "文化"},
        np.int64(3): "key",
    }
    path = write_json(tmp_path / "out" / "m.json", obj)
    back = json.loads(path.read_text(encoding="utf-8"))
    assert back["acc"] == pytest.approx(0.75) and back["n"] == 8 and back["probs"] == [[0.1, 0.9]]
    assert back["ok"] is True and back["nan"] is None and back["path"] == str(tmp_path)
    assert back["labels"] == sorted(["安全", "文化"]) and back["3"] == "key"
    assert "安全" in path.read_text(encoding="utf-8")  # readable UTF-8, not \u escapes


def test_write_json_failure_keeps_old_file_and_leaves_no_temp(tmp_path):
    path = write_json(tmp_path / "m.json", {"accuracy": 0.5})
    with pytest.raises(TypeError, match=r"cannot write object at \$\.bad\[1\] as JSON"):
        write_json(path, {"bad": [1, object()]})
    assert json.loads(path.read_text()) == {"accuracy": 0.5}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def _report(tmp_path, baseline=True, errors=None, max_errors=50):
    metrics = compute_metrics(REFS, PREDS, LABELS)
    metrics["ece"] = 0.0731
    base = compute_metrics(REFS, BASE, LABELS) if baseline else None
    errors = (
        errors
        if errors is not None
        else [
            {
                "id": "a1",
                "title": "市应急局｜部署|防汛",
                "label": "safety",
                "predicted": "other",
                "score": 0.61,
            },
            {
                "id": "a2",
                "title": "博物馆开展展览",
                "true": "other",
                "pred": "culture",
                "score": np.float32(0.55),
            },
        ]
    )
    path = write_markdown_report(
        tmp_path / "report.md",
        title="newsclf evaluation: toy",
        metrics=metrics,
        baseline_metrics=base,
        confusion_text=confusion_matrix_text(REFS, PREDS, LABELS),
        errors=errors,
        extra={"abstain threshold": 0.42, "articles": 8},
        images={"confusion matrix": "cm.png", "reliability": str(tmp_path / "rel.png")},
        max_errors=max_errors,
    )
    return path.read_text(encoding="utf-8"), metrics, base


def test_markdown_report_has_summary_gap_per_label_confusion_and_errors(tmp_path):
    text, metrics, base = _report(tmp_path)
    acc_row = next(line for line in text.splitlines() if line.startswith("| accuracy |"))
    gap = 100 * (metrics["accuracy"] - base["accuracy"])
    assert f"{100 * metrics['accuracy']:.1f}" in acc_row and f"{100 * base['accuracy']:.1f}" in acc_row
    assert f"{gap:+.1f}" in acc_row
    f1_row = next(line for line in text.splitlines() if line.startswith("| macro-F1 |"))
    assert f"{100 * (metrics['macro_f1'] - base['macro_f1']):+.1f}" in f1_row
    assert "| ECE (lower is better) | 7.3 |" in text
    safety = next(line for line in text.splitlines() if line.startswith("| safety |"))
    assert f"{100 * metrics['recall/safety']:.1f}" in safety and "| 3 |" in safety
    assert confusion_matrix_text(REFS, PREDS, LABELS) in text
    assert "**abstain threshold**: 0.42" in text
    # Image paths inside the report folder become relative links.
    assert "![confusion matrix](cm.png)" in text and "![reliability](rel.png)" in text
    assert "## Errors (2 of 2 shown)" in text
    assert "| 1 | a1 | 市应急局｜部署\\|防汛 | safety | other | 0.610 |" in text
    assert "| 2 | a2 | 博物馆开展展览 | other | culture | 0.550 |" in text


def test_markdown_report_without_baseline_and_error_cap(tmp_path):
    text, metrics, _ = _report(tmp_path, baseline=False, max_errors=1)
    assert "No baseline in this run." in text and "baseline (%)" not in text
    assert f"| accuracy | {100 * metrics['accuracy']:.1f} |" in text
    assert "## Errors (1 of 2 shown)" in text and "a2" not in text


def test_markdown_report_with_no_errors(tmp_path):
    text, _, _ = _report(tmp_path, errors=[])
    assert "## Errors (0 of 0 shown)" in text and "No errors." in text
