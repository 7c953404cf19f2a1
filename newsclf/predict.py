"""Tagging new articles: ``predict``, ``load`` and the ``Classifier`` they share.

A ``Classifier`` wraps a saved model folder: the Hugging Face model and tokenizer plus newsclf's metadata
(labels, the input-building choice, the calibration temperature and the abstain threshold). Inputs are
built by :func:`newsclf.inputs.encode_article`, the same function training used.
"""

from __future__ import annotations

import math
import numbers
import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from newsclf.artifact import META_FILE  # noqa: E402,F401  (re-exported: older code imports it from here)
from newsclf.inputs import encode_articles, pad_rows, pool_chunk_logits

DEFAULT_MODEL_DIR = Path("runs") / "default" / "model"
Item = str | dict
PRECISIONS = ("auto", "fp32", "bf16", "int8")
# "auto": OpenVINO when the newsclf[openvino] extra is installed and precision is "auto", else PyTorch.
BACKENDS = ("auto", "torch", "openvino")


def cpu_has_bf16() -> bool:
    """Whether this CPU runs bf16 matrix work natively (AVX-512 BF16 or AMX); else bf16 is emulated and slow."""
    import torch

    cpu = torch.cpu
    return bool(getattr(cpu, "_is_avx512_bf16_supported", lambda: False)() or getattr(cpu, "_is_amx_tile_supported", lambda: False)())


# A lone surrogate (U+D800..U+DFFF) is legal in a Python str and in JSON ("\ud83d", half an emoji cut by a
# byte-limited field) but not in UTF-8, so the Rust tokenizer refuses the text.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _clean_surrogates(s: str) -> str:
    """``s`` with each lone surrogate replaced by U+FFFD; a valid high+low pair becomes the character it encodes."""
    if not _SURROGATE.search(s):
        return s
    return s.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def parse_item(item: Any, index: int | None = None) -> tuple[str, str]:
    """(title, text) of one input item; a ``str`` carries its title on the first line. Both are cleaned as
    files are (:func:`newsclf.io.clean_text`: paragraph indents, blank lines and CRs are not content).

    Lone surrogate characters are replaced by U+FFFD (see ``_SURROGATE``) so that any str can be tokenised.
    """
    from newsclf.io import clean_text, clean_title

    where = f"item {index}: " if index is not None else ""
    if isinstance(item, str):
        item = clean_text(_clean_surrogates(item))
        if not item.strip():
            raise ValueError(f"{where}the article text is empty or whitespace; pass the article's title and body")
        title, _, text = item.partition("\n")
        return clean_title(title), text
    if isinstance(item, dict):
        if "text" not in item and "title" not in item:
            raise ValueError(
                f"{where}a dict item needs a 'text' (and ideally a 'title') key; found keys {sorted(item)}"
            )
        title, text = item.get("title") or "", item.get("text") or ""
        if not isinstance(title, str) or not isinstance(text, str):
            raise TypeError(f"{where}'title' and 'text' must be strings, found {type(title).__name__}/{type(text).__name__}")
        if not (title.strip() or text.strip()):
            raise ValueError(f"{where}the article's title and text are both empty; pass some text to classify")
        # Cleaned as load_articles cleans files, so an article scores the same from a dict as from a file.
        return clean_title(_clean_surrogates(title)), clean_text(_clean_surrogates(text))
    raise TypeError(
        f"{where}expected an article as a str (title on the first line) or a dict with 'title' and 'text', "
        f"found {type(item).__name__}"
    )


