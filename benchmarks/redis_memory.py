"""Redis memory per camera: what each of maskwatch's keys costs, measured in a private redis-server.

    .venv/bin/python benchmarks/redis_memory.py [--video ../shared/data/videos/street_crowd_720p.mp4]
        [--out benchmarks/results/redis_memory.json]

Fills a fresh redis-server with real messages (the contracts' own ``to_fields``, JPEGs of a real 720p
video at the ingest's quality, frame events built by the publisher's code, its dedup script) and reads
``MEMORY USAGE`` per key, for the default bounds:

- steady state (workers and publisher keep up; processed entries are deleted): the camera's frame-event
  dedup window, its camera and worker-state hashes, and its share of the shared events stream;
- the worst case the bounds allow: a live camera's frames stream at ``ingest.stream_max_len`` (workers
  down) and its results stream at ``worker.results_max_len`` (publisher down, images carried);
- for comparison, the per-event dedup markers that frame events used before the window (7 days at 5 fps).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.report import machine, write_report  # noqa: E402
from maskwatch.config.settings import load_settings  # noqa: E402
from maskwatch.core.contracts import FrameMessage, ResultMessage  # noqa: E402
from maskwatch.core.documents import frame_event  # noqa: E402
from maskwatch.core.faces import Faces  # noqa: E402
from maskwatch.core.keys import Keys  # noqa: E402
from maskwatch.core.labels import CLASSES  # noqa: E402
from maskwatch.publisher.sink import EventSink  # noqa: E402
from maskwatch.runtime.private_redis import RedisServer  # noqa: E402

MB = 1024 * 1024


def jpegs(video: Path | None, count: int, quality: int) -> tuple[list[bytes], int, int, str]:
    """``count`` JPEGs of ``video`` (or of a stand-in scene when there is none) at ``quality``."""
    import cv2

    if video is not None and video.is_file():
        import av

        out: list[bytes] = []
        with av.open(str(video)) as container:
            for i, frame in enumerate(container.decode(video=0)):
                if i % 5:
                    continue
                img = frame.to_ndarray(format="bgr24")
                out.append(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes())
                if len(out) == count:
                    break
        return out, img.shape[1], img.shape[0], video.name
    from tests.support.media import background, face_photo, paste_face

    out, photo = [], face_photo()
    for i in range(count):
        img = background(1280, 720, seed=i)
        paste_face(img, photo, (400 + 20 * i, 300), 0.8)
        out.append(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes())
    return out, 1280, 720, "stand-in 1280x720 scene"


def usage(client: redis.Redis, key: str) -> int:
    return int(client.memory_usage(key, samples=0) or 0)


def two_faces() -> Faces:
    boxes = np.array([[400.5, 100.2, 520.7, 260.9], [800.1, 300.4, 860.3, 380.8]], np.float32)
    probs = np.array([[0.02, 0.97, 0.01], [0.9, 0.05, 0.05]], np.float32)
    return Faces(boxes, np.array([0.998, 0.981], np.float32), probs, CLASSES)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    shared = Path(os.environ.get("MASKWATCH_SHARED", ROOT.parent / "shared"))
    ap.add_argument("--video", type=Path, default=shared / "data" / "videos" / "street_crowd_720p.mp4")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "redis_memory.json")
    args = ap.parse_args()
    s = load_settings(None)
    images, w, h, source = jpegs(args.video, 40, 85)
    server = RedisServer().start()
    try:
        client = redis.Redis.from_url(server.url)
        keys, cam = Keys(), "cam"
        faces = two_faces()

        def fill(key: str, messages: list[dict], max_len: int) -> int:
            pipe = client.pipeline(transaction=False)
            for i in range(max_len):
                pipe.xadd(key, messages[i % len(messages)])
            pipe.execute()
            return usage(client, key)

        frames = [
            FrameMessage(cam, i, 1.7e9 + i, w, h, img, live=True).to_fields() for i, img in enumerate(images)
        ]
        results = [
            ResultMessage(cam, i, 1.7e9 + i, w, h, 1.7e9 + i, faces, {"detector": "d", "classifier": "c"},
                          image=img).to_fields()
            for i, img in enumerate(images)
        ]  # fmt: skip
        frames_full = fill(keys.frames(cam), frames, s.ingest.stream_max_len)
        results_full = fill(keys.results(cam), results, s.worker.results_max_len)

        sink = EventSink(client, s.publisher.dedup_ttl_s, s.publisher.dedup_window)
        window_frames = s.publisher.dedup_window * 3
        pipe = client.pipeline(transaction=False)
        for seq in range(window_frames):
            result = ResultMessage(cam, seq, 1.7e9 + seq / 5, w, h, 1.7e9 + seq / 5, faces, {"detector": "d"})
            doc = dict(frame_event(result, 1.7e9 + seq / 5))
            sink.publish_frame(doc, keys.published(cam), keys.events, s.publisher.events_max_len,
                               keys.events_channel(cam), pipe)  # fmt: skip
        pipe.execute()
        window = usage(client, keys.published(cam))
        events = usage(client, keys.events)
        per_event = events / client.xlen(keys.events)

        markers = 1000
        pipe = client.pipeline(transaction=False)
        for i in range(markers):
            pipe.set(keys.dedup(f"{i:08d}-0000-5000-8000-000000000000"), "1", ex=s.publisher.dedup_ttl_s)
        pipe.execute()
        per_marker = (
            sum(usage(client, keys.dedup(f"{i:08d}-0000-5000-8000-000000000000")) for i in range(50)) / 50
        )
        info = client.info("memory")
        old_markers_per_camera = per_marker * 5 * s.publisher.dedup_ttl_s  # 5 fps for dedup_ttl_s
    finally:
        server.cleanup()
    report = {
        "benchmark": "redis_memory",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "source": source,
        "frame": f"{w}x{h}",
        "jpeg_kb_mean": round(float(np.mean([len(j) for j in images])) / 1024, 1),
        "bounds": {
            "ingest.stream_max_len": s.ingest.stream_max_len,
            "worker.results_max_len": s.worker.results_max_len,
            "publisher.dedup_window": s.publisher.dedup_window,
            "publisher.events_max_len": s.publisher.events_max_len,
        },
        "per_camera_mb": {
            "steady_dedup_window": round(window / MB, 3),
            "worst_frames_stream_full": round(frames_full / MB, 1),
            "worst_results_stream_full": round(results_full / MB, 1),
            "old_per_event_markers_5fps": round(old_markers_per_camera / MB, 1),
        },
        "shared_mb": {"events_stream_full": round(per_event * s.publisher.events_max_len / MB, 1)},
        "per_event_bytes": round(per_event),
        "per_marker_bytes": round(per_marker),
        "redis_used_memory_mb_at_end": round(info["used_memory"] / MB, 1),
    }
    print(json.dumps(report, indent=1))
    write_report(args.out, report, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
