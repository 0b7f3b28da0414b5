"""The per-frame event document (schema ``maskwatch.frame`` v1), documented in the README."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from maskwatch.core.contracts import SCHEMA_VERSION, ResultMessage, event_id
from maskwatch.core.labels import CLASSES


def frame_event(result: ResultMessage, published_ts: float | None = None) -> dict[str, Any]:
    """The JSON-able event of one processed frame."""
    labels = result.labels
    detected = result.faces
    probs = detected.probs.astype(float) if detected.probs is not None else np.zeros((len(detected), 0))
    faces = [
        {
            "box": [round(float(v), 1) for v in detected.boxes[i]],
            "score": round(float(detected.scores[i]), 4),
            "class": labels[i],
            "probs": {c: round(float(p), 4) for c, p in zip(detected.classes, probs[i], strict=True)},
        }
        for i in range(len(labels))
    ]
    counts = dict.fromkeys(CLASSES, 0) | dict.fromkeys(detected.classes, 0)
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    return {
        "schema": "maskwatch.frame",
        "schema_version": SCHEMA_VERSION,
        "type": "frame",
        "id": event_id(result.camera, result.seq),
        "camera": result.camera,
        "seq": result.seq,
        "capture_ts": result.capture_ts,
        "processed_ts": result.processed_ts,
        "published_ts": published_ts if published_ts is not None else time.time(),
        "width": result.width,
        "height": result.height,
        "faces": faces,
        "counts": counts,
        "violations": sum(counts.get(c, 0) for c in ("without_mask", "incorrect_mask")),
        "models": result.models,
        "placeholder_classifier": result.placeholder,
    }
