"""The anchor baseline: jieba words + character n-grams, TF-IDF, logistic regression (scikit-learn).

Every evaluation report trains this on the same training data and scores it on the same split as the
fine-tuned model, so a report always shows how much the transformer actually buys.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

_JIEBA_READY = False
BASELINE_FORMAT = 1
# Written beside the weights of a model that blends the baseline in (see newsclf.artifact).
BASELINE_FILES = ("baseline.json", "baseline.safetensors")


def _jieba_tokens(text: str) -> list[str]:
    """jieba words without whitespace tokens (the word analyser of the baseline).

    Through rjieba (jieba-rs: jieba's dictionary and algorithm in Rust) when it is installed, as it is with
    newsclf: the same words (tests/test_baseline.py compares them; 12,013 corpus and dev texts matched)
    at ~0.06 instead of ~0.85 ms an article, which was most of what the blend cost a prediction, and
    without jieba's 70 MB dictionary in the process. jieba itself otherwise.
    """
    if _RJIEBA is not None:
        return [w for w in _RJIEBA.cut(text, hmm=False) if not w.isspace()]
    return _python_jieba_tokens(text)


def _python_jieba_tokens(text: str) -> list[str]:
    import jieba

    global _JIEBA_READY
    if not _JIEBA_READY:
        # jieba prints its dictionary-loading chatter at DEBUG/INFO on first use; keep logs clean.
        jieba.setLogLevel(logging.WARNING)
        jieba.initialize()
        _JIEBA_READY = True
    # HMM=False: the new-word guesser costs ~30% of segmentation time, and unknown words still reach the
    # model through the character n-grams.
    return [w for w in jieba.lcut(text, HMM=False) if not w.isspace()]


def _load_rjieba() -> Any:
    try:
        import rjieba
    except ImportError:
        return None
    return rjieba


_RJIEBA = _load_rjieba()


def article_texts(articles: Sequence[tuple[str, str]]) -> list[str]:
    """The baseline's input for (title, text) pairs: the title, a newline, the text (as every caller builds it)."""
    return [f"{title}\n{text}" for title, text in articles]


# scikit-learn's character analyser first collapses runs of whitespace to one space (``_white_spaces``).
_WHITE_SPACES = re.compile(r"\s\s+")
# A character n-gram (1-3 characters) as one integer: each code point + 1 (so no n-gram is 0-padded into a
# shorter one) in 21 bits. Code points stop at 0x10FFFF, so three fit in 63 bits.
_CP_BITS = np.uint64(21)


def _char_keys(text: str) -> np.ndarray:
    """The character 1-, 2- and 3-grams of ``text`` as integer keys, in scikit-learn's analyser order."""
    cp = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64) + np.uint64(1)
    parts = [cp]
    if len(cp) >= 2:
        parts.append((cp[:-1] << _CP_BITS) | cp[1:])
    if len(cp) >= 3:
        parts.append((cp[:-2] << (_CP_BITS + _CP_BITS)) | (cp[1:-1] << _CP_BITS) | cp[2:])
    return np.concatenate(parts)


def _term_key(term: str) -> int:
    key = 0
    for ch in term:
        key = (key << 21) | (ord(ch) + 1)
    return key


def _key_term(key: int) -> str:
    chars = []
    while key:
        chars.append(chr((key & 0x1FFFFF) - 1))
        key >>= 21
    return "".join(reversed(chars))


