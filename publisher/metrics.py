"""Prometheus metrics of the publisher stage."""

from prometheus_client import Counter, Gauge, Histogram

EVENTS_PUBLISHED = Counter(
    "maskwatch_events_published_total", "Events published, by type", ["camera", "type"]
)
DUPLICATES_SKIPPED = Counter(
    "maskwatch_publisher_duplicates_total",
    "Redelivered results whose event was already published",
    ["camera"],
)
END_TO_END_SECONDS = Histogram(
    "maskwatch_end_to_end_latency_seconds",
    "Capture of a frame to publication of its event",
    ["camera"],
    buckets=(0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 60),
)
FACES_SEEN = Counter(
    "maskwatch_faces_seen_total", "Face observations published, by class", ["camera", "class"]
)
FRAMES_PUBLISHED = Counter("maskwatch_publisher_frames_total", "Frame events published", ["camera"])

# Tracking, violations, clips (publisher.violations; documented in docs/violations.md).
TRACKS = Counter(
    "maskwatch_tracks_total", "People (face tracks) by their first decided class", ["camera", "class"]
)
VIOLATIONS = Counter(
    "maskwatch_violations_total", "Violation events raised (one per person)", ["camera", "class"]
)
ACTIVE_TRACKS = Gauge("maskwatch_active_tracks", "Face tracks alive now", ["camera"])
COMPLIANCE_RATIO = Gauge(
    "maskwatch_compliance_ratio",
    "Share compliant over the rolling window: basis=people (decided tracks) or faces (observations)",
    ["camera", "basis"],
)
CLIPS_WRITTEN = Counter("maskwatch_clips_written_total", "Violation clips written", ["camera"])
CLIP_ERRORS = Counter(
    "maskwatch_clip_errors_total", "Clips or snapshots that could not be written", ["camera", "reason"]
)
CLIP_WRITE_SECONDS = Histogram(
    "maskwatch_clip_write_seconds",
    "Seconds to encode and write one clip",
    ["camera"],
    buckets=(0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64),
)
SNAPSHOTS_WRITTEN = Counter("maskwatch_snapshots_written_total", "Violation snapshots written", ["camera"])
RING_BUFFER_FRAMES = Gauge("maskwatch_ring_buffer_frames", "Recent frames held for pre-roll", ["camera"])
MEDIA_BYTES = Gauge(
    "maskwatch_media_bytes", "Bytes of clips and snapshots on disk after the last retention sweep"
)
RETENTION_DELETED = Counter(
    "maskwatch_retention_deleted_files_total", "Clips and snapshots deleted by retention", ["reason"]
)
