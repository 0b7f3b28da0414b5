"""The ``maskwatch`` command. Nothing imports this package; it imports every other layer."""

from maskwatch.cli.main import main

__all__ = ["main"]
