"""Logging set-up: one format, credentials redacted from every record."""

from __future__ import annotations

import logging

from maskwatch.core.redaction import RedactingFilter


def setup_logging(level: str = "INFO") -> None:
    """Configure the root logger once; every handler redacts URL credentials."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
