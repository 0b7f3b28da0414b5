"""All configuration, declared once: overrides over ``MASKWATCH_*`` environment over a YAML file over defaults.

Nested fields use ``__`` in the environment, e.g. ``MASKWATCH_WORKER__MAX_BATCH=32``. The YAML file is
read by pydantic-settings' own :class:`~pydantic_settings.YamlConfigSettingsSource`; paths are resolved
once, here (see :mod:`maskwatch.config.paths`).
"""

from __future__ import annotations

import difflib
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    YamlConfigSettingsSource,
)

from maskwatch.config.api import ApiSettings
from maskwatch.config.cameras import HTTP_SCHEMES, LIVE_SCHEMES, CameraConfig
from maskwatch.config.models import DEPRECATED_KEYS, ClassifierSettings, DetectorSettings
from maskwatch.config.mqtt import MqttSettings
from maskwatch.config.paths import default_data_dir, resolve_path
from maskwatch.config.stages import IngestSettings, PublisherSettings, WorkerSettings
from maskwatch.config.violations import ClipSettings, ViolationSettings
from maskwatch.config.webhooks import WebhookConfig
from maskwatch.core.errors import ConfigError
from maskwatch.core.redaction import redact_url, register_secret, register_url_secrets

__all__ = [
    "HTTP_SCHEMES",
    "LIVE_SCHEMES",
    "ApiSettings",
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

log = logging.getLogger(__name__)

ENV_PREFIX = "MASKWATCH_"
NOT_SETTINGS = frozenset({"MASKWATCH_SHARED"})
"""``MASKWATCH_*`` variables that are not settings (the tests' shared data folder): never warned about."""

# Paths a config file may give relative to its own folder: (section or None, field).
_FILE_RELATIVE_PATHS = ((None, "data_dir"), ("detector", "weights_dir"), ("clips", "dir"))


class Settings(BaseSettings):
    """Everything a maskwatch process needs."""

    model_config = SettingsConfigDict(
        env_prefix="MASKWATCH_", env_nested_delimiter="__", extra="forbid", validate_assignment=True
    )

    redis_url: SecretStr | None = Field(
        None, description="redis://[:password@]host:port/db or unix:///path.sock"
    )
    redis_socket_timeout_s: float = Field(
        30.0,
        ge=1,
        le=3600,
        description="Longest a Redis command may take before the connection counts as lost",
    )
    redis_retry_max_s: float = Field(
        5.0, gt=0, le=300, description="Longest pause between pings while Redis is unreachable"
    )
    key_prefix: str = Field(
        "maskwatch:", pattern=r"^[A-Za-z0-9_.:-]{0,64}$", description="Prefix of every Redis key"
    )
    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Folder of maskwatch's files: weights/ and clips/ by default (env MASKWATCH_DATA_DIR; "
        "default /var/lib/maskwatch for root or when writable, else $XDG_DATA_HOME/maskwatch)",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    metrics_host: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_.:%-]{1,255}$",
        description="Address the /metrics endpoints listen on; default 0.0.0.0 (all interfaces) for the stage "
        "commands (containers), 127.0.0.1 for `maskwatch run`",
    )
    instance: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_.-]{1,128}$",
        description="This process's name in heartbeats (e.g. the pod name); default host-pid. "
        "`maskwatch check` looks for this name, else for a process of this host",
    )
    heartbeat_ttl_s: int = Field(15, ge=2, le=3600, description="Lifetime of a process's heartbeat key")
    heartbeat_interval_s: float | None = Field(
        None, gt=0, le=3600, description="How often the heartbeat is refreshed; default a third of its TTL"
    )
    shutdown_grace_s: float = Field(10.0, ge=0, le=600, description="Drain deadline on SIGINT/SIGTERM")
    cameras: list[CameraConfig] = Field(default_factory=list)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    publisher: PublisherSettings = Field(default_factory=PublisherSettings)
    detector: DetectorSettings = Field(default_factory=DetectorSettings)
    classifier: ClassifierSettings = Field(default_factory=ClassifierSettings)
    violations: ViolationSettings = Field(default_factory=ViolationSettings)
    clips: ClipSettings = Field(default_factory=ClipSettings)
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    webhooks: list[WebhookConfig] = Field(
        default_factory=list, description="HTTP endpoints every violation document is POSTed to, signed"
    )

    @model_validator(mode="after")
    def _unique_camera_ids(self) -> Settings:
        ids = [c.id for c in self.cameras]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"camera ids must be unique; repeated: {', '.join(dupes)}")
        return self

    @model_validator(mode="after")
    def _register_secrets(self) -> Settings:
        """Every credential the settings hold is masked wherever it would be logged."""
        if self.redis_url is not None:
            register_url_secrets(self.redis_url.get_secret_value())
        for camera in self.cameras:
            register_url_secrets(camera.url.get_secret_value())
        if self.mqtt.url is not None:
            register_url_secrets(self.mqtt.url.get_secret_value())
        if self.api.token is not None:
            register_secret(self.api.token.get_secret_value())
        for hook in self.webhooks:  # the whole URL too: a path or query may be a token
            register_secret(hook.secret.get_secret_value())
            register_secret(hook.url.get_secret_value())
            register_url_secrets(hook.url.get_secret_value())
        return self

    @model_validator(mode="after")
    def _heartbeat_within_ttl(self) -> Settings:
        if self.heartbeat_interval_s is not None and self.heartbeat_interval_s >= self.heartbeat_ttl_s:
            raise ValueError(
                f"heartbeat_interval_s ({self.heartbeat_interval_s}) must be below heartbeat_ttl_s "
                f"({self.heartbeat_ttl_s}), or the key expires between beats"
            )
        return self

    @model_validator(mode="after")
    def _resolve_paths(self) -> Settings:
        """Absolute paths, once: ``data_dir``, ``detector.weights_dir`` and ``clips.dir`` (a file's relative
        ones were already taken against its folder); unset weights and clips folders follow ``data_dir``."""
        data_dir = resolve_path(self.data_dir)
        if data_dir != self.data_dir:
            object.__setattr__(self, "data_dir", data_dir)  # no re-validation of the whole model
        weights_dir = (
            resolve_path(self.detector.weights_dir)
            if "weights_dir" in self.detector.model_fields_set
            else data_dir / "weights"
        )
        if weights_dir != self.detector.weights_dir:
            self.detector.weights_dir = weights_dir
        clips_dir = (
            resolve_path(self.clips.dir) if "dir" in self.clips.model_fields_set else data_dir / "clips"
        )
        if clips_dir != self.clips.dir:
            self.clips.dir = clips_dir
        return self

    @property
    def safe_redis_url(self) -> str:
        """The Redis URL with its password redacted."""
        return redact_url(self.redis_url.get_secret_value()) if self.redis_url else "(none)"

    @property
    def heartbeat_every_s(self) -> float:
        """Seconds between heartbeats: ``heartbeat_interval_s``, else a third of the TTL (at least 1)."""
        return self.heartbeat_interval_s or max(1.0, self.heartbeat_ttl_s / 3)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file comes from ``model_config["yaml_file"]``, which load_settings sets per call.
        return (
            init_settings,
            env_settings,
            _EnvFiles(settings_cls),
            _YamlFile(settings_cls),
            file_secret_settings,
        )