# -- is it Chinese text? -------------------------------------------------------------------------
# Han ideographs: CJK Unified (U+4E00..9FFF), extension A (U+3400..4DBF), compatibility ideographs
# (U+F900..FAFF) and the supplementary planes' extensions B..H and compatibility supplement.
_CJK = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
# Letters of any script (CJK included): \w minus digits and underscore.
_LETTER = re.compile(r"[^\W\d_]")
# URLs and e-mail addresses are script-neutral boilerplate (Xinwen Lianbo items end in a "[查看原文](https://…)"
# link); they are left out of the letter count. ASCII only, so Chinese text right after a link is kept.
_URL_OR_MAIL = re.compile(r"(?:https?://|www\.)[\x21-\x7e]+|[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
# Fewer Han characters than this and the input is not a news article the model can read: in shared/corpus
# (20,096 People's Daily and Xinwen Lianbo items) only bodiless stubs ("广告", "图表", "undefined") fall
# below 10, and the gold dev set's shortest article has 72. A bare headline of under 10 characters abstains.
MIN_CJK_CHARS = 10
# Han characters as a share of all letters (digits, punctuation and links do not count against it). Every
# article of shared/corpus has at least 0.8 (Chinese news quotes GDP, 5G, RCEP, ...); English with a few
# Chinese names is near 0 and Japanese prose, kanji among kana, mostly well under 0.6.
MIN_CJK_SHARE = 0.6


def not_chinese_reason(title: str, text: str) -> str | None:
    """Why ``title`` + ``text`` is not Chinese news text the model can label, or None when it is.

    Too few Han characters (< MIN_CJK_CHARS), or Han characters under MIN_CJK_SHARE of the letters.
    """
    s = _URL_OR_MAIL.sub(" ", f"{title}\n{text}")
    cjk = len(s) - len(_CJK.sub("", s))
    if cjk < MIN_CJK_CHARS:
        return f"too few Chinese characters (found {cjk}, need at least {MIN_CJK_CHARS}): not Chinese news text"
    letters = len(s) - len(_LETTER.sub("", s))
    if cjk < MIN_CJK_SHARE * letters:
        return (
            f"Chinese characters are only {cjk / letters:.0%} of the letters ({cjk} of {letters}, need at least "
            f"{MIN_CJK_SHARE:.0%}): not Chinese news text"
        )
    return None


def _below(score: float, threshold: float) -> str:
    """The abstain reason for a top score under the threshold, with enough digits to tell the two apart."""
    for digits in range(2, 7):
        a, b = f"{score:.{digits}f}", f"{threshold:.{digits}f}"
        if a != b:
            break
    return f"top score {a} below the abstain threshold {b}"


# -- argument checks -----------------------------------------------------------------------------
def _is_int(x: Any) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, (bool, np.bool_))


def check_predict_options(
    *, top_k: Any, threshold: Any, explain: Any, batch_size: Any, n_labels: int | None = None
) -> None:
    """Raise TypeError/ValueError, saying what was expected, what was found and the fix, for a bad option.

    ``n_labels`` None skips the upper bound of ``top_k`` (the model is not loaded yet).
    """
    top = f"between 1 and {n_labels} (the model's number of labels)" if n_labels else ">= 1"
    if not _is_int(top_k):
        raise TypeError(f"top_k: expected an int {top}, found {type(top_k).__name__} {top_k!r}; pass e.g. top_k=3")
    if top_k < 1 or (n_labels is not None and top_k > n_labels):
        fix = f"top_k={n_labels} ranks every label" if n_labels else "top_k=1 is the default"
        raise ValueError(f"top_k: expected an int {top}, found {top_k}; {fix}")
    if threshold is not None:
        if not isinstance(threshold, numbers.Real) or isinstance(threshold, (bool, np.bool_)):
            hint = f"threshold={float(threshold)}" if isinstance(threshold, str) and _floatable(threshold) else "threshold=0.5"
            raise TypeError(
                f"threshold: expected None (the model's abstain threshold) or a number in [0, 1], found "
                f"{type(threshold).__name__} {threshold!r}; pass a number, e.g. {hint}"
            )
        # Compare before math.isfinite: a huge int (valid JSON) would overflow the float conversion.
        if not (0 <= threshold <= 1 and math.isfinite(threshold)):
            raise ValueError(
                f"threshold: expected None (the model's abstain threshold) or a number in [0, 1] (the top score "
                f"below which the result abstains), found {threshold!r}; 0 never abstains on score, 1 abstains below a certain answer"
            )
    if not isinstance(explain, (bool, np.bool_)):
        raise TypeError(f"explain: expected True or False, found {type(explain).__name__} {explain!r}; pass explain=True")
    if not _is_int(batch_size) or batch_size < 1:
        what = type(batch_size).__name__ if not _is_int(batch_size) else "int"
        raise (ValueError if _is_int(batch_size) else TypeError)(
            f"batch_size: expected an int >= 1 (chunks per forward pass), found {what} {batch_size!r}; "
            "the default batch_size=16 suits CPUs"
        )