class _Features:
    """One fitted TF-IDF vectoriser, reduced to what ``transform`` needs, without scikit-learn.

    Gives the same rows as ``TfidfVectorizer(sublinear_tf=True, norm="l2").transform`` for the baseline's two
    analysers: the word vocabulary stays a dict, the character one becomes a sorted integer array (a dict of
    300k short strings held ~40 MB in every predicting process; the array holds 5 MB and looks up a whole
    article in one ``searchsorted``). Also faster: a single article's features took ~3 ms through
    scikit-learn's sparse matrices and take ~1 ms here, most of it jieba.
    """

    def __init__(self, kind: str, terms: Sequence[str], idf: np.ndarray):
        self.kind = kind
        self.idf = np.asarray(idf, dtype=np.float64)
        if kind == "words":
            self.vocabulary = {term: i for i, term in enumerate(terms)}
        else:
            keys = np.fromiter((_term_key(t) for t in terms), dtype=np.uint64, count=len(terms))
            order = np.argsort(keys, kind="stable")
            self.keys, self.index = keys[order], order.astype(np.int64)
        self.size = len(terms)

    def terms(self) -> list[str]:
        """The vocabulary in feature order (what ``save`` writes)."""
        if self.kind == "words":
            out = [""] * self.size
            for term, i in self.vocabulary.items():
                out[i] = term
            return out
        out = [""] * self.size
        for key, i in zip(self.keys.tolist(), self.index.tolist()):
            out[i] = _key_term(key)
        return out

    def _counts(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """The text's features in the vocabulary and how often each occurs, in feature order."""
        if self.kind == "words":
            tokens = _jieba_tokens(text)
            grams = tokens + [f"{a} {b}" for a, b in zip(tokens, tokens[1:])]
            get = self.vocabulary.get
            found = [i for i in map(get, grams) if i is not None]  # one dict lookup per gram
            return np.unique(np.array(found, dtype=np.int64), return_counts=True)
        keys, counts = np.unique(_char_keys(_WHITE_SPACES.sub(" ", text)), return_counts=True)
        if not len(keys) or not len(self.keys):
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        # Each distinct key searched once, in sorted order (cache-friendly): ~15% faster on 200 dev articles.
        pos = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        hit = self.keys[pos] == keys
        features, counts = self.index[pos[hit]], counts[hit]
        order = np.argsort(features)  # distinct keys are distinct features
        return features[order], counts[order]

    def row(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Feature indices and their l2-normalised sublinear TF-IDF values for one text."""
        features, counts = self._counts(text)
        values = (np.log(counts) + 1.0) * self.idf[features]
        norm = np.sqrt(values @ values)
        if norm > 0:
            values /= norm
        return features, values


class TfidfBaseline:
    """jieba word uni+bigrams and character 1-3-grams, sublinear TF-IDF, balanced one-vs-rest logistic regression.

    Texts are cut to their first ``max_chars`` characters (title + opening when given "title\\nbody"):
    news puts the topic in the headline and lead, the transformer only sees a shorter head (256 tokens by
    default), and segmentation, n-gram counting and the fit all grow with length. At 500 characters ~10k
    articles train in about 30 s on one busy core, most of it segmentation and n-gram counting.
    ``predict_proba`` columns follow ``labels``; a label absent from the training data gets probability 0.
    """

    def __init__(self, labels: Sequence[str], *, seed: int = 0, max_chars: int = 500, C: float = 10.0):
        labels = list(labels)
        if len(labels) < 2 or len(set(labels)) != len(labels):
            raise ValueError(f"labels must be at least two unique names, found {labels}")
        if max_chars < 1:
            raise ValueError(f"max_chars must be >= 1, found {max_chars}")
        self.labels = labels
        self.seed = seed
        self.max_chars = max_chars
        self.C = C
        self.pipeline_: Any = None
        self.trained_labels_: list[str] = []
        # What predict_proba runs, from a fit or from a saved baseline (see save/load): the two vectorizers
        # (as _Features), the one-vs-rest weights (classes x features) and intercepts, and the class names
        # in row order.
        self._features: list[_Features] = []
        self._coef: Any = None
        self._intercept: Any = None
        self._classes: list[str] = []
        self._blocks: list[Any] | None = None

    def _prepare(self, texts: Sequence[str], what: str) -> list[str]:
        if isinstance(texts, str):
            raise TypeError(f"{what} must be a list of strings, found a single string; wrap it in a list")
        bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
        if bad:
            raise TypeError(
                f"{what} must all be strings; found {type(texts[bad[0]]).__name__} at positions {bad[:5]}"
            )
        return [t[: self.max_chars] for t in texts]

    @staticmethod
    def _vectorizers() -> list[Any]:
        """The word and character TF-IDF vectorizers the fit learns (``_Features`` reproduces their output)."""
        from sklearn.feature_extraction.text import TfidfVectorizer

        words = TfidfVectorizer(
            tokenizer=_jieba_tokens,
            token_pattern=None,
            lowercase=False,
            ngram_range=(1, 2),
            sublinear_tf=True,
            max_features=200_000,
        )
        chars = TfidfVectorizer(
            analyzer="char", ngram_range=(1, 3), sublinear_tf=True, lowercase=False, max_features=300_000,
        )
        return [words, chars]

    def _build(self):
        from sklearn.linear_model import LogisticRegression
        from sklearn.multiclass import OneVsRestClassifier
        from sklearn.pipeline import FeatureUnion, Pipeline

        words, chars = self._vectorizers()
        return Pipeline(
            [
                ("features", FeatureUnion([("words", words), ("chars", chars)])),
                # One-vs-rest liblinear logistic regression: on 10k articles x 500k TF-IDF features it fits
                # in ~8 s with the same held-out accuracy as multinomial lbfgs, which needed ~27 s.
                (
                    "model",
                    OneVsRestClassifier(
                        LogisticRegression(
                            C=self.C, class_weight="balanced", solver="liblinear", random_state=self.seed
                        )
                    ),
                ),
            ]
        )

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> TfidfBaseline:
        """Train on texts and their label names; returns self."""
        texts = self._prepare(texts, "texts")
        labels = list(labels)
        if len(texts) != len(labels):
            raise ValueError(
                f"texts and labels must have the same length; found {len(texts)} and {len(labels)}"
            )
        unknown = sorted({str(y) for y in labels if y not in self.labels})
        if unknown:
            raise ValueError(
                f"unknown labels {unknown[:10]} in training data; expected names from {self.labels}"
            )
        present = sorted(set(labels), key=self.labels.index)
        if len(present) < 2:
            raise ValueError(
                f"the baseline needs training examples of at least two labels; found only {present} "
                f"in {len(labels)} examples"
            )
        pipeline = self._build()
        pipeline.fit(texts, labels)
        self.pipeline_ = pipeline
        self.trained_labels_ = present
        union = pipeline.named_steps["features"]
        self._features = [
            _Features(name, sorted(vec.vocabulary_, key=vec.vocabulary_.__getitem__), vec.idf_)
            for name, vec in union.transformer_list
        ]
        ovr = pipeline.named_steps["model"]
        self._coef = np.vstack([est.coef_ for est in ovr.estimators_]).astype(np.float32)
        self._intercept = np.concatenate([est.intercept_ for est in ovr.estimators_]).astype(np.float32)
        self._classes = [str(c) for c in ovr.classes_]  # scikit-learn's (sorted) order, the rows' order
        self._split_weights()
        return self

    def _split_weights(self) -> None:
        """Each vectorizer's slice of the weights, transposed to (features, classes) once (at fit or load, so
        concurrent predictions never race on it): converting the whole matrix per call cost ~15 ms."""
        start, blocks = 0, []
        for features in self._features:
            width = features.size
            blocks.append(np.ascontiguousarray(self._coef[:, start : start + width].T, dtype=np.float64))
            start += width
        self._blocks = blocks

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities, shape (n_texts, len(labels)), columns in ``labels`` order (0 for untrained labels).

        Computed from the fitted weights as scikit-learn's one-vs-rest classifier does (each label's
        logistic probability, normalised over labels), so a saved and reloaded baseline gives the same.
        """
        if self._coef is None:
            raise RuntimeError("TfidfBaseline is not fitted; call fit(texts, labels) first")
        texts = self._prepare(texts, "texts")
        out = np.zeros((len(texts), len(self.labels)))
        if not texts:
            return out
        z = np.zeros((len(texts), self._coef.shape[0]))
        for features, weights in zip(self._features, self._blocks):
            for i, text in enumerate(texts):
                index, values = features.row(text)
                z[i] += values @ weights[index]
        # The logistic function without scipy (not imported at predict time), as scipy's expit; exp overflows
        # to inf for very negative margins, which gives the right limit, 0.
        with np.errstate(over="ignore"):
            y = 1.0 / (1.0 + np.exp(-(z + self._intercept)))
        if len(self._classes) == 2:  # one binary model: its probability is the second class's
            y = np.concatenate([1 - y, y], axis=1)
        sums = y.sum(axis=1, keepdims=True)
        y = np.divide(y, sums, out=np.zeros_like(y), where=sums != 0)
        for j, name in enumerate(self._classes):
            out[:, self.labels.index(name)] = y[:, j]
        return out

    # -- saved with a model (``newsclf.artifact``): JSON for the settings and vocabularies, safetensors for
    # the numbers, so a colleague can read it and loading it runs no code (unlike a pickle).
    def save(self, folder: str | Path) -> None:
        """Write ``baseline.json`` and ``baseline.safetensors`` into ``folder``."""
        from safetensors.numpy import save_file

        if self._coef is None:
            raise RuntimeError("TfidfBaseline is not fitted; call fit(texts, labels) first")
        folder = Path(folder)
        vocabularies = [features.terms() for features in self._features]
        settings = {
            "format": BASELINE_FORMAT, "labels": self.labels, "classes": self._classes,
            "seed": self.seed, "max_chars": self.max_chars, "C": self.C,
            "words": vocabularies[0], "chars": vocabularies[1],
        }
        (folder / BASELINE_FILES[0]).write_text(json.dumps(settings, ensure_ascii=False), encoding="utf-8")
        save_file(
            {"words_idf": self._features[0].idf.astype(np.float32), "chars_idf": self._features[1].idf.astype(np.float32),
             "coef": self._coef, "intercept": self._intercept},
            str(folder / BASELINE_FILES[1]),
        )

    @classmethod
    def load(cls, folder: str | Path) -> TfidfBaseline:
        """A baseline written by :meth:`save`; ValueError names the file and what is wrong with it."""
        from safetensors.numpy import load_file

        folder = Path(folder)
        settings_path, weights_path = (folder / name for name in BASELINE_FILES)
        absent = [p.name for p in (settings_path, weights_path) if not p.is_file()]
        if absent:
            raise ValueError(f"missing {', '.join(absent)}")
        try:
            settings = json.loads(settings_path.read_text(encoding="utf-8"))
            arrays = load_file(str(weights_path))
        except Exception as err:  # noqa: BLE001 - JSON, UTF-8 and safetensors errors alike mean a broken file
            raise ValueError(f"cannot read the saved baseline ({type(err).__name__}: {err})") from None
        if not isinstance(settings, dict) or settings.get("format") != BASELINE_FORMAT:
            raise ValueError(f"{settings_path.name} is not a format-{BASELINE_FORMAT} baseline")
        base = cls(settings["labels"], seed=settings["seed"], max_chars=settings["max_chars"], C=settings["C"])
        base._classes = list(settings["classes"])
        base.trained_labels_ = [lab for lab in base.labels if lab in base._classes]
        rows = 1 if len(base._classes) == 2 else len(base._classes)
        width = len(settings["words"]) + len(settings["chars"])
        expected = {"words_idf": (len(settings["words"]),), "chars_idf": (len(settings["chars"]),),
                    "coef": (rows, width), "intercept": (rows,)}
        found = {k: tuple(arrays[k].shape) if k in arrays else None for k in expected}
        if found != expected:
            raise ValueError(f"{weights_path.name} does not match {settings_path.name}: shapes {found}, expected {expected}")
        base._features = [_Features(kind, settings[kind], arrays[f"{kind}_idf"]) for kind in ("words", "chars")]
        base._coef, base._intercept = arrays["coef"], arrays["intercept"]
        base._split_weights()
        return base

    def predict(self, texts: Sequence[str]) -> list[str]:
        """The most probable label name for each text."""
        proba = self.predict_proba(texts)
        return [self.labels[i] for i in proba.argmax(axis=1)]


def evaluate_baseline_on(
    train_texts: Sequence[str],
    train_labels: Sequence[str],
    eval_texts: Sequence[str],
    eval_labels: Sequence[str],
    labels: Sequence[str],
    *,
    seed: int = 0,
) -> dict[str, Any]:
    """Fit the baseline on the training data and score it on the evaluation data.

    Returns ``{"metrics": compute_metrics(...), "predictions": [names], "proba": array, "fit_seconds": s}``.
    """
    import time

    from newsclf.metrics import compute_metrics

    start = time.perf_counter()
    model = TfidfBaseline(labels, seed=seed).fit(train_texts, train_labels)
    fit_seconds = time.perf_counter() - start
    proba = model.predict_proba(eval_texts)
    predictions = [model.labels[i] for i in proba.argmax(axis=1)]
    return {
        "metrics": compute_metrics(list(eval_labels), predictions, list(labels)),
        "predictions": predictions,
        "proba": proba,
        "fit_seconds": fit_seconds,
    }


__all__ = ["TfidfBaseline", "article_texts", "evaluate_baseline_on"]