class _EnvFiles(PydanticBaseSettingsSource):
    """``MASKWATCH_<KEY>_FILE=path``: the value of ``MASKWATCH_<KEY>`` read from a file (Docker and
    Kubernetes secrets), e.g. ``MASKWATCH_REDIS_URL_FILE=/run/secrets/redis_url``. The plain variable
    wins when both are set."""

    PREFIX = "MASKWATCH_"

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, path in os.environ.items():
            if not (name.startswith(self.PREFIX) and name.endswith("_FILE")) or name[:-5] in os.environ:
                continue
            keys = name[len(self.PREFIX) : -5].lower().split("__")
            try:
                value = Path(path).read_text(encoding="utf-8").strip()
            except OSError as e:
                raise ConfigError(
                    name, [f"cannot read the file it names ({path}): {e.strerror or e}"]
                ) from None
            if value[:1] in "[{":  # a list or mapping (e.g. MASKWATCH_CAMERAS_FILE), as env values are
                try:
                    value = json.loads(value)
                except ValueError as e:
                    raise ConfigError(name, [f"{path} is not valid JSON: {e}"]) from None
            holder = out
            for key in keys[:-1]:
                holder = holder.setdefault(key, {})
            holder[keys[-1]] = value
        return out


class _YamlFile(YamlConfigSettingsSource):
    """pydantic-settings' YAML source, with errors that name the file and file-relative paths anchored."""

    def _read_file(self, file_path: Any) -> dict[str, Any]:
        where = str(file_path)
        try:
            data = super()._read_file(file_path)
        except OSError as e:
            raise ConfigError(where, [f"cannot read config file: {e.strerror or e}"]) from None
        except yaml.YAMLError as e:
            raise ConfigError(where, [f"not valid YAML: {_yaml_problem(e)}"]) from None
        if not isinstance(data, dict):
            raise ConfigError(where, [f"top level must be a mapping, got {type(data).__name__}"])
        folder = Path(file_path).expanduser().absolute().parent
        for section, name in _FILE_RELATIVE_PATHS:
            holder = data.get(section) if section else data
            if isinstance(holder, dict) and isinstance(holder.get(name), str | os.PathLike):
                holder[name] = str(resolve_path(holder[name], folder))
        return data


