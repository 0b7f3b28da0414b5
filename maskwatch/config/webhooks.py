"""The ``webhooks`` section: HTTP endpoints that receive every violation document, signed.

Each entry is one endpoint with its own consumer group on the violations stream, its own thread and its
own retry queue (``maskwatch.delivery.webhooks``), so a slow or dead endpoint never holds back another.
"""

from __future__ import annotations

import hashlib
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from maskwatch.config.base import StrictModel

DocumentType = Literal["violation", "clip_ready", "clip_failed"]
DOCUMENT_TYPES: tuple[DocumentType, ...] = ("violation", "clip_ready", "clip_failed")


class WebhookConfig(StrictModel):
    """One endpoint: where documents are POSTed, how they are signed, and how failures are retried."""

    url: SecretStr = Field(
        description="http:// or https:// URL the documents are POSTed to (a secret: it may hold a token "
        "in its path or query, or user:password@, which is sent as HTTP basic auth)"
    )
    secret: SecretStr = Field(
        min_length=16,
        description="Shared secret of the HMAC-SHA256 signature in X-Maskwatch-Signature (16+ characters)",
    )
    name: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_.-]{1,40}$",
        description="Short stable name in metric labels, logs and the consumer group (webhook-<name>); "
        "default: 8 hex digits of the URL's SHA-256",
    )
    types: list[DocumentType] = Field(
        default_factory=lambda: list(DOCUMENT_TYPES),
        min_length=1,
        description="Document types sent to this endpoint (violation, clip_ready, clip_failed)",
    )
    timeout_s: float = Field(
        10.0, gt=0, le=60, description="Connect timeout, and longest wait for each read of the answer"
    )
    max_attempts: int = Field(
        8, ge=1, le=100, description="Attempts per document before it goes to the dead-letter stream"
    )
    backoff_initial_s: float = Field(1.0, gt=0, le=600, description="Delay before the first retry")
    backoff_max_s: float = Field(
        300.0, gt=0, le=86_400, description="Cap of the retry delay (doubling, with jitter)"
    )
    max_queued: int = Field(
        256,
        ge=1,
        le=100_000,
        description="Documents read ahead or waiting for a retry; no more are read while this many are",
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: SecretStr) -> SecretStr:
        try:
            parts = urlsplit(value.get_secret_value())
            _ = parts.port  # raises on a port that is not a number in range
        except ValueError:
            raise ValueError("is not a valid URL") from None  # never echo the value
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        return value

    @field_validator("types")
    @classmethod
    def _unique_types(cls, value: list[DocumentType]) -> list[DocumentType]:
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _backoff_order(self) -> WebhookConfig:
        if self.backoff_initial_s > self.backoff_max_s:
            raise ValueError(
                f"backoff_initial_s ({self.backoff_initial_s}) must not exceed backoff_max_s "
                f"({self.backoff_max_s})"
            )
        return self

    @property
    def label(self) -> str:
        """The short stable name: ``name``, else the first 8 hex digits of the URL's SHA-256."""
        return self.name or hashlib.sha256(self.url.get_secret_value().encode()).hexdigest()[:8]

    @property
    def group(self) -> str:
        """This endpoint's consumer group on the violations stream."""
        return f"webhook-{self.label}"

    @property
    def safe_endpoint(self) -> str:
        """Scheme, host and port only: what logs and dead letters say (paths and queries may hold tokens)."""
        parts = urlsplit(self.url.get_secret_value())
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{parts.hostname}{port}/…"
