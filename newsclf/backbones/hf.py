"""The ``hf:`` backbone: a BERT checkpoint folder on disk, or a hub id from the local Hugging Face cache."""

from __future__ import annotations

import os
from pathlib import Path

from newsclf.backbones.common import OFFLINE_CHOICES, BackboneError


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
