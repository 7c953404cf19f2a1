"""Tagging new articles: ``predict``, ``load`` and the ``Classifier`` they share.

A ``Classifier`` wraps a saved model folder: the Hugging Face model and tokenizer plus newsclf's metadata
(labels, the input-building choice, the calibration temperature and the abstain threshold). Inputs are
built by :func:`newsclf.inputs.encode_article`, the same function training used.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from newsclf.inputs import encode_article, pool_chunk_logits

META_FILE = "newsclf.json"
DEFAULT_MODEL_DIR = Path("runs") / "default" / "model"
Item = str | dict
PRECISIONS = ("auto", "fp32", "bf16", "int8")


def cpu_has_bf16() -> bool:
    """Whether this CPU runs bf16 matrix work natively (AVX-512 BF16 or AMX); else bf16 is emulated and slow."""
    import torch

    cpu = torch.cpu
    return bool(getattr(cpu, "_is_avx512_bf16_supported", lambda: False)() or getattr(cpu, "_is_amx_tile_supported", lambda: False)())


def parse_item(item: Any, index: int | None = None) -> tuple[str, str]:
    """(title, text) of one input item; a ``str`` carries its title on the first line."""
    where = f"item {index}: " if index is not None else ""
    if isinstance(item, str):
        title, _, text = item.strip().partition("\n")
        if not item.strip():
            raise ValueError(f"{where}the article text is empty or whitespace; pass the article's title and body")
        return title.strip(), text.strip()
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
        return title.strip(), text.strip()
    raise TypeError(
        f"{where}expected an article as a str (title on the first line) or a dict with 'title' and 'text', "
        f"found {type(item).__name__}"
    )


class Classifier:
    """A loaded newsclf model. Thread-safe: torch inference holds no per-call state on the module."""

    def __init__(
        self, model: Any, tokenizer: Any, meta: dict[str, Any], path: Path | None = None, precision: str = "fp32"
    ):
        if precision not in PRECISIONS:
            raise ValueError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
        if precision == "auto":
            precision = "bf16" if cpu_has_bf16() else "fp32"
        import torch

        from newsclf.modeling import MeanPoolShortcut, has_mean_pool_layer

        shortcut = has_mean_pool_layer(model)
        if precision == "bf16":
            # Weights stored in bf16 (not autocast): no per-call casts, half the memory traffic. Measured on
            # our reference model: same labels as fp32 on the dev set (scripts/bench.py predict).
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
        self.tokenizer = tokenizer
        self.meta = meta
        self.path = path
        self.labels: list[str] = [model.config.id2label[i] for i in range(model.config.num_labels)]
        self.temperature = float(meta.get("temperature", 1.0))
        self.abstain_threshold = float(meta.get("abstain_threshold") or 0.0)
        self._lock = threading.Lock()

    @classmethod
    def from_dir(cls, path: str | Path, precision: str = "auto") -> Classifier:
        """Load a model folder written by ``python scripts/train.py``.

        ``precision``: ``fp32``; ``bf16`` (bf16 weights, packed oneDNN linears and blocked CPU attention:
        3.4-3.9x our fp32 path on CPUs with AVX-512 BF16, predictions within a measured tolerance, see
        ``scripts/bench.py predict``);
        ``int8`` (dynamic quantisation of the linear layers); ``auto`` = bf16 where the CPU supports it, else
        fp32.
        """
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(
                f"no model folder at {path}; train one with `python scripts/train.py` or pass model=<folder>"
            )
        meta_path = path / META_FILE
        if not meta_path.exists():
            raise ValueError(
                f"{path} has no {META_FILE}: it is not a newsclf model folder (newsclf needs its metadata: "
                "labels, input mode, calibration); train with `python scripts/train.py`"
            )
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{meta_path} is not valid JSON ({err}); re-train or restore the file") from err
        model = AutoModelForSequenceClassification.from_pretrained(path)
        tokenizer = AutoTokenizer.from_pretrained(path)
        return cls(model, tokenizer, meta, path, precision=precision)

    # -- core -------------------------------------------------------------------------------------
    def encode(self, title: str, text: str) -> list[list[int]]:
        """Model inputs for one article, exactly as training built them."""
        return encode_article(
            self.tokenizer,
            title,
            text,
            mode=self.meta.get("input_mode", "head"),
            max_length=int(self.meta.get("max_length", 256)),
            max_chunks=int(self.meta.get("max_chunks", 4)),
        )

    def logits(self, articles: Sequence[tuple[str, str]], batch_size: int = 16) -> np.ndarray:
        """Uncalibrated article-level logits, shape (n, labels); chunk logits are averaged per article."""
        import torch

        rows: list[list[int]] = []
        owners: list[int] = []
        for i, (title, text) in enumerate(articles):
            for ids in self.encode(title, text):
                rows.append(ids)
                owners.append(i)
        out = np.zeros((len(rows), len(self.labels)), dtype=np.float32)
        # Sorting by length keeps padding (wasted compute) small inside each batch.
        order = sorted(range(len(rows)), key=lambda r: len(rows[r]))
        pad = self.tokenizer.pad_token_id or 0
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                width = max(len(rows[r]) for r in idx)
                ids = torch.full((len(idx), width), pad, dtype=torch.long)
                mask = torch.zeros((len(idx), width), dtype=torch.long)
                for j, r in enumerate(idx):
                    ids[j, : len(rows[r])] = torch.tensor(rows[r])
                    mask[j, : len(rows[r])] = 1
                if self._forward is not None:
                    logits = self._forward(ids, mask)
                else:
                    logits = self.model(input_ids=ids, attention_mask=mask).logits
                out[idx] = logits.float().numpy()
        return pool_chunk_logits(out, owners, len(articles)) if articles else np.zeros((0, len(self.labels)))

    def probabilities(self, articles: Sequence[tuple[str, str]], batch_size: int = 16) -> np.ndarray:
        """Calibrated probabilities: softmax of logits divided by the fitted temperature."""
        z = self.logits(articles, batch_size) / self.temperature
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    # -- public -----------------------------------------------------------------------------------
    def predict(
        self,
        item_or_items: Item | Sequence[Item],
        *,
        top_k: int = 1,
        threshold: float | None = None,
        explain: bool = False,
        batch_size: int = 16,
    ) -> dict | list[dict]:
        """Label one article (``str``/``dict`` → one result) or many (list → list, same order)."""
        single = isinstance(item_or_items, (str, dict))
        if not single and not isinstance(item_or_items, (list, tuple)):
            parse_item(item_or_items)  # raises the TypeError that names what an item may be
        items = [item_or_items] if single else list(item_or_items)
        articles = [parse_item(it, None if single else i) for i, it in enumerate(items)]
        if top_k < 1 or top_k > len(self.labels):
            raise ValueError(f"top_k must be between 1 and {len(self.labels)}, got {top_k}")
        thr = self.abstain_threshold if threshold is None else float(threshold)
        with self._lock:
            probs = self.probabilities(articles, batch_size)
        results = []
        for p in probs:
            order = np.argsort(-p)
            best = int(order[0])
            abstained = bool(p[best] < thr)
            result = {
                "label": "other" if abstained and "other" in self.labels else self.labels[best],
                "score": float(p[best]),
                "scores": {lab: float(p[i]) for i, lab in enumerate(self.labels)},
                "abstained": abstained,
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
    """``$NEWSCLF_MODEL`` if set, else the folder ``python scripts/train.py`` writes by default."""
    return Path(os.environ.get("NEWSCLF_MODEL") or DEFAULT_MODEL_DIR)


def load(path: str | Path | None = None, precision: str = "auto") -> Classifier:
    """Load (once per process, then shared) the model folder at ``path`` (default: see default_model_path)."""
    p = Path(path) if path is not None else default_model_path()
    key = f"{p.resolve()}|{precision}"
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = Classifier.from_dir(p, precision=precision)
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
    ``text``; or a list of those. One item gives one result, a list gives a list in the same order. A result
    is ``{"label", "score", "scores", "abstained"}`` (+ ``"keywords"`` with ``explain=True``): ``score`` is the
    calibrated probability of ``label``; below the model's abstain threshold (or ``threshold``) the result
    is ``abstained`` and labelled ``other``.
    """
    clf = model if isinstance(model, Classifier) else load(model)
    return clf.predict(item_or_items, top_k=top_k, threshold=threshold, explain=explain, batch_size=batch_size)
