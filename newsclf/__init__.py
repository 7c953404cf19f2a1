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

# predict, load and Classifier are bound eagerly (newsclf.predict imports no torch at module level): the
# submodule shares the function's name, and importing the submodule later would otherwise leave
# `newsclf.predict` pointing at the module instead of the function.
from newsclf.predict import Classifier, load, predict  # noqa: E402, F401  (exported through __all__)

_EXPORTS = {
    "predict": "newsclf.predict",
    "load": "newsclf.predict",
    "Classifier": "newsclf.predict",
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
    if name in _EXPORTS:  # the rest load on first use
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'newsclf' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
