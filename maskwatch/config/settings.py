"""All configuration, declared once: environment (``MASKWATCH_*``) over a YAML file over defaults.

Nested fields use ``__`` in the environment, e.g. ``MASKWATCH_WORKER__MAX_BATCH=32``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from maskwatch.config.cameras import HTTP_SCHEMES, LIVE_SCHEMES, CameraConfig
from maskwatch.config.models import DEFAULT_WEIGHTS_DIR, ClassifierSettings, DetectorSettings
from maskwatch.config.stages import IngestSettings, PublisherSettings, WorkerSettings
from maskwatch.config.violations import ClipSettings, ViolationSettings
from maskwatch.core.redaction import redact_url

__all__ = [
    "DEFAULT_WEIGHTS_DIR",
    "HTTP_SCHEMES",
    "LIVE_SCHEMES",
    "CameraConfig",
    "ClassifierSettings",
    "ClipSettings",
    "ConfigError",
    "DetectorSettings",
    "IngestSettings",
    "PublisherSettings",
    "Settings",
    "ViolationSettings",
    "WorkerSettings",
    "load_settings",
]


class Settings(BaseSettings):
    """Everything a maskwatch process needs."""

    model_config = SettingsConfigDict(
        env_prefix="MASKWATCH_", env_nested_delimiter="__", extra="forbid", validate_assignment=True
    )

    redis_url: SecretStr | None = Field(
        None, description="redis://[:password@]host:port/db or unix:///path.sock"
    )
    key_prefix: str = Field(
        "maskwatch:", pattern=r"^[A-Za-z0-9_.:-]{0,64}$", description="Prefix of every Redis key"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    heartbeat_ttl_s: int = Field(15, ge=2, le=3600)
    shutdown_grace_s: float = Field(10.0, ge=0, le=600, description="Drain deadline on SIGINT/SIGTERM")
    cameras: list[CameraConfig] = Field(default_factory=list)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    publisher: PublisherSettings = Field(default_factory=PublisherSettings)
    detector: DetectorSettings = Field(default_factory=DetectorSettings)
    classifier: ClassifierSettings = Field(default_factory=ClassifierSettings)
    violations: ViolationSettings = Field(default_factory=ViolationSettings)
    clips: ClipSettings = Field(default_factory=ClipSettings)

    @model_validator(mode="after")
    def _unique_camera_ids(self) -> Settings:
        ids = [c.id for c in self.cameras]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"camera ids must be unique; repeated: {', '.join(dupes)}")
        return self

    @property
    def safe_redis_url(self) -> str:
        """The Redis URL with its password redacted."""
        return redact_url(self.redis_url.get_secret_value()) if self.redis_url else "(none)"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _YamlSource(settings_cls), file_secret_settings)


class ConfigError(Exception):
    """The configuration is invalid: ``problems`` lists each as ``path: message``."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(f"invalid configuration ({source}):\n" + "\n".join(f"  {p}" for p in problems))


_yaml_data: dict[str, Any] = {}


class _YamlSource(PydanticBaseSettingsSource):
    """Feeds the YAML file given to :func:`load_settings` (below the environment)."""

    def get_field_value(
        self, field: Any, field_name: str
    ) -> tuple[Any, str, bool]:  # pragma: no cover - unused
        return _yaml_data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_yaml_data)


def read_config_file(path: Path | str) -> dict[str, Any]:
    """Parse a YAML config file into a mapping, with errors that name the file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(str(p), [f"cannot read config file: {e.strerror or e}"]) from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise ConfigError(str(p), [f"not valid YAML: {e}"]) from None
    if not isinstance(data, dict):
        raise ConfigError(str(p), [f"top level must be a mapping, got {type(data).__name__}"])
    return data


def format_validation_error(err: ValidationError) -> list[str]:
    """One ``a.b.0.c: message`` line per invalid field; input values are never echoed (secrets)."""
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(root)"
        lines.append(f"{loc}: {e['msg']}")
    return lines


def load_settings(config_file: Path | str | None = None, **overrides: Any) -> Settings:
    """Build the settings: ``overrides`` > ``MASKWATCH_*`` env > YAML file > defaults."""
    global _yaml_data
    source = str(config_file) if config_file else "environment"
    _yaml_data = read_config_file(config_file) if config_file else {}
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as e:
        raise ConfigError(source, format_validation_error(e)) from None
    finally:
        _yaml_data = {}
