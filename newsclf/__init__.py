"""newsclf: sort Chinese newspaper articles into sections (governance, party building, safety, culture, other).

The public API is small and listed in ``__all__``; ``predict`` is the one most users need::

    from newsclf import predict
    predict("市应急管理局开展安全生产隐患排查\\n……")   # -> {"label": "safety", "score": 0.97, ...}

Submodules are imported on first use so that ``import newsclf`` stays fast (torch loads only when needed).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "predict": "newsclf.predict",
    "load": "newsclf.predict",
    "Classifier": "newsclf.predict",
    "train": "newsclf.train",
    "evaluate_model": "newsclf.evaluation",
    "split_page": "newsclf.data.pages",
    "Article": "newsclf.data.pages",
    "load_articles": "newsclf.data.loaders",
    "label_articles": "newsclf.data.labeling",
    "build_dataset": "newsclf.data.splits",
    "load_config": "newsclf.config",
    "Config": "newsclf.config",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'newsclf' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
