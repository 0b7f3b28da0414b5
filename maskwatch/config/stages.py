"""The ingest, worker and publisher sections."""

from __future__ import annotations

from pydantic import Field

from maskwatch.config.base import StrictModel


class IngestSettings(StrictModel):
    stream_max_len: int = Field(300, ge=2, le=1_000_000, description="Bound of a live camera's frames stream")
    file_max_backlog: int = Field(
        64, ge=1, le=100_000, description="A file source waits while this many frames are unprocessed"
    )
    backoff_initial_s: float = Field(1.0, gt=0, le=60)
    backoff_max_s: float = Field(30.0, gt=0, le=3600)
    metrics_port: int = Field(9101, ge=0, le=65535, description="0 disables the metrics server")


class WorkerSettings(StrictModel):
    group: str = Field("workers", min_length=1, description="Consumer group on every frames stream")
    consumer: str | None = Field(None, description="Consumer name; default host-pid")
    max_batch: int = Field(16, ge=1, le=1024, description="Frames per inference batch")
    max_wait_ms: int = Field(50, ge=0, le=60_000, description="Longest wait to fill a batch")
    claim_idle_ms: int = Field(
        30_000, ge=100, le=86_400_000, description="Reclaim messages pending this long"
    )
    discovery_interval_s: float = Field(2.0, gt=0, le=600, description="How often new cameras are looked for")
    results_max_len: int = Field(
        2_000, ge=10, le=10_000_000, description="Bound of each results stream (entries carry JPEGs)"
    )
    include_image: bool = Field(
        True, description="Carry the JPEG in results (the publisher draws clips from it)"
    )
    max_frame_age_s: float = Field(
        10.0,
        ge=0,
        le=86_400,
        description="Skip live frames older than this when read (0: never); files are never skipped",
    )
    metrics_port: int = Field(9102, ge=0, le=65535)


class PublisherSettings(StrictModel):
    group: str = Field("publishers", min_length=1)
    consumer: str | None = None
    read_count: int = Field(64, ge=1, le=10_000)
    events_max_len: int = Field(10_000, ge=10, le=10_000_000, description="Bound of the events stream")
    violations_max_len: int = Field(10_000, ge=10, le=10_000_000)
    dedup_ttl_s: int = Field(7 * 86_400, ge=60, description="How long an event id is remembered")
    claim_idle_ms: int = Field(30_000, ge=100, le=86_400_000)
    metrics_port: int = Field(9103, ge=0, le=65535)
