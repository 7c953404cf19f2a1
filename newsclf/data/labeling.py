"""Section labels for articles: gold files, metadata rules, then a jieba + lexicon weak labeller that may abstain.

Sources, in order of trust:

1. gold — a label already in the input (``gold:input``) or a row of a configured gold file (``gold``);
2. metadata rules — a page or section name (党建, 法治, 文化 …) or a corpus habit such as a weekday/page
   mapping (``rule:<name>``), read from YAML so that corpus facts live in config, not code;
3. the lexicon labeller — jieba tokens of the title and the lead scored against weighted per-label lexicons
   (``lexicon``); when the evidence is thin or split it abstains (``abstain``, ``label=None``) and says why.

Every article gets ``label``, ``label_source`` and ``label_evidence``, plus ``label_auto``: what rules and
lexicons alone say, kept even where gold wins so that :func:`label_report` can count disagreements.
"""

from __future__ import annotations

import csv
import datetime
import json
import logging
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from newsclf.config import Config, make_config

log = logging.getLogger(__name__)

DEFAULT_RULES_PATH = Path(__file__).with_name("default_rules.yaml")
LABEL_COLUMNS = ("label", "label_source", "label_evidence", "label_auto")
_SCORING_KEYS = {
    "title_weight": float,
    "body_weight": float,
    "body_chars": int,
    "max_body_hits": int,
    "min_score": float,
    "min_margin": float,
    "min_ratio": float,
}
_WHEN_KEYS = {"source", "name_contains", "page", "weekday", "exclude_dates", "title_matches"}


# ----------------------------------------------------------------------------------------------------------
# Rules: loading, merging, validating
# ----------------------------------------------------------------------------------------------------------


@dataclass
class Rule:
    """One metadata rule: when all ``when`` conditions hold, assign ``label`` (or add ``weight`` as a prior)."""

    name: str
    label: str
    when: dict[str, Any]
    mode: str = "assign"
    weight: float = 0.0

    def matches(self, article: dict[str, Any]) -> bool:
        w = self.when
        if "source" in w and article.get("source", "") not in w["source"]:
            return False
        if "page" in w and str(article.get("page", "") or "") not in w["page"]:
            return False
        if "name_contains" in w:
            names = f"{article.get('section', '') or ''}\n{article.get('page', '') or ''}"
            if not any(s in names for s in w["name_contains"]):
                return False
        if "title_matches" in w and not any(p.search(article.get("title", "") or "") for p in w["title_matches"]):
            return False
        if "weekday" in w or "exclude_dates" in w:
            date = article.get("date", "") or ""
            if "exclude_dates" in w and date in w["exclude_dates"]:
                return False
            if "weekday" in w:
                try:
                    if datetime.date.fromisoformat(date).weekday() not in w["weekday"]:
                        return False
                except ValueError:  # no usable date: a weekday rule cannot vouch for the article
                    return False
        return True


@dataclass
class LabelRules:
    """Everything the labeller needs: label set, scoring thresholds, metadata rules and lexicons."""

    labels: list[str]
    scoring: dict[str, float]
    rules: list[Rule]
    lexicons: dict[str, dict[str, float]]
    sources: list[str] = field(default_factory=list)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise FileNotFoundError(
            f"label rules file {str(path)!r} does not exist; set config key 'label_rules' to an existing YAML "
            "file or to null for the shipped default"
        ) from None
    except yaml.YAMLError as err:
        raise ValueError(f"label rules file {path} is not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ValueError(f"label rules file {path}: expected a mapping with scoring/rules/lexicons, found "
                         f"{type(data).__name__}")
    unknown = sorted(set(data) - {"scoring", "rules", "lexicons"})
    if unknown:
        raise ValueError(f"label rules file {path}: unknown top-level key {unknown[0]!r}; allowed: scoring, "
                         "rules, lexicons")
    return data


