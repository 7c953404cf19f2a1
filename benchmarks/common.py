"""Shared pieces of the benchmarks: machine description, the articles to run on, best-of-n timing.

Speed is measured here and written to JSON, never asserted in tests: timings on shared 2-core machines
vary too much for a pass/fail line, but a ratio taken in one run on the same articles is meaningful.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any


def machine() -> dict[str, Any]:
    """Python and torch versions, torch threads, CPU capability, the CPU's model and whether it has AMX, for
    the JSON's ``machine`` field: this project's machines have been Intel with AMX and AMD without it, and
    int8 against bf16 comes out differently on them."""
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu": _cpu_model(),
        "amx": _has_amx(),
    }


def _cpu_model(cpuinfo: str = "/proc/cpuinfo") -> str:
    try:
        lines = Path(cpuinfo).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return platform.processor() or "unknown"
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown")


def _has_amx() -> bool:
    from newsclf.ov_backend import has_amx  # reads the kernel's flags; no OpenVINO import

    return has_amx()


def articles(data: list[str] | None, n: int) -> list[dict[str, str]]:
    """``n`` articles (title, text, label) from ``data`` (default: the embedded corpus), cycled as needed."""
    from newsclf.data.loaders import load_articles

    ds = load_articles(data or ["embedded"])
    rows = [{"title": t, "text": x, "label": lab} for t, x, lab in zip(ds["title"], ds["text"], ds["label"])]
    reps = -(-n // len(rows))
    return (rows * reps)[:n]


def best_rate(run: Any, n: int, repeats: int) -> tuple[float, Any]:
    """Best articles/s of ``repeats`` calls of ``run`` (which handles ``n`` articles) and its last output."""
    best, result = 0.0, None
    for _ in range(max(1, repeats)):
        t = time.perf_counter()
        result = run()
        best = max(best, n / (time.perf_counter() - t))
    return best, result


def write_result(result: dict[str, Any], out: str | Path) -> int:
    """Write a benchmark's result as indented JSON to ``out`` (folders created), print it; exit status 0."""
    text = json.dumps(result, ensure_ascii=False, indent=2)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0