def _yaml_problem(err: yaml.YAMLError) -> str:
    """What is wrong and where (line, column), without PyYAML's snippet of the line (it may hold a secret)."""
    problem = getattr(err, "problem", None) or type(err).__name__
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    context = getattr(err, "context", None)
    return f"{problem}{where}" + (f" ({context})" if context else "")


def _settings_class(config_file: Path) -> type[Settings]:
    """``Settings`` reading ``config_file`` (pydantic-settings takes the YAML file from ``model_config``)."""
    return type(
        "Settings",
        (Settings,),
        {"__module__": __name__, "model_config": SettingsConfigDict(yaml_file=config_file)},
    )


def format_validation_error(
    err: ValidationError, origin: Callable[[tuple[int | str, ...]], str | None] | None = None
) -> list[str]:
    """One ``a.b.0.c: message`` line per invalid field, with where the value came from when ``origin``
    (a callable: location -> text or None) knows, and the nearest valid key for an unknown one; input
    values are never echoed (secrets)."""
    lines = []
    for e in err.errors():
        loc = tuple(e["loc"])
        path = ".".join(str(p) for p in loc) or "(root)"
        line = f"{path}: {e['msg']}"
        if e["type"] == "extra_forbidden" and loc and isinstance(loc[-1], str):
            near = difflib.get_close_matches(loc[-1], _keys_at(loc[:-1]), n=1, cutoff=0.6)
            if near:
                line += f" (did you mean {near[0]!r}?)"
        where = origin(loc) if origin is not None else None
        lines.append(f"{line} [{where}]" if where else line)
    return lines


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The config section class inside a field's type (``X``, ``X | None``, ``list[X]``), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        if (model := _model_in(arg)) is not None:
            return model
    return None


def _keys_at(loc: Sequence[int | str]) -> list[str]:
    """The valid keys of the section at ``loc`` (list indices skipped); [] when ``loc`` is no section."""
    model: type[BaseModel] | None = Settings
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if model is not None else None
        model = _model_in(field.annotation) if field is not None else None
        if model is None:
            return []
    assert model is not None
    keys = list(model.model_fields)
    if issubclass(model, DetectorSettings):
        keys += list(DEPRECATED_KEYS)
    return keys


