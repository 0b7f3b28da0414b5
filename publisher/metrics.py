"""Prometheus metrics of the publisher stage."""

from prometheus_client import Counter, Histogram

EVENTS_PUBLISHED = Counter("maskwatch_events_published_total", "Events published, by type", ["camera", "type"])
DUPLICATES_SKIPPED = Counter(
    "maskwatch_publisher_duplicates_total", "Redelivered results whose event was already published", ["camera"]
)
END_TO_END_SECONDS = Histogram(
    "maskwatch_end_to_end_latency_seconds",
    "Capture of a frame to publication of its event",
    ["camera"],
    buckets=(0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 60),
)
FACES_SEEN = Counter("maskwatch_faces_seen_total", "Face observations published, by class", ["camera", "class"])
FRAMES_PUBLISHED = Counter("maskwatch_publisher_frames_total", "Frame events published", ["camera"])
