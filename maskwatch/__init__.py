"""maskwatch: the contracts every stage shares (settings, messages, Redis keys, CLI)."""

__version__ = "0.1.0"
