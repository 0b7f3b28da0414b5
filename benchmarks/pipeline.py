"""Benchmark the pipeline on real Redis and real video: worker throughput by batch size, and end-to-end
latency with 1, 4 and 8 live cameras.

    .venv/bin/python benchmarks/pipeline.py --shared ../shared --out benchmarks/results/pipeline.json

Writes JSON; prints a short table. Uses the configured models (MASKWATCH_* env applies).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from maskwatch.config.settings import load_settings  # noqa: E402
from maskwatch.core.contracts import FrameMessage  # noqa: E402
from maskwatch.core.keys import Keys  # noqa: E402
from maskwatch.ingest.service import IngestService  # noqa: E402
from maskwatch.publisher.service import PublisherService  # noqa: E402
from maskwatch.runtime.private_redis import RedisServer  # noqa: E402
from maskwatch.worker.service import WorkerService  # noqa: E402

VIDEOS = ("corridor_cctv_masked_1080p.mp4", "street_crowd_720p.mp4", "bare_then_masked_720p.mp4")


def settings_for(url: str, weights: Path, cameras: list[dict], **worker: object):
    return load_settings(
        None,
        redis_url=url,
        cameras=cameras,
        detector={"weights_dir": str(weights)},
        ingest={"metrics_port": 0, "stream_max_len": 50},
        publisher={"metrics_port": 0},
        worker={"metrics_port": 0, "discovery_interval_s": 0.5, **worker},
    )


def sample_frames(videos: Path, per_video: int) -> list[np.ndarray]:
    """Evenly spaced frames from each video (decoded once, re-encoded as the ingest would)."""
    import av

    frames = []
    for name in VIDEOS:
        with av.open(str(videos / name)) as c:
            decoded = [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]
        step = max(1, len(decoded) // per_video)
        frames += decoded[::step][:per_video]
    return frames


def worker_throughput(url: str, weights: Path, videos: Path, batch: int, n_frames: int) -> dict:
    client = redis.Redis.from_url(url)
    client.flushall()
    keys = Keys()
    images = sample_frames(videos, max(1, n_frames // len(VIDEOS)))
    jpegs = [cv2.imencode(".jpg", im, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes() for im in images]
    cams = [f"cam{i}" for i in range(4)]
    for i, jpeg in enumerate(jpegs):
        cam = cams[i % len(cams)]
        client.sadd(keys.cameras, cam)
        h, w = images[i].shape[:2]
        client.xadd(keys.frames(cam), FrameMessage(cam, i, time.time(), w, h, jpeg).to_fields())
    svc = WorkerService.from_settings(settings_for(url, weights, [], max_batch=batch, max_wait_ms=5))
    svc.consumer.discover(force=True)
    svc.step()  # warm-up batch (graph building, allocations)
    done0, faces0 = svc.stats.frames, svc.stats.faces
    t0 = time.perf_counter()
    while svc.stats.frames < len(jpegs):
        svc.step()
    elapsed = time.perf_counter() - t0
    frames, faces = svc.stats.frames - done0, svc.stats.faces - faces0
    return {
        "batch": batch,
        "frames": frames,
        "seconds": round(elapsed, 3),
        "frames_per_s": round(frames / elapsed, 2),
        "faces_per_s": round(faces / elapsed, 2),
        "models": svc.inference.models,
    }


def end_to_end(url: str, weights: Path, videos: Path, n_cameras: int, seconds: float, fps: float) -> dict:
    client = redis.Redis.from_url(url)
    client.flushall()
    cams = [
        {
            "id": f"cam{i}",
            "url": str(videos / VIDEOS[i % len(VIDEOS)]),
            "fps": fps,
            "kind": "live",
            "drop_policy": "drop_oldest",
            "loop": True,
            "realtime": True,
            "max_width": 1280,
        }
        for i in range(n_cameras)
    ]
    s = settings_for(url, weights, cams, max_batch=16, max_wait_ms=30)
    latencies: list[float] = []
    lock = threading.Lock()

    def on_event(doc: dict) -> None:
        with lock:
            latencies.append(doc["published_ts"] - doc["capture_ts"])

    services = [
        IngestService.from_settings(s),
        WorkerService.from_settings(s),
        PublisherService.from_settings(s, on_event),
    ]
    stops = [threading.Event() for _ in services]
    threads = [
        threading.Thread(target=svc.run, args=(st,), daemon=True)
        for svc, st in zip(services, stops, strict=True)
    ]
    for t in threads:
        t.start()
    time.sleep(5)  # warm-up: model load, first batches
    with lock:
        latencies.clear()
    time.sleep(seconds)
    with lock:
        measured = list(latencies)
    for st in stops:
        st.set()
    for t in threads:
        t.join(timeout=20)
    ingest = services[0]
    published = sum(r.stats.frames_published for r in ingest.readers)
    dropped = sum(r.stats.frames_dropped for r in ingest.readers)
    lat = np.array(measured) if measured else np.array([np.nan])
    return {
        "cameras": n_cameras,
        "target_fps_per_camera": fps,
        "seconds": seconds,
        "events": len(measured),
        "events_per_s": round(len(measured) / seconds, 2),
        "latency_p50_s": round(float(np.percentile(lat, 50)), 3),
        "latency_p99_s": round(float(np.percentile(lat, 99)), 3),
        "frames_published": published,
        "frames_dropped": dropped,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shared", type=Path, default=Path(os.environ.get("MASKWATCH_SHARED", "../shared")))
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/pipeline.json"))
    p.add_argument("--frames", type=int, default=96, help="frames per throughput run")
    p.add_argument("--seconds", type=float, default=20.0, help="measured seconds per latency run")
    p.add_argument("--fps", type=float, default=5.0, help="target fps per camera in latency runs")
    p.add_argument("--batches", default="1,8,32", help="worker batch sizes of the throughput runs")
    p.add_argument(
        "--cameras", default="1,4,8", help="live camera counts of the latency runs ('' skips them)"
    )
    args = p.parse_args()
    videos, weights = args.shared / "data" / "videos", args.shared / "weights"
    server = RedisServer().start()
    try:
        batches = [int(b) for b in args.batches.split(",") if b]
        throughput = [worker_throughput(server.url, weights, videos, b, args.frames) for b in batches]
        for r in throughput:
            print(f"batch {r['batch']:>2}: {r['frames_per_s']:7.2f} frames/s {r['faces_per_s']:7.2f} faces/s")
        counts = [int(n) for n in args.cameras.split(",") if n]
        latency = [end_to_end(server.url, weights, videos, n, args.seconds, args.fps) for n in counts]
        for r in latency:
            print(
                f"{r['cameras']} camera(s): {r['events_per_s']:6.2f} events/s  p50 {r['latency_p50_s']:.3f}s  "
                f"p99 {r['latency_p99_s']:.3f}s  dropped {r['frames_dropped']}/{r['frames_published']}"
            )
    finally:
        server.cleanup()
    result = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "worker_throughput": throughput,
        "end_to_end_latency": latency,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
