"""The ``tiny`` backbone: a 2-layer random BERT with a character vocabulary, for tests and smoke runs."""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from newsclf.backbones.cache import _build_cached
from newsclf.backbones.common import CONVERTER_VERSION, _save_tokenizer


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
