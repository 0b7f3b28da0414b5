"""Prometheus metrics of the worker stage."""

from prometheus_client import Counter, Gauge, Histogram

BATCH_SIZE = Histogram(
    "maskwatch_worker_batch_size_frames",
    "Frames per inference batch",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
INFERENCE_SECONDS = Histogram(
    "maskwatch_worker_inference_seconds",
    "Seconds per batch by step",
    ["step"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
FRAMES_PROCESSED = Counter(
    "maskwatch_worker_frames_processed_total", "Frames whose results were written", ["camera"]
)
FACES = Counter("maskwatch_worker_faces_total", "Faces classified, by class", ["camera", "class"])
FRAMES_SKIPPED = Counter(
    "maskwatch_worker_frames_skipped_total",
    "Live frames skipped without inference, by reason",
    ["camera", "reason"],
)
DETECTIONS = Counter(
    "maskwatch_worker_detections_total",
    "Frames by how they were searched (full frame, regions, none: nothing moved)",
    ["camera", "detection"],
)
CLASSES_REUSED = Counter(
    "maskwatch_worker_classes_reused_total",
    "Detected faces that kept a settled class of the same person instead of being classified",
    ["camera"],
)
RESULTS_FULL = Gauge(
    "maskwatch_worker_results_backpressure",
    "1 while a camera's frames are held back because its results stream holds worker.results_max_len "
    "entries (the publisher is down or behind)",
    ["camera"],
)
BACKPRESSURE_SECONDS = Counter(
    "maskwatch_worker_backpressure_seconds_total",
    "Seconds a camera's frames were held back by its full results stream",
    ["camera"],
)
