"""The ``api`` section: the HTTP API and review page (``maskwatch api``, also started by ``maskwatch run``)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from maskwatch.config.base import StrictModel


class ApiSettings(StrictModel):
    """Violations, snapshots, clips, cameras and reviews over HTTP, and the review page at ``/``."""

    host: str = Field(
        "127.0.0.1",
        min_length=1,
        description="Address the API listens on (0.0.0.0: every interface; set a token first)",
    )
    port: int = Field(8080, ge=0, le=65535, description="Port of the API and review page; 0 disables it")
    token: SecretStr | None = Field(
        None,
        description="Bearer token every /api route requires (Authorization: Bearer <token>); none: open",
    )
    page_size: int = Field(50, ge=1, le=1000, description="Violations per page when `limit` is not given")
    max_page_size: int = Field(500, ge=1, le=10_000, description="Largest `limit` a request may ask for")
    compliance_window_s: float = Field(
        3600.0,
        gt=0,
        le=86_400,
        description="Window of /api/cameras' compliance_window (face observations of the frame events)",
    )
    compliance_now_s: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="Window of /api/cameras' compliance_now (the latest face observations)",
    )
    stats_cache_s: float = Field(
        2.0, ge=0, le=60, description="How long /api/cameras reuses its scan of the events stream"
    )
