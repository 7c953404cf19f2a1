"""The restricted e5 vocabulary: the sentencepiece pieces Chinese news can produce."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

import numpy as np

from newsclf.backbones.e5_tokenizer import _META, _e5_tokenizer
from newsclf.backbones.e5file import E5File


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
