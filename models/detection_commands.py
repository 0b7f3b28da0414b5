"""CLI commands of the detectors: ``maskwatch detect``, ``evaluate scenes`` and ``models list|fetch``."""

from __future__ import annotations

import argparse


def register(
    sub: argparse._SubParsersAction,
    evaluate_sub: argparse._SubParsersAction,
    models_sub: argparse._SubParsersAction,
) -> None:
    """Add this module's subcommands; each sets ``func(args) -> int``."""