def _parse_rule(raw: Any, where: str, labels: list[str]) -> Rule:
    if not isinstance(raw, dict) or "name" not in raw or "label" not in raw or "when" not in raw:
        raise ValueError(f"{where}: expected a rule with keys name, label, when (and optional mode, weight), "
                         f"found {raw!r}")
    name, label, when = str(raw["name"]), raw["label"], raw["when"]
    if label not in labels:
        raise ValueError(f"{where} rule {name!r}: label {label!r} is not in the label set {labels}; fix the "
                         "rule's label or add it to config key 'labels'")
    if not isinstance(when, dict) or not when:
        raise ValueError(f"{where} rule {name!r}: 'when' must be a non-empty mapping of {sorted(_WHEN_KEYS)}")
    bad = sorted(set(when) - _WHEN_KEYS)
    if bad:
        raise ValueError(f"{where} rule {name!r}: unknown condition {bad[0]!r}; allowed: {sorted(_WHEN_KEYS)}")
    norm: dict[str, Any] = {}
    for key, value in when.items():
        values = value if isinstance(value, list) else [value]
        if key == "weekday":
            norm[key] = [int(v) for v in values]
        elif key == "title_matches":
            try:
                norm[key] = [re.compile(str(v)) for v in values]
            except re.error as err:
                raise ValueError(f"{where} rule {name!r}: title_matches {values!r} has an invalid regex: {err}") from err
        else:
            norm[key] = [str(v) for v in values]
    mode = raw.get("mode", "assign")
    if mode not in ("assign", "prior"):
        raise ValueError(f"{where} rule {name!r}: mode {mode!r} must be 'assign' or 'prior'")
    weight = float(raw.get("weight", 0.0))
    if mode == "prior" and weight <= 0:
        raise ValueError(f"{where} rule {name!r}: a prior rule needs a positive 'weight', found {weight}")
    return Rule(name=name, label=label, when=norm, mode=mode, weight=weight)


def load_label_rules(path: str | Path | None = None, labels: list[str] | None = None) -> LabelRules:
    """Read the shipped default rules, extended by the YAML at ``path`` (if any), for the given label set.

    Entries of the shipped file for labels outside ``labels`` are dropped (a custom label set need not use
    every default lexicon); entries of ``path`` must name known labels, since a typo there would silently
    never fire.
    """
    labels = list(labels or make_config({}).labels)
    _check_label_set(labels)
    layers = [(DEFAULT_RULES_PATH, _read_yaml(DEFAULT_RULES_PATH), True)]
    if path is not None:
        layers.append((Path(path), _read_yaml(Path(path)), False))
    scoring: dict[str, float] = {}
    rules: dict[str, Rule] = {}
    lexicons: dict[str, dict[str, float]] = {lab: {} for lab in labels}
    for src, data, shipped in layers:
        for key, value in (data.get("scoring") or {}).items():
            if key not in _SCORING_KEYS:
                raise ValueError(f"label rules file {src}: unknown scoring key {key!r}; allowed: "
                                 f"{sorted(_SCORING_KEYS)}")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"label rules file {src}: scoring key {key!r} = {value!r}, expected a "
                                 "non-negative number")
            scoring[key] = _SCORING_KEYS[key](value)
        for i, raw in enumerate(data.get("rules") or []):
            if shipped and isinstance(raw, dict) and raw.get("label") not in labels:
                continue
            rule = _parse_rule(raw, f"label rules file {src}, rules[{i}]", labels)
            rules[rule.name] = rule  # same name: the later file replaces the shipped rule
        for label, terms in (data.get("lexicons") or {}).items():
            if label not in labels:
                if shipped:
                    continue
                raise ValueError(f"label rules file {src}: lexicon for {label!r}, which is not in the label "
                                 f"set {labels}; rename it or add the label to config key 'labels'")
            if not isinstance(terms, dict):
                raise ValueError(f"label rules file {src}: lexicon {label!r} must map term: weight, found "
                                 f"{type(terms).__name__}")
            for term, weight in terms.items():
                if isinstance(weight, bool) or not isinstance(weight, (int, float)):
                    raise ValueError(f"label rules file {src}: lexicon {label!r} term {term!r} has weight "
                                     f"{weight!r}, expected a number (0 removes the term)")
                if weight == 0:
                    lexicons[label].pop(str(term), None)
                else:
                    lexicons[label][str(term)] = float(weight)
    missing = sorted(set(_SCORING_KEYS) - set(scoring))
    if missing:
        raise ValueError(f"label rules: scoring key {missing[0]!r} is missing; the shipped "
                         f"{DEFAULT_RULES_PATH.name} defines it, so restore it there")
    return LabelRules(labels, scoring, list(rules.values()), lexicons, [str(s) for s, _, _ in layers])


