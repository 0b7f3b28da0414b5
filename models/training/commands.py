"""CLI commands of the classifier: ``maskwatch train`` and ``maskwatch evaluate crops``."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction, evaluate_sub: argparse._SubParsersAction) -> None:
    """Add this module's subcommands; each sets ``func(args) -> int``."""