def _env_names() -> dict[str, str]:
    """Upper-cased name -> name of each ``MASKWATCH_*`` variable (pydantic-settings ignores case)."""
    return {k.upper(): k for k in os.environ if k.upper().startswith(ENV_PREFIX)}


def _env_origin(loc: Sequence[int | str], env: Mapping[str, str]) -> str | None:
    """The variable a value at ``loc`` came from: ``MASKWATCH_A__B`` (or its ``_FILE``), longest first."""
    parts = [str(p) for p in loc]
    for n in range(len(parts), 0, -1):
        name = ENV_PREFIX + "__".join(parts[:n]).upper()
        for candidate in (name, name + "_FILE"):
            if candidate in env:
                return f"environment variable {env[candidate]}"
    return None


def _yaml_line(path: Path, loc: Sequence[int | str]) -> int | None:
    """Line number (1-based) of the deepest key or item of ``loc`` in the YAML file; None if not found."""
    try:
        node = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (OSError, yaml.YAMLError):
        return None
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            match = next(((k, v) for k, v in node.value if k.value == part), None)
            if match is None:
                break
            line, node = match[0].start_mark.line + 1, match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def unknown_env_vars(environ: Mapping[str, str] | None = None) -> list[str]:
    """One warning per ``MASKWATCH_*`` variable that names no setting: pydantic-settings ignores those
    silently (an unknown key inside a section is an error already), with the nearest real one."""
    env = os.environ if environ is None else environ
    top = list(Settings.model_fields)
    out = []
    for name in sorted(env):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in NOT_SETTINGS:
            continue
        key = upper[len(ENV_PREFIX) :]
        key = key[:-5] if key.endswith("_FILE") and key[:-5].lower().split("__")[0] in top else key
        first = key.lower().split("__")[0]
        if first in top:
            continue
        near = difflib.get_close_matches(first, top, n=1, cutoff=0.6)
        hint = (
            f" (did you mean {ENV_PREFIX}{key.replace(first.upper(), near[0].upper(), 1)}?)" if near else ""
        )
        out.append(f"{name} is not a maskwatch setting; it is ignored{hint}")
    return out


def load_settings(
    config_file: Path | str | None = None,
    flag_names: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Build the settings: ``overrides`` (None values ignored) > ``MASKWATCH_*`` env > YAML file > defaults.

    Raises :class:`ConfigError` naming the file (or ``environment``) and each invalid field's path and
    real source: the command-line flag (``flag_names``: override key -> flag), the environment variable,
    or the file and line. Unknown ``MASKWATCH_*`` variables are logged as warnings.
    """
    source = str(config_file) if config_file else "environment"
    kwargs = {k: v for k, v in overrides.items() if v is not None}
    cls = Settings
    path = None
    if config_file:
        path = Path(config_file).expanduser()
        if not path.is_file():
            reason = "is a directory" if path.is_dir() else "No such file or directory"
            raise ConfigError(source, [f"cannot read config file: {reason}"])
        cls = _settings_class(path)
    for warning in unknown_env_vars():
        log.warning("%s", warning)
    env = _env_names()

    def origin(loc: tuple[int | str, ...]) -> str | None:
        if not loc:
            return None
        if loc[0] in kwargs:
            flag = (flag_names or {}).get(str(loc[0]))
            return f"from {flag}" if flag else f"argument {loc[0]}"
        if (from_env := _env_origin(loc, env)) is not None:
            return f"from {from_env}"
        if path is not None and (line := _yaml_line(path, loc)) is not None:
            return f"{path}, line {line}"
        return None

    try:
        loaded = cls(**kwargs)
    except ValidationError as e:
        raise ConfigError(source, format_validation_error(e, origin)) from None
    except SettingsError as e:
        raise ConfigError(source, [str(e)]) from None
    if cls is Settings:
        return loaded
    # A plain Settings again (the per-file class only carried the file name); values are validated.
    return Settings.model_construct(_fields_set=loaded.model_fields_set, **dict(loaded))
