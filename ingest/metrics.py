"""Prometheus metrics of the ingest stage."""

from prometheus_client import Counter, Gauge

FRAMES_READ = Counter("maskwatch_ingest_frames_read_total", "Frames decoded from the source", ["camera"])
FRAMES_PUBLISHED = Counter(
    "maskwatch_ingest_frames_published_total", "Sampled frames added to the frames stream", ["camera"]
)
FRAMES_DROPPED = Counter(
    "maskwatch_ingest_frames_dropped_total",
    "Frames trimmed from a full live frames stream before processing",
    ["camera"],
)
CAMERA_UP = Gauge("maskwatch_camera_up", "1 while the camera delivers frames, else 0", ["camera"])
CAMERA_STATE = Gauge("maskwatch_camera_state", "1 for the camera's current state", ["camera", "state"])
RECONNECTS = Counter(
    "maskwatch_camera_reconnects_total", "Times the source was reopened after a failure", ["camera"]
)
ERRORS = Counter("maskwatch_camera_errors_total", "Source failures by kind", ["camera", "kind"])
BACKLOG_WAIT = Counter(
    "maskwatch_ingest_backpressure_wait_seconds_total",
    "Time a file source waited for room in its stream",
    ["camera"],
)
LAST_FRAME = Gauge(
    "maskwatch_camera_last_frame_timestamp_seconds", "Unix time of the last frame read", ["camera"]
)
MOTION_FRAMES = Counter(
    "maskwatch_ingest_motion_frames_total",
    "Published frames by motion outcome: motion (boxes proposed), still (nothing moved), calibrating "
    "(background restarted: first frame, lightning, IR switch)",
    ["camera", "kind"],
)
MOTION_SECONDS = Counter(
    "maskwatch_ingest_motion_seconds_total", "Time spent computing motion on published frames", ["camera"]
)
FULL_FRAMES = Counter(
    "maskwatch_ingest_full_frames_total",
    "Published frames marked for a full-frame pass (start, reconnect, interval, recalibration)",
    ["camera"],
)
OPENS = Counter(
    "maskwatch_camera_opens_total",
    "Times the source was opened successfully (the first open and every reopen)",
    ["camera"],
)
REJECTED = Counter(
    "maskwatch_camera_rejected_total",
    "Sources refused for good, never retried: reason scheme (unsupported URL scheme), port (not a number "
    "1-65535) or format (a file that is not a video in a supported container)",
    ["camera", "reason"],
)
REDIS_DROPPED = Counter(
    "maskwatch_ingest_frames_redis_dropped_total",
    "Sampled live frames dropped because Redis was unreachable (the camera stays connected)",
    ["camera"],
)
REDIS_WAIT = Counter(
    "maskwatch_ingest_redis_wait_seconds_total",
    "Time a file source waited for Redis to come back, holding its place in the file",
    ["camera"],
)
