"""Section labels for articles: gold files, metadata rules, then a jieba + lexicon weak labeller that may abstain.

Sources, in order of trust:

1. gold — a label already in the input (``gold:input``) or a row of a configured gold file (``gold``);
2. metadata rules — a page or section name (党建, 法治, 文化 …) or a corpus habit such as a weekday/page
   mapping (``rule:<name>``), read from YAML so that corpus facts live in config, not code;
3. the lexicon labeller — jieba tokens of the title and the lead scored against weighted per-label lexicons
   (``lexicon``); when the evidence is thin or split it abstains (``abstain``, ``label=None``) and says why.

Every article gets ``label``, ``label_source`` and ``label_evidence``, plus ``label_auto``: what rules and
lexicons alone say, kept even where gold wins so that :func:`label_report` can count disagreements.

The pieces live in their own modules and are all importable from here: :mod:`newsclf.data.label_rules`
(loading and validating rules and lexicons), :mod:`newsclf.data.lexicon_scorer` (the jieba + lexicon
scorer), :mod:`newsclf.data.gold` (gold files) and :mod:`newsclf.data.label_quality` (the label report,
the labeller's evaluation and the ``newsclf label-report`` command). This module joins them into
:func:`label_articles`.
"""

from __future__ import annotations

import logging
from typing import Any

from newsclf.config import Config
from newsclf.data.gold import load_articles_for_labelling, load_gold, read_labelled_rows
from newsclf.data.label_quality import evaluate_labeller, format_evaluation, format_label_report, label_report
from newsclf.data.label_rules import _SCORING_KEYS as _SCORING_KEYS
from newsclf.data.label_rules import _WHEN_KEYS as _WHEN_KEYS
from newsclf.data.label_rules import DEFAULT_RULES_PATH, LabelRules, Rule, _resolve, load_label_rules
from newsclf.data.label_rules import _check_label_set as _check_label_set
from newsclf.data.label_rules import _parse_rule as _parse_rule
from newsclf.data.label_rules import _read_yaml as _read_yaml
from newsclf.data.lexicon_scorer import Scorer, _rows, auto_labels
from newsclf.data.lexicon_scorer import _tokenizer as _tokenizer

__all__ = [
    "DEFAULT_RULES_PATH",
    "LABEL_COLUMNS",
    "LabelRules",
    "Rule",
    "Scorer",
    "auto_labels",
    "evaluate_labeller",
    "format_evaluation",
    "format_label_report",
    "label_articles",
    "label_report",
    "load_articles_for_labelling",
    "load_gold",
    "load_label_rules",
    "read_labelled_rows",
]

log = logging.getLogger(__name__)

LABEL_COLUMNS = ("label", "label_source", "label_evidence", "label_auto")


def label_articles(dataset: Any, config: Config | None = None, *, stray_gold: str = "error") -> Any:
    """Add ``label``, ``label_source``, ``label_evidence`` and ``label_auto`` columns to an article dataset.

    ``dataset`` is a ``datasets.Dataset`` with at least ``id``, ``title`` and ``text`` (``date``, ``source``,
    ``page``, ``section`` feed the metadata rules). A ``label`` already present is gold (``gold:input``); a
    configured gold file overrides it; otherwise metadata rules, then (if ``config.use_weak_labels``) the
    lexicon labeller decide, abstaining with ``label=None``. With ``config=None`` the shipped defaults apply.
    Raises ``ValueError`` for a label outside the label set or (``stray_gold="error"``) a gold id that matches
    no article; ``stray_gold="count"`` logs how many matched none (a gold file for a larger archive).
    """
    config, rules = _resolve(config)
    rows = _rows(dataset)
    ids = [str(r.get("id", "")) for r in rows]
    gold = load_gold(config.gold, rules.labels)
    if gold:
        known = set(ids)
        stray = [g for g in gold if g not in known]
        if stray and stray_gold == "count":
            log.info("%d of %d gold ids are not in these %d articles (labels of other articles)", len(stray),
                     len(gold), len(ids))
        elif stray:
            where = gold[stray[0]][1]
            raise ValueError(f"{len(stray)} gold id(s) match no article in the dataset, e.g. {stray[0]!r} "
                             f"({where}); check the gold file labels this dataset (same id scheme), that no filter "
                             "such as config key 'min_chars' dropped those articles, or remove those rows")
    has_input = "label" in (dataset.column_names if hasattr(dataset, "column_names") else (rows[0] if rows else {}))
    if has_input:
        for i, r in enumerate(rows):
            lab = r.get("label")
            if lab not in (None, "") and lab not in rules.labels:
                raise ValueError(f"input article {ids[i]!r} (row {i}) has label {lab!r}, which is not in the label "
                                 f"set {rules.labels}; fix the article's label or add it to config key 'labels'")
    autos = auto_labels(rows, rules, use_lexicon=config.use_weak_labels)
    out = {c: [] for c in LABEL_COLUMNS}
    for i, r in enumerate(rows):
        auto, src, ev = autos[i]
        inp = r.get("label") if has_input else None
        if ids[i] in gold:
            lab, where = gold[ids[i]]
            label, src, ev = lab, "gold", f"{where}" + (f"; input said {inp}" if inp not in (None, "", lab) else "")
        elif inp not in (None, ""):
            label, src, ev = inp, "gold:input", "label present in the input"
        else:
            label = auto
        out["label"].append(label)
        out["label_source"].append(src)
        out["label_evidence"].append(ev)
        out["label_auto"].append(auto)
    drop = [c for c in LABEL_COLUMNS if c in dataset.column_names]
    ds = dataset.remove_columns(drop) if drop else dataset
    from datasets import Value

    for col in LABEL_COLUMNS:
        ds = ds.add_column(col, out[col], feature=Value("string"))
    return ds