def _check_label_set(labels: list[str]) -> None:
    if len(set(labels)) < 2:
        raise ValueError(f"label set {labels!r} has fewer than two distinct labels; a classifier needs at least "
                         "two: set config key 'labels', e.g. [governance, party_building, safety, culture, other]")


# ----------------------------------------------------------------------------------------------------------
# The lexicon scorer
# ----------------------------------------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _tokenizer(terms: tuple[str, ...]) -> Any:
    """A private jieba tokenizer that keeps every lexicon term whole.

    A private instance (not ``jieba.add_word`` on the global one) so that other code in the process keeps
    jieba's stock segmentation; cached so the dictionary loads once per lexicon set.
    """
    import jieba

    jieba.setLogLevel(logging.WARNING)
    tok = jieba.Tokenizer()
    tok.initialize()
    for term in terms:
        # A high frequency makes the multi-character term win over its parts (纪委监委, not 纪委 + 监委).
        tok.add_word(term, freq=max(100000, tok.suggest_freq(term)))
    return tok


class Scorer:
    """Scores articles against the lexicons and decides label or abstain (see default_rules.yaml)."""

    def __init__(self, rules: LabelRules):
        self.rules = rules
        self.s = rules.scoring
        self.term_labels: dict[str, list[tuple[str, float]]] = {}
        for label, terms in rules.lexicons.items():
            for term, weight in terms.items():
                self.term_labels.setdefault(term, []).append((label, weight))
        self.tok = _tokenizer(tuple(sorted(self.term_labels)))
        self.assign_rules = [r for r in rules.rules if r.mode == "assign"]
        self.prior_rules = [r for r in rules.rules if r.mode == "prior"]

    def _tokens(self, text: str) -> list[str]:
        # HMM off: lexicon terms are in the dictionary, so guessing unknown words only costs time.
        return self.tok.lcut(text, HMM=False)

    def scores(self, title: str, text: str) -> tuple[dict[str, float], list[str]]:
        """Per-label scores and the evidence behind them (``term@title*w`` / ``term@body*n*w``)."""
        scores = dict.fromkeys(self.rules.labels, 0.0)
        hits: list[tuple[float, str]] = []
        for term in set(self._tokens(title or "")):
            for label, w in self.term_labels.get(term, ()):
                scores[label] += w * self.s["title_weight"]
                hits.append((w * self.s["title_weight"], f"{label}:{term}@title"))
        body = Counter(self._tokens((text or "")[: self.s["body_chars"]]))
        for term, n in body.items():
            for label, w in self.term_labels.get(term, ()):
                k = min(n, self.s["max_body_hits"])
                scores[label] += w * self.s["body_weight"] * k
                hits.append((w * self.s["body_weight"] * k, f"{label}:{term}@body×{k}"))
        hits.sort(key=lambda h: -h[0])
        return scores, [h for _, h in hits]

    def label(self, article: dict[str, Any], use_lexicon: bool = True) -> tuple[str | None, str, str]:
        """(label or None, source, evidence) from metadata rules, then (if ``use_lexicon``) the lexicons."""
        for rule in self.assign_rules:
            if rule.matches(article):
                return rule.label, f"rule:{rule.name}", f"rule {rule.name} → {rule.label}"
        if not use_lexicon:
            return None, "abstain", "no metadata rule matched (weak labels off)"
        scores, hits = self.scores(article.get("title", ""), article.get("text", ""))
        priors = []
        for rule in self.prior_rules:
            if rule.matches(article):
                scores[rule.label] += rule.weight
                priors.append(f"prior {rule.name}+{rule.weight:g}→{rule.label}")
        ranked = sorted(scores.items(), key=lambda kv: -kv[1])
        (top, s1), (second, s2) = ranked[0], ranked[1]
        summary = " ".join(f"{lab}={sc:g}" for lab, sc in ranked if sc > 0) or "no lexicon term"
        evidence = "; ".join(priors + hits[:6])
        why = None
        if s1 < self.s["min_score"]:
            why = f"top score {s1:g} < min_score {self.s['min_score']:g}"
        elif s1 - s2 < self.s["min_margin"]:
            why = f"margin {top}-{second} = {s1 - s2:g} < min_margin {self.s['min_margin']:g}"
        elif s2 > 0 and s1 / s2 < self.s["min_ratio"]:
            why = f"ratio {top}/{second} = {s1 / s2:.2f} < min_ratio {self.s['min_ratio']:g}"
        if why:
            return None, "abstain", f"{why} [{summary}] {evidence}".strip()
        return top, "lexicon", f"[{summary}] {evidence}".strip()


