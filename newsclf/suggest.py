"""Placeholder: being written (issue 14)."""

from __future__ import annotations

import argparse


def add_subcommand(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register this module's `newsclf` subcommand (not yet)."""
