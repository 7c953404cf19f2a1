"""Label rules: the shipped and configured YAML of scoring thresholds, metadata rules and lexicons.

Loading, merging (a configured file extends and overrides the shipped ``default_rules.yaml``) and
validating, so that a typo in a rules file is an error here rather than a rule that silently never fires.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from newsclf.config import Config, make_config

DEFAULT_RULES_PATH = Path(__file__).with_name("default_rules.yaml")
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


def _resolve(config: Config | None) -> tuple[Config, LabelRules]:
    config = config if config is not None else make_config({})
    return config, load_label_rules(config.label_rules, config.labels)
