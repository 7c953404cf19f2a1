"""Shared fixtures. Tests that need ../shared skip with a reason when it is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The ../shared folder beside the repo, or a skip explaining its absence."""
    if not SHARED.is_dir():
        pytest.skip(f"needs ../shared beside the repo (looked for {SHARED}); CI always has it")
    return SHARED
