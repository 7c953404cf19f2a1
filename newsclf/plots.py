"""Figures: the one owner of figure setup, and the confusion-matrix plot.

Every figure newsclf draws is made with :func:`new_figure` and written with :func:`save_figure`, which
draws its text in a font that has Chinese (:func:`find_cjk_font`).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from newsclf.report import _confusion

log = logging.getLogger(__name__)


def plot_confusion_matrix(
    references: Sequence[Any],
    predictions: Sequence[Any],
    labels: Sequence[str],
    path: str | Path,
    title: str = "Confusion matrix",
) -> Path:
    """Write the confusion matrix as a PNG (counts annotated, rows = true label); returns the path.

    Drawn on a matplotlib Agg canvas, so it needs no display and leaves pyplot's state alone. Chinese label
    names and titles use the font :func:`find_cjk_font` picks.
    """
    from sklearn.metrics import ConfusionMatrixDisplay

    labels = list(labels)
    cm = _confusion(references, predictions, labels)
    size = 2.5 + 0.9 * len(labels)
    fig = new_figure((size, size))
    ax = fig.add_subplot()
    with figure_fonts_context():  # the tick labels are made here, with the font family in effect
        ConfusionMatrixDisplay(cm, display_labels=labels).plot(
            ax=ax, cmap="Blues", colorbar=False, values_format="d", xticks_rotation=45
        )
    ax.set_title(title)
    ax.set_ylabel("true label")
    ax.set_xlabel("predicted label")
    return save_figure(fig, path)


# Font families that carry Chinese, most wanted first: Simplified Chinese sans faces, then serif, then
# faces for other CJK locales (which still have every hanzi newsclf draws), then wide-coverage fallbacks.
CJK_FONT_FAMILIES = (
    "Noto Sans CJK SC",
    "Source Han Sans SC",
    "Source Han Sans CN",
    "Noto Sans SC",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "Microsoft YaHei",
    "PingFang SC",
    "Heiti SC",
    "SimHei",
    "Noto Serif CJK SC",
    "Source Han Serif SC",
    "Noto Serif SC",
    "Noto Sans CJK TC",
    "Noto Sans CJK JP",
    "Heiti TC",
    "STHeiti",
    "Arial Unicode MS",
    "Droid Sans Fallback",
)
# The Debian/Ubuntu package to install when no CJK font is found.
CJK_FONT_PACKAGE = "fonts-noto-cjk"
# A font must map every one of these characters to count as CJK-capable.
CJK_PROBE = "时政党建安全文化其他新闻标签预测可靠性混淆矩阵"
_LATIN_FALLBACK = "DejaVu Sans"  # ships with matplotlib, so it is always there
_warned_no_cjk_font = False


def _font_covers(entry: Any, text: str = CJK_PROBE) -> bool:
    """Whether the font file (face) behind a matplotlib ``FontEntry`` maps every character of ``text``."""
    from matplotlib.ft2font import FT2Font

    try:
        charmap = FT2Font(entry.fname, face_index=getattr(entry, "index", 0) or 0).get_charmap()
    except Exception:  # unreadable or odd font files are simply not candidates
        return False
    # A font that maps an unassigned code point (U+0378) draws placeholders, like matplotlib's Last Resort.
    return 0x378 not in charmap and all(ord(ch) in charmap for ch in text)


def _weight(entry: Any) -> int:
    from matplotlib.font_manager import weight_dict

    weight = entry.weight
    return int(weight) if isinstance(weight, (int, float)) else weight_dict.get(str(weight), 400)


def _pick_cjk_font(entries: Sequence[Any], *, any_family: bool = False) -> Any | None:
    """The first known CJK family (regular weight first) whose file covers the probe; with ``any_family``,
    failing that, any upright font that covers it."""
    upright = sorted(
        (e for e in entries if e.style == "normal"), key=lambda e: (abs(_weight(e) - 400), e.fname, e.name)
    )
    for family in CJK_FONT_FAMILIES:
        for entry in upright:
            if entry.name == family and _font_covers(entry):
                return entry
    if not any_family:
        return None
    return next((e for e in upright if _font_covers(e)), None)


@functools.lru_cache(maxsize=1)
def find_cjk_font() -> Any | None:
    """The installed font newsclf draws Chinese with, as a matplotlib ``FontEntry`` (``.name``, ``.fname``).

    Looked up once per process: the first of :data:`CJK_FONT_FAMILIES` whose font file really maps the
    characters in :data:`CJK_PROBE` (checked in the file's cmap), else any installed font that does;
    ``None`` when there is none. Fonts installed after matplotlib built its font cache are found too.
    """
    from matplotlib import font_manager

    manager = font_manager.fontManager
    found = _pick_cjk_font(manager.ttflist)
    if found is None:
        # matplotlib caches its font list on first use; fonts installed since then are missing from it.
        known = {entry.fname for entry in manager.ttflist}
        for font_file in font_manager.findSystemFonts():
            if font_file not in known:
                try:
                    manager.addfont(font_file)
                except Exception as err:  # a broken font file must not stop a plot
                    log.debug("skipping font %s: %s", font_file, err)
        # None of the known families: any other installed font with the characters will do.
        found = _pick_cjk_font(manager.ttflist, any_family=True)
    if found is not None:
        log.debug("drawing Chinese with %s (%s)", found.name, found.fname)
    return found


def figure_fonts() -> list[str]:
    """The font family list for newsclf's figures: the CJK font from :func:`find_cjk_font`, then DejaVu Sans.

    Without a CJK font, logs one warning per process naming the package to install and returns only
    DejaVu Sans; Chinese text then draws as empty boxes, but drawing goes on.
    """
    global _warned_no_cjk_font

    font = find_cjk_font()
    if font is not None:
        return [font.name, _LATIN_FALLBACK]
    if not _warned_no_cjk_font:
        _warned_no_cjk_font = True
        log.warning(
            "no font with Chinese characters is installed, so Chinese text in plots draws as empty boxes; "
            "install one, e.g. `apt-get install %s` on Debian/Ubuntu",
            CJK_FONT_PACKAGE,
        )
    return [_LATIN_FALLBACK]


@contextlib.contextmanager
def figure_fonts_context() -> Iterator[list[str]]:
    """Within: matplotlib draws with :func:`figure_fonts`; without a CJK font, "Glyph missing" warnings are
    silenced (the one warning from :func:`figure_fonts` already says what to do). Yields the family list."""
    import matplotlib

    families = figure_fonts()
    rc = {"font.family": "sans-serif", "font.sans-serif": families}
    with matplotlib.rc_context(rc), warnings.catch_warnings():
        if len(families) == 1:
            warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from", category=UserWarning)
        yield families


def new_figure(figsize: tuple[float, float]) -> Any:
    """A matplotlib Figure on its own Agg canvas: no display needed, pyplot's state untouched."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Any, path: str | Path) -> Path:
    """Lay out and write a matplotlib figure as PNG, creating the folder; returns the path.

    Every text in the figure is drawn with :func:`figure_fonts`, so Chinese label names and titles read.
    """
    from matplotlib.text import Text

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with figure_fonts_context() as families:
        for text in fig.findobj(Text):
            text.set_fontfamily(families)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    return path


__all__ = [
    "figure_fonts",
    "figure_fonts_context",
    "find_cjk_font",
    "new_figure",
    "plot_confusion_matrix",
    "save_figure",
]
