"""The ``mqtt`` section: the MQTT sink (``maskwatch mqtt``) and its Home Assistant discovery."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, field_validator

from maskwatch.config.base import StrictModel

MQTT_SCHEMES = {"mqtt": 1883, "mqtts": 8883}
"""URL schemes of the broker and their default ports (``mqtts``: TLS)."""

_TOPIC_PART = r"^[^\s#+]{1,128}$"  # no MQTT wildcards, no spaces


class BrokerAddress(StrictModel):
    """The parts of ``mqtt.url`` a client needs (``password`` stays secret)."""

    host: str
    port: int
    tls: bool
    username: str | None
    password: SecretStr | None


class MqttSettings(StrictModel):
    """Violation documents, camera state and availability to an MQTT broker; Home Assistant discovery."""

    url: SecretStr | None = Field(
        None,
        description="Broker URL, mqtt://[user:password@]host[:1883] or mqtts://... for TLS (port 8883); "
        "unset: no MQTT sink (`maskwatch run` starts it only when set)",
    )
    topic_prefix: str = Field(
        "maskwatch", pattern=_TOPIC_PART, description="First level of every topic maskwatch publishes"
    )
    client_id: str = Field(
        "maskwatch",
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="MQTT client id, also the consumer name in the group: run one `maskwatch mqtt` per id",
    )
    group: str = Field("mqtt", min_length=1, description="Consumer group on the violations stream")
    from_beginning: bool = Field(
        False,
        description="When the group is first created, start at the oldest document of the stream "
        "(default: documents written from then on)",
    )
    qos: Literal[0, 1, 2] = Field(1, description="QoS of violation documents (1: at least once)")
    keepalive_s: int = Field(
        30, ge=5, le=3600, description="MQTT keepalive; the broker sends the will after 1.5x"
    )
    reconnect_max_s: float = Field(
        30.0, ge=0.5, le=3600, description="Cap of the broker reconnect delay (doubling from 1 s)"
    )
    ca_file: Path | None = Field(None, description="CA bundle for mqtts:// (default: the system's)")
    tls_insecure: bool = Field(False, description="mqtts:// without checking the broker's host name")
    state_interval_s: float = Field(
        5.0, gt=0, le=3600, description="How often each camera's retained state is published"
    )
    violation_hold_s: float = Field(
        60.0, gt=0, le=86_400, description="The violation binary sensor stays on this long after one"
    )
    discovery: bool = Field(True, description="Publish Home Assistant MQTT discovery configs (retained)")
    discovery_prefix: str = Field(
        "homeassistant", pattern=_TOPIC_PART, description="Home Assistant's discovery prefix"
    )
    read_count: int = Field(64, ge=1, le=10_000, description="Documents read (and in flight) per step")
    block_ms: int = Field(200, ge=1, le=60_000, description="Longest blocking read of the violations stream")
    claim_idle_ms: int = Field(
        30_000, ge=100, le=86_400_000, description="Take over documents pending this long on another consumer"
    )
    metrics_port: int = Field(9104, ge=0, le=65535, description="0 disables the metrics server")

    @field_validator("url")
    @classmethod
    def _broker_url(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None:
            parts = urlsplit(v.get_secret_value())
            if parts.scheme not in MQTT_SCHEMES:
                raise ValueError(f"scheme must be mqtt:// or mqtts://, not {parts.scheme or 'none'}://")
            if not parts.hostname:
                raise ValueError("the URL names no broker host")
            try:
                parts.port  # noqa: B018 - raises on a bad port
            except ValueError:
                raise ValueError("the URL's port is not a number in 1..65535") from None
        return v

    def broker(self) -> BrokerAddress:
        """Host, port, TLS and credentials of ``url`` (which must be set)."""
        if self.url is None:
            raise ValueError("mqtt.url is not set")
        parts = urlsplit(self.url.get_secret_value())
        password = unquote(parts.password) if parts.password is not None else None
        return BrokerAddress(
            host=parts.hostname or "",
            port=parts.port or MQTT_SCHEMES[parts.scheme],
            tls=parts.scheme == "mqtts",
            username=unquote(parts.username) if parts.username else None,
            password=SecretStr(password) if password is not None else None,
        )
