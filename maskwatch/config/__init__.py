"""Configuration, declared once and validated: ``MASKWATCH_*`` environment over a YAML file over defaults."""

from maskwatch.config.settings import ConfigError, Settings, load_settings

__all__ = ["ConfigError", "Settings", "load_settings"]