# ----------------------------------------------------------------------------------------------------------
# Gold files
# ----------------------------------------------------------------------------------------------------------


def read_labelled_rows(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a CSV/TSV (header row) or JSONL file, each with its 1-based line number under ``_line``."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"gold file {str(p)!r} does not exist; fix config key 'gold' or create the file")
    rows: list[dict[str, Any]] = []
    if p.suffix.lower() in (".jsonl", ".json"):
        with p.open(encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    raise ValueError(f"gold file {p}, line {n}: not valid JSON ({err}); fix or remove the line") from err
                if not isinstance(row, dict):
                    raise ValueError(f"gold file {p}, line {n}: expected a JSON object with id and label")
                rows.append({**row, "_line": n})
    elif p.suffix.lower() in (".csv", ".tsv"):
        with p.open(encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f, delimiter="\t" if p.suffix.lower() == ".tsv" else ",")
            for n, row in enumerate(reader, 2):
                rows.append({**row, "_line": n})
    else:
        raise ValueError(f"gold file {p}: unsupported extension {p.suffix!r}; use .csv, .tsv or .jsonl with "
                         "columns id and label")
    return rows


def load_gold(paths: list[str | Path], labels: list[str]) -> dict[str, tuple[str, str]]:
    """``{id: (label, "file:line")}`` from gold files, every label checked against ``labels``."""
    gold: dict[str, tuple[str, str]] = {}
    for path in paths:
        for row in read_labelled_rows(path):
            where = f"gold file {path}, line {row['_line']}"
            if "id" not in row or "label" not in row:
                raise ValueError(f"{where}: expected columns id and label, found {sorted(k for k in row if k != '_line')}")
            gid, label = str(row["id"] or "").strip(), str(row["label"] or "").strip()
            if not gid:
                raise ValueError(f"{where}: empty id; fill it in or remove the row")
            if label not in labels:
                raise ValueError(f"{where}: unknown label {label!r} for id {gid!r}; allowed labels: {labels} "
                                 "(fix the label, or add it to config key 'labels')")
            if gid in gold and gold[gid][0] != label:
                raise ValueError(f"{where}: id {gid!r} is labelled {label!r} but {gold[gid][1]} says "
                                 f"{gold[gid][0]!r}; keep one of the two rows")
            gold[gid] = (label, f"{path}:{row['_line']}")
    return gold


def load_articles_for_labelling(config: Config) -> Any:
    """The config's articles as a ``datasets.Dataset``, loaded exactly as ``build_dataset`` loads them."""
    from newsclf.data.loaders import load_articles

    return load_articles(
        config.data, field_map=config.field_map or None, on_bad_record=config.on_bad_record, min_chars=config.min_chars
    )


# ----------------------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------------------


def _resolve(config: Config | None) -> tuple[Config, LabelRules]:
    config = config if config is not None else make_config({})
    return config, load_label_rules(config.label_rules, config.labels)


def _rows(dataset: Any) -> list[dict[str, Any]]:
    if isinstance(dataset, list):
        return dataset
    return dataset.to_list()


def auto_labels(rows: list[dict[str, Any]], rules: LabelRules, use_lexicon: bool = True) -> list[tuple]:
    """Rules-and-lexicon labels ``(label|None, source, evidence)`` for each row, ignoring any gold."""
    scorer = Scorer(rules)
    return [scorer.label(r, use_lexicon) for r in rows]


def label_articles(dataset: Any, config: Config | None = None) -> Any:
    """Add ``label``, ``label_source``, ``label_evidence`` and ``label_auto`` columns to an article dataset.

    ``dataset`` is a ``datasets.Dataset`` with at least ``id``, ``title`` and ``text`` (``date``, ``source``,
    ``page``, ``section`` feed the metadata rules). A ``label`` already present is gold (``gold:input``); a
    configured gold file overrides it; otherwise metadata rules, then (if ``config.use_weak_labels``) the
    lexicon labeller decide, abstaining with ``label=None``. With ``config=None`` the shipped defaults apply.
    Raises ``ValueError`` for a label outside the label set or a gold id that matches no article.
    """
    config, rules = _resolve(config)
    rows = _rows(dataset)
    ids = [str(r.get("id", "")) for r in rows]
    gold = load_gold(config.gold, rules.labels)
    if gold:
        known = set(ids)
        stray = [g for g in gold if g not in known]
        if stray:
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


def label_report(dataset: Any, max_examples: int = 5) -> dict[str, Any]:
    """Coverage, counts per label / label source / data source, and gold-vs-auto conflicts of a labelled dataset."""
    for col in ("label", "label_source"):
        if col not in dataset.column_names:
            raise ValueError(f"label_report needs column {col!r}; found {dataset.column_names}. Run "
                             "label_articles(dataset, config) first")
    labels = dataset["label"]
    sources = dataset["label_source"]
    n = len(labels)
    labelled = sum(lab is not None for lab in labels)
    kinds = Counter(s.split(":")[0] if s.startswith("rule:") else s for s in sources)
    per_source = Counter(sources)
    data_src = dataset["source"] if "source" in dataset.column_names else ["?"] * n
    by_data: dict[str, Counter] = {}
    for lab, ds in zip(labels, data_src):
        by_data.setdefault(ds or "?", Counter())[lab or "(abstain)"] += 1
    conflicts: dict[str, Any] = {"count": 0, "pairs": Counter(), "examples": []}
    if "label_auto" in dataset.column_names:
        for gid, lab, src, auto in zip(dataset["id"], labels, sources, dataset["label_auto"]):
            if src.startswith("gold") and auto is not None and auto != lab:
                conflicts["count"] += 1
                conflicts["pairs"][f"gold={lab} auto={auto}"] += 1
                if len(conflicts["examples"]) < max_examples:
                    conflicts["examples"].append({"id": gid, "gold": lab, "auto": auto})
    conflicts["pairs"] = dict(conflicts["pairs"].most_common())
    return {
        "articles": n,
        "labelled": labelled,
        "coverage": labelled / n if n else 0.0,
        "per_label": dict(Counter(lab for lab in labels if lab is not None).most_common()),
        "per_source_kind": dict(kinds.most_common()),
        "per_label_source": dict(per_source.most_common()),
        "per_data_source": {k: dict(v.most_common()) for k, v in sorted(by_data.items())},
        "conflicts": conflicts,
    }


def format_label_report(report: dict[str, Any]) -> str:
    """A plain-text table of :func:`label_report`'s result."""
    lines = [f"articles: {report['articles']}   labelled: {report['labelled']}   coverage: {report['coverage']:.1%}",
             "", "label            count   share"]
    for lab, c in report["per_label"].items():
        lines.append(f"{lab:<15} {c:>6}  {c / max(report['labelled'], 1):6.1%}")
    lines += ["", "label source                          count"]
    for s, c in report["per_label_source"].items():
        lines.append(f"{s:<36} {c:>6}")
    lines += ["", "per data source: " + "; ".join(
        f"{k}: " + ", ".join(f"{lab} {c}" for lab, c in v.items()) for k, v in report["per_data_source"].items())]
    conf = report["conflicts"]
    lines.append(f"conflicts (gold vs rules/lexicon): {conf['count']}")
    for pair, c in conf["pairs"].items():
        lines.append(f"  {pair}: {c}")
    for ex in conf["examples"]:
        lines.append(f"  e.g. {ex['id']}: gold {ex['gold']}, auto {ex['auto']}")
    return "\n".join(lines)


def evaluate_labeller(articles: Any, config: Config | None = None) -> dict[str, Any]:
    """Compare the rules + lexicon labeller (gold ignored) with the articles' own ``label`` column.

    Returns coverage, ``precision`` (accuracy on the articles it labels), per-label precision/recall/F1 and
    two macro-F1s: ``macro_f1_covered`` over labelled articles only, ``macro_f1_all`` with every abstention
    counted as wrong. ``by_source`` gives coverage and precision per data source (e.g. xwlb vs rmrb).
    """
    from sklearn.metrics import f1_score, precision_recall_fscore_support

    config, rules = _resolve(config)
    rows = _rows(articles)
    if not rows:
        raise ValueError("evaluate_labeller got no articles; pass a labelled dataset (id, title, text, label)")
    bad = [(i, r.get("label")) for i, r in enumerate(rows) if r.get("label") not in rules.labels]
    if bad:
        i, lab = bad[0]
        raise ValueError(f"article {rows[i].get('id')!r} (row {i}) has label {lab!r}, which is not in the label "
                         f"set {rules.labels}; evaluation needs every article labelled from that set")
    autos = auto_labels(rows, rules, use_lexicon=config.use_weak_labels)
    y_true = [r["label"] for r in rows]
    y_pred = [a[0] for a in autos]
    covered = [(t, p) for t, p in zip(y_true, y_pred) if p is not None]
    labels = rules.labels
    ABSTAIN = "(abstain)"
    yp_all = [p if p is not None else ABSTAIN for p in y_pred]
    p, r, f, s = precision_recall_fscore_support(y_true, yp_all, labels=labels, zero_division=0)
    per_label = {lab: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i]),
                       "predicted": sum(x == lab for x in y_pred)} for i, lab in enumerate(labels)}
    ct, cp = [t for t, _ in covered], [q for _, q in covered]
    by_source: dict[str, dict[str, float]] = {}
    for src in sorted({str(r.get("source", "")) for r in rows}):
        idx = [i for i, r in enumerate(rows) if str(r.get("source", "")) == src]
        cov = [i for i in idx if y_pred[i] is not None]
        by_source[src or "?"] = {
            "articles": len(idx),
            "coverage": len(cov) / len(idx),
            "precision": (sum(y_pred[i] == y_true[i] for i in cov) / len(cov)) if cov else math.nan,
        }
    errors = [{"id": rows[i].get("id"), "gold": y_true[i], "pred": y_pred[i], "evidence": autos[i][2][:160]}
              for i in range(len(rows)) if y_pred[i] is not None and y_pred[i] != y_true[i]]
    return {
        "articles": len(rows),
        "labelled": len(covered),
        "coverage": len(covered) / len(rows),
        "precision": (sum(t == q for t, q in covered) / len(covered)) if covered else math.nan,
        # Recall here counts abstentions as misses, so it is recall over all articles of that label.
        "per_label": per_label,
        "macro_f1_covered": float(f1_score(ct, cp, labels=labels, average="macro", zero_division=0)) if covered else 0.0,
        "macro_f1_all": float(f1_score(y_true, yp_all, labels=labels, average="macro", zero_division=0)),
        "by_source": by_source,
        "errors": errors,
    }


def format_evaluation(ev: dict[str, Any]) -> str:
    """A plain-text table of :func:`evaluate_labeller`'s result."""
    lines = [f"articles: {ev['articles']}   labelled: {ev['labelled']}   coverage: {ev['coverage']:.1%}   "
             f"precision on labelled: {ev['precision']:.3f}",
             "", "label            prec  recall    f1  support  predicted"]
    for lab, m in ev["per_label"].items():
        lines.append(f"{lab:<15} {m['precision']:5.3f}  {m['recall']:5.3f}  {m['f1']:5.3f}  {m['support']:>7}  "
                     f"{m['predicted']:>9}")
    lines += ["", f"macro-F1 on labelled articles: {ev['macro_f1_covered']:.3f}",
              f"macro-F1 with abstentions counted wrong (recall over all): {ev['macro_f1_all']:.3f}", ""]
    for src, m in ev["by_source"].items():
        lines.append(f"source {src}: {m['articles']} articles, coverage {m['coverage']:.1%}, precision "
                     f"{m['precision']:.3f}")
    return "\n".join(lines)

