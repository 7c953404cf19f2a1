#!/usr/bin/env python3
"""Benchmarks written as JSON: `backbone`, `train`, `predict`. A thin alias for ``benchmarks.cli``. Example:

    python scripts/bench.py train --out bench/train.json
    python scripts/bench.py predict --model runs/default/model --gold ../shared/gold/dev.jsonl
"""

import sys
from pathlib import Path

# Replace the scripts/ folder on the path with the repo root: scripts/evaluate.py would otherwise
# shadow the `evaluate` package, and the repo root holds `benchmarks/` (not installed with newsclf).
sys.path[0] = str(Path(__file__).resolve().parents[1])

from benchmarks.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
