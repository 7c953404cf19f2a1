#!/usr/bin/env python3
"""Set up a virtual environment and run one of the project's jobs.

Needs only python3 on the machine:

    python3 dev.py train   # install, then train the default model (embedded corpus)
    python3 dev.py test    # install, then lint and run the test suite

Extra arguments after the job name go to the underlying command.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PY = VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
STAMP = VENV / ".newsclf-installed"


def run(*cmd: str | Path) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, cwd=ROOT)


def setup() -> None:
    if not PY.exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    pyproject = (ROOT / "pyproject.toml").read_bytes()
    if STAMP.exists() and STAMP.read_bytes() == pyproject:
        return
    # torch first and pinned: an unpinned resolve would fetch a multi-GB CUDA build,
    # while 2.13.0 is the CPU wheel our machines carry.
    run(PY, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    run(PY, "-m", "pip", "install", "--quiet", "torch==2.13.0")
    run(PY, "-m", "pip", "install", "--quiet", "-e", ".[dev]")
    STAMP.write_bytes(pyproject)


def main(argv: list[str]) -> int:
    jobs = {
        "train": [[PY, "scripts/train.py"]],
        "test": [[PY, "-m", "ruff", "check", "."], [PY, "-m", "pytest"]],
        "setup": [],
    }
    if not argv or argv[0] not in jobs:
        print(f"usage: python3 dev.py {{{'|'.join(jobs)}}} [extra args]", file=sys.stderr)
        return 2
    setup()
    steps = jobs[argv[0]]
    try:
        for i, step in enumerate(steps):
            extra = argv[1:] if i == len(steps) - 1 else []
            run(*step, *extra)
    except subprocess.CalledProcessError as err:
        return err.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