def _floatable(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


class Classifier:
    """A loaded newsclf model. Thread-safe: torch inference holds no per-call state on the module."""

    def __init__(
        self, model: Any, tokenizer: Any, meta: dict[str, Any], path: Path | None = None, precision: str = "fp32",
        runtime: Any = None, baseline: Any = None,
    ):
        """``model``: the torch model, or None with ``runtime``, a callable (ids, mask) -> logits on numpy
        arrays that already runs at ``precision`` (the OpenVINO backend). ``baseline``: the fitted TF-IDF
        baseline that ``meta["blend"]`` weighs into the probabilities (required when that is set)."""
        if precision not in PRECISIONS:
            raise ValueError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
        self.tokenizer = tokenizer
        self.meta = meta
        self.path = path
        self.temperature = float(meta.get("temperature", 1.0))
        self.abstain_threshold = float(meta.get("abstain_threshold") or 0.0)
        self.blend = meta.get("blend")
        if self.blend is not None and baseline is None:
            raise ValueError("the metadata blends in the TF-IDF baseline ('blend'), so pass the fitted baseline= too")
        self.baseline = baseline if self.blend is not None else None
        self._lock = threading.Lock()
        self._lock_pool = threading.Lock()
        self._pool: Any = None
        if runtime is not None:
            self.backend, self.precision, self.model, self._forward = "openvino", precision, None, None
            self._runtime = runtime
            # int8 with an fp32 fallback: a blended model rechecks on the blend's margin (probability_parts).
            self._recheck_later = getattr(runtime, "fallback", None) is not None
            self.labels: list[str] = list(meta["labels"])
            return
        self._recheck_later = False
        self.backend, self._runtime = "torch", None
        if precision == "auto":
            precision = "bf16" if cpu_has_bf16() else "fp32"
        import torch

        from newsclf.modeling import MeanPoolShortcut, has_mean_pool_layer

        shortcut = has_mean_pool_layer(model)
        if precision == "bf16":
            # Weights stored in bf16 (not autocast): no per-call casts, half the memory traffic. Measured on
            # our reference model: same labels as fp32 on the dev set (`newsclf bench predict`).
            model = model.to(dtype=torch.bfloat16)
            if hasattr(model, "set_attn_implementation"):
                from newsclf import cpu_attention

                # bf16 only: measured faster than the fused SDPA kernel there (see newsclf/cpu_attention.py).
                model.set_attn_implementation(cpu_attention.register())
            from newsclf.cpu_linear import pack_linears

            # Packed oneDNN weights, GELU fused into the feed-forward matmul (see newsclf/cpu_linear.py).
            pack_linears(model)
        if precision == "int8":
            model = torch.ao.quantization.quantize_dynamic(model.float(), {torch.nn.Linear}, dtype=torch.qint8)
        self.precision = precision
        self.model = model.eval()
        # Same logits as the stock forward, ~8% less compute; other heads run the stock forward.
        self._forward = MeanPoolShortcut(model).eval() if shortcut else None
        self.labels = [model.config.id2label[i] for i in range(model.config.num_labels)]

    def __getstate__(self) -> dict[str, Any]:
        # Locks and the baseline's helper thread belong to one process: a copy sent to another one (datasets'
        # map with num_proc, multiprocessing) gets fresh ones.
        state = dict(self.__dict__)
        for name in ("_lock", "_lock_pool", "_pool"):
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock, self._lock_pool, self._pool = threading.Lock(), threading.Lock(), None

    @classmethod
    def from_dir(cls, path: str | Path, precision: str = "auto", backend: str = "auto") -> Classifier:
        """Load a model folder written by ``newsclf train`` (checked by :mod:`newsclf.artifact`).

        ``precision``: ``fp32``; ``bf16`` (bf16 weights, packed oneDNN linears and blocked CPU attention:
        3.4-3.9x our fp32 path on CPUs with AVX-512 BF16, predictions within a measured tolerance, see
        ``newsclf bench predict``);
        ``int8`` (dynamic quantisation of the linear layers); ``auto`` = the fastest path that agrees with
        fp32: with the ``newsclf[openvino]`` extra, OpenVINO int8 (checked against fp32 at conversion, see
        :mod:`newsclf.ov_backend`) or bf16; without it, PyTorch bf16 where the CPU supports it, else fp32.

        ``backend``: ``auto`` (OpenVINO for ``precision="auto"`` when installed, else PyTorch), ``torch`` or
        ``openvino`` (any precision; the model is converted once and cached by its weights' hash).
        """
        from newsclf import artifact

        if precision not in PRECISIONS:  # before the (slow) load
            raise ValueError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
        if backend not in BACKENDS:
            raise ValueError(f"backend {backend!r} is not one of {', '.join(BACKENDS)}; 'auto' picks the fastest installed")
        from newsclf import ov_backend

        if backend == "openvino" or (backend == "auto" and precision == "auto" and ov_backend.missing_reason() is None):
            meta = artifact.read_meta(path)
            tokenizer = artifact.load_tokenizer(path)
            try:
                runtime, chosen, _ = ov_backend.runtime(Path(path), precision, meta.max_length)
            except artifact.ModelFolderError:
                raise
            except ov_backend.OpenVINOUnavailable as err:
                if backend == "openvino":
                    raise
                ov_backend.log.info("OpenVINO not used: %s", err)
            except Exception as err:  # noqa: BLE001 - an unwritable cache, a graph OpenVINO cannot convert, ...
                if backend == "openvino":
                    raise ov_backend.OpenVINOUnavailable(f"cannot run {path} on OpenVINO: {err}") from err
                ov_backend.log.warning("OpenVINO failed (%s: %s); running on PyTorch instead", type(err).__name__, err)
            else:
                return cls(None, tokenizer, meta.to_dict(), Path(path), precision=chosen, runtime=runtime,
                           baseline=artifact.load_baseline(path, meta))
        model, tokenizer, meta = artifact.load(path)
        return cls(model, tokenizer, meta.to_dict(), Path(path), precision=precision,
                   baseline=artifact.load_baseline(path, meta))

    # -- core -------------------------------------------------------------------------------------
    def encode(self, title: str, text: str) -> list[list[int]]:
        """Model inputs for one article, exactly as training built them."""
        return self.encode_many([(title, text)])[0]

    def encode_many(self, articles: Sequence[tuple[str, str]]) -> list[list[list[int]]]:
        """Model inputs for each article (one tokenizer call for all of them)."""
        return encode_articles(
            self.tokenizer,
            articles,
            mode=self.meta.get("input_mode", "head"),
            max_length=int(self.meta.get("max_length", 256)),
            max_chunks=int(self.meta.get("max_chunks", 4)),
        )

    def logits(self, articles: Sequence[tuple[str, str]], batch_size: int = 16, recheck: str = "thin") -> np.ndarray:
        """Uncalibrated article-level logits, shape (n, labels); chunk logits are averaged per article.

        ``recheck`` matters only on OpenVINO int8 (see :class:`newsclf.ov_backend.OpenVINOForward`): which
        rows run again on the fp32 graph."""
        return self._logits(articles, batch_size, recheck)[0]

    def _logits(
        self, articles: Sequence[tuple[str, str]], batch_size: int = 16, recheck: str = "thin",
        encoded: list[list[list[int]]] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(logits, on_fallback)``: :meth:`logits` (of ``encoded``, this method's ``encode_many`` of the
        articles, when given) and, per article, whether OpenVINO int8 already ran all its rows on the fp32
        graph (:meth:`newsclf.ov_backend.OpenVINOForward.on_fallback`), which a later recheck then skips."""
        import contextlib

        if self._runtime is None:
            import torch

        rows: list[list[int]] = []
        owners: list[int] = []
        for i, article_rows in enumerate(self.encode_many(articles) if encoded is None else encoded):
            for ids in article_rows:
                rows.append(ids)
                owners.append(i)
        out = np.zeros((len(rows), len(self.labels)), dtype=np.float32)
        row_on_fallback = np.zeros(len(rows), dtype=bool)
        # Sorting by length keeps padding (wasted compute) small inside each batch.
        order = sorted(range(len(rows)), key=lambda r: len(rows[r]))
        pad = self.tokenizer.pad_token_id or 0
        with torch.inference_mode() if self._runtime is None else contextlib.nullcontext():
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                ids, mask = pad_rows([rows[r] for r in idx], pad)
                if self._runtime is not None:
                    out[idx] = self._runtime(ids, mask, recheck) if self._recheck_later else self._runtime(ids, mask)
                    row_on_fallback[idx] = self._recheck_later and self._runtime.on_fallback(ids)
                    continue
                t_ids, t_mask = torch.from_numpy(ids), torch.from_numpy(mask)
                if self._forward is not None:
                    logits = self._forward(t_ids, t_mask)
                else:
                    logits = self.model(input_ids=t_ids, attention_mask=t_mask).logits
                out[idx] = logits.float().numpy()
        if not articles:
            return np.zeros((0, len(self.labels))), np.zeros(0, dtype=bool)
        on_fallback = np.ones(len(articles), dtype=bool)
        np.logical_and.at(on_fallback, owners, row_on_fallback)
        return pool_chunk_logits(out, owners, len(articles)), on_fallback

    def probabilities(self, articles: Sequence[tuple[str, str]], batch_size: int = 16) -> np.ndarray:
        """Calibrated probabilities: softmax of logits divided by the fitted temperature; for a model that
        blends in the TF-IDF baseline, of the blend (:func:`newsclf.calibration.blend_logits`)."""
        return self.probability_parts(articles, batch_size)[0]

    def probability_parts(
        self, articles: Sequence[tuple[str, str]], batch_size: int = 16, exact_alone: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """``(probabilities, the transformer's own calibrated probabilities or None without a blend)``.

        On OpenVINO int8 the second part is int8's except where the blend's margin was thin; with
        ``exact_alone`` (what ``evaluate`` reports) articles whose own int8 margin is thin run on fp32 too,
        as they would for the transformer alone."""
        from newsclf.calibration import softmax

        if self.baseline is None or not len(articles):
            return softmax(self.logits(articles, batch_size), self.temperature), None
        from newsclf.baseline import article_texts
        from newsclf.calibration import blend_logits

        # The baseline (jieba, mostly Python) runs on a helper thread while the transformer runs here: both
        # runtimes release the GIL in their kernels, so the baseline's ~2 ms per article mostly overlaps.
        with self._lock_pool:
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="newsclf-baseline")
        # Tokenised before the baseline starts: both hold the GIL in their Python parts, and interleaved
        # tokenising one article took 1.6 ms (p95 3.0) against 1.1 after (default model, dev articles); end
        # to end the difference stayed within the machine's run-to-run noise (~1 ms).
        encoded = self.encode_many(articles)
        pending = self._pool.submit(self.baseline.predict_proba, article_texts(articles))
        later = self._recheck_later
        logits, on_fallback = self._logits(articles, batch_size, "none" if later else "thin", encoded)
        base = pending.result()
        blended = blend_logits(logits, self.temperature, base, self.blend)
        if later:
            # int8 moves a row's top-two logit margin by less than the runtime's recheck_margin (on 99% of
            # its check articles), which moves the blend's margin by (model weight / temperature) times that.
            # So only articles whose *blended* margin is that thin can change label, and only they run
            # again on the fp32 graph: the baseline settles most articles int8 alone would recheck.
            from newsclf.ov_backend import margins

            bound = self.blend["model"] / self.temperature * self._runtime.recheck_margin
            thin = np.flatnonzero((margins(blended) < bound) & ~on_fallback)
            if len(thin):
                # The rows tokenised above: a second tokenizer call cost a rechecked single article ~1 ms.
                logits[thin] = self._logits([articles[i] for i in thin], batch_size, "all", [encoded[i] for i in thin])[0]
                blended[thin] = blend_logits(logits[thin], self.temperature, base[thin], self.blend)
            if exact_alone:
                own = np.setdiff1d(np.flatnonzero((margins(logits) < self._runtime.recheck_margin) & ~on_fallback), thin)
                if len(own):
                    logits = logits.copy()
                    logits[own] = self._logits([articles[i] for i in own], batch_size, "all", [encoded[i] for i in own])[0]
        return softmax(blended, 1.0), softmax(logits, self.temperature)

    # -- public -----------------------------------------------------------------------------------
    def warm_up(self, batch_size: int = 16) -> None:
        """Run made-up articles once, so that no real call pays for compiling (OpenVINO compiles each of its
        graphs on first use, ~0.5-1 s each) or for starting the baseline's thread. ``batch_size``: the largest
        call to prepare for; 1 compiles only what single articles use (two graphs instead of five). ``newsclf
        serve`` calls it with its batch size before it reports ready; a script may too."""
        check_predict_options(top_k=1, threshold=None, explain=False, batch_size=batch_size, n_labels=len(self.labels))
        if self._runtime is not None:
            self._runtime.warm_up(batch_size)
        self.probabilities([("预热", "市政府召开会议研究部署安全生产和文化惠民工作。")])

    def predict(
        self,
        item_or_items: Item | Sequence[Item],
        *,
        top_k: int = 1,
        threshold: float | None = None,
        explain: bool = False,
        batch_size: int = 16,
    ) -> dict | list[dict]:
        """Label one article (``str``/``dict`` → one result) or many (list → list, same order).

        See :func:`newsclf.predict.predict` for the options and the result fields.
        """
        check_predict_options(
            top_k=top_k, threshold=threshold, explain=explain, batch_size=batch_size, n_labels=len(self.labels)
        )
        single = isinstance(item_or_items, (str, dict))
        if not single and not isinstance(item_or_items, (list, tuple)):
            parse_item(item_or_items)  # raises the TypeError that names what an item may be
        items = [item_or_items] if single else list(item_or_items)
        if not items:
            return []
        articles = [parse_item(it, None if single else i) for i, it in enumerate(items)]
        thr = self.abstain_threshold if threshold is None else float(threshold)
        with self._lock:
            probs = self.probabilities(articles, batch_size)
        results = []
        for p, (title, text) in zip(probs, articles):
            order = np.argsort(-p)
            best = int(order[0])
            # Every article goes through the model, so its scores are shown; text that is not Chinese news
            # abstains whatever the scores, and a low top score abstains as before.
            reasons = [r for r in (not_chinese_reason(title, text), _below(p[best], thr) if p[best] < thr else None) if r]
            abstained = bool(reasons)
            result = {
                "label": "other" if abstained and "other" in self.labels else self.labels[best],
                "score": float(p[best]),
                "scores": {lab: float(p[i]) for i, lab in enumerate(self.labels)},
                "abstained": abstained,
                "reason": "; ".join(reasons) if reasons else None,
            }
            if top_k > 1:
                result["top_k"] = [(self.labels[int(i)], float(p[int(i)])) for i in order[:top_k]]
            results.append(result)
        if explain:
            from newsclf.explain import explain_keywords

            for result, article, p in zip(results, articles, probs):
                result["keywords"] = explain_keywords(self, article, self.labels.index(result["label"]), base=p)
        return results[0] if single else results


_CACHE: dict[str, Classifier] = {}
_CACHE_LOCK = threading.Lock()


def default_model_path() -> Path:
    """``$NEWSCLF_MODEL`` if set, else the folder ``newsclf train`` writes by default."""
    return Path(os.environ.get("NEWSCLF_MODEL") or DEFAULT_MODEL_DIR)


def load(path: str | Path | None = None, precision: str = "auto", backend: str = "auto") -> Classifier:
    """Load (once per process, then shared) the model folder at ``path`` (default: see default_model_path).

    ``precision`` and ``backend``: see :meth:`Classifier.from_dir`.
    """
    p = Path(path) if path is not None else default_model_path()
    key = f"{p.resolve()}|{precision}|{backend}"
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = Classifier.from_dir(p, precision=precision, backend=backend)
        return _CACHE[key]


def predict(
    item_or_items: Item | Sequence[Item],
    *,
    model: str | Path | Classifier | None = None,
    top_k: int = 1,
    threshold: float | None = None,
    explain: bool = False,
    batch_size: int = 16,
) -> dict | list[dict]:
    """Label articles by section.

    ``item_or_items``: a ``str`` (title on the first line, then the body) or a dict with ``title`` and
    ``text``; or a list of those. One item gives one result, a list gives a list in the same order, an empty
    list gives ``[]``. Lone surrogate characters (e.g. ``"\\ud83d"`` from JSON) are replaced by U+FFFD.

    Options (a wrong type or value raises TypeError/ValueError naming the expected value and the fix):
    ``top_k``: an int from 1 to the number of labels; above 1 the result gets ``"top_k"``, the best
    ``top_k`` (label, score) pairs. ``threshold``: None (the model's abstain threshold, chosen at training
    time) or a number in [0, 1]. ``explain``: a bool; True adds ``"keywords"``. ``batch_size``: an int >= 1.

    A result is ``{"label", "score", "scores", "abstained", "reason"}``: ``score`` is the calibrated
    probability of the model's top label and ``scores`` those of every label, always the model's. A result
    is ``abstained`` when the text is not Chinese news (fewer than ``MIN_CJK_CHARS`` Han characters, or
    Han characters under ``MIN_CJK_SHARE`` of the letters) or when ``score`` is below the threshold; then
    ``label`` is ``other`` (the top label when the model has no ``other``) and ``reason`` says why, e.g.
    ``"too few Chinese characters (found 3, need at least 10): not Chinese news text"`` or ``"top score 0.41
    below the abstain threshold 0.62"`` (both, joined by "; ", when both apply). ``reason`` is None when
    the result is not abstained; the key is always present.
    """
    # Checked before a model folder is loaded (seconds), then again by Classifier.predict with its labels.
    n_labels = len(model.labels) if isinstance(model, Classifier) else None
    check_predict_options(top_k=top_k, threshold=threshold, explain=explain, batch_size=batch_size, n_labels=n_labels)
    clf = model if isinstance(model, Classifier) else load(model)
    return clf.predict(item_or_items, top_k=top_k, threshold=threshold, explain=explain, batch_size=batch_size)
