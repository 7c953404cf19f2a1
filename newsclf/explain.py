"""Why a label: the jieba words whose removal lowers the label's probability the most (occlusion).

Occlusion asks the real model a real question ("what if this word were absent?"), so the weights are
faithful to the classifier, unlike attention weights; its cost is one extra forward pass per candidate
word, which is why candidates are capped.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from newsclf.inputs import CHARS_PER_TOKEN_BOUND

_WORD = re.compile(r"[\u4e00-\u9fffA-Za-z0-9]{2,}")


def candidate_words(title: str, text: str, limit: int) -> list[str]:
    """Distinct jieba words of 2+ characters in the part of the article the model reads, title first."""
    import jieba

    seen: dict[str, None] = {}
    for word in jieba.cut(f"{title}\n{text}"):
        if _WORD.fullmatch(word) and word not in seen:
            seen[word] = None
            if len(seen) >= limit:
                break
    return list(seen)


def explain_keywords(
    clf: Any, article: tuple[str, str], label_index: int, *, base: np.ndarray, top_n: int = 8, max_words: int = 40
) -> list[dict[str, float]]:
    """Up to ``top_n`` words with positive weight = drop in the label's probability when the word is removed."""
    title, text = article
    max_chars = int(clf.meta.get("max_length", 256)) * CHARS_PER_TOKEN_BOUND
    text = text[:max_chars]  # words beyond what the model reads cannot matter
    words = candidate_words(title, text, max_words)
    if not words:
        return []
    variants = [(title.replace(w, ""), text.replace(w, "")) for w in words]
    probs = clf.probabilities(variants)
    drops = base[label_index] - probs[:, label_index]
    order = np.argsort(-drops)
    return [{"word": words[i], "weight": round(float(drops[i]), 4)} for i in order[:top_n] if drops[i] > 0]
