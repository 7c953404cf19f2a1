#!/usr/bin/env python3
"""Alias of `newsclf label-report`; run with --help for the options."""

import sys
from pathlib import Path

# Replace the scripts/ folder on the path with the repo root: scripts/evaluate.py would otherwise
# shadow the `evaluate` package, and the repo root lets a checkout run without installing.
sys.path[0] = str(Path(__file__).resolve().parents[1])

from newsclf.data.label_quality import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
