"""The lexicon scorer: jieba tokens of title and lead scored against per-label lexicons, label or abstain."""

from __future__ import annotations

import logging
from collections import Counter
from functools import lru_cache
from typing import Any

from newsclf.data.label_rules import LabelRules


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


def _rows(dataset: Any) -> list[dict[str, Any]]:
    if isinstance(dataset, list):
        return dataset
    return dataset.to_list()


def auto_labels(rows: list[dict[str, Any]], rules: LabelRules, use_lexicon: bool = True) -> list[tuple]:
    """Rules-and-lexicon labels ``(label|None, source, evidence)`` for each row, ignoring any gold."""
    scorer = Scorer(rules)
    return [scorer.label(r, use_lexicon) for r in rows]
