"""The real worker on an accelerator (or this CPU): frames/s and batch latency through Redis, by batch size.

    python benchmarks/gpu_worker.py --jpegs DIR [--cameras 100] [--batches 1,8,32,128] [--redis-server PATH]

Starts a private ``redis-server``, fills the frames streams of ``--cameras`` simulated 720p cameras
with JPEG frames (from ``--jpegs``, a folder of .jpg files, e.g. written by ``--make-jpegs DIR
--videos ../shared/data/videos`` on a machine that has the videos), and runs ``WorkerService``
(the real consumer group, decode, batched detector and classifier, MULTI/EXEC results + ack) at
each ``worker.max_batch``. Reports frames/s, per-batch latency p50/p99, and, for the same frames,
the detector alone and the JPEG decode alone per frame, so a CPU-bound decode shows up. The device
(GPU name or CPU model) and the runtimes in use are recorded in the JSON (``--out``).
Models come from the configuration (``MASKWATCH_*`` env applies), e.g.
``MASKWATCH_DETECTOR__RETINAFACE__RUNTIME=onnxruntime-cuda``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from maskwatch.config.settings import load_settings  # noqa: E402
from maskwatch.core.contracts import FrameMessage  # noqa: E402
from maskwatch.core.keys import Keys  # noqa: E402
from maskwatch.runtime.private_redis import RedisServer  # noqa: E402
from maskwatch.worker.service import WorkerService  # noqa: E402


def make_jpegs(videos: Path, out: Path, per_video: int = 8, width: int = 1280) -> int:
    """Evenly spaced frames of each video, scaled to ``width`` (720p for 16:9), as JPEG quality 85."""
    import av

    out.mkdir(parents=True, exist_ok=True)
    n = 0
    for video in sorted(videos.glob("*.mp4")):
        with av.open(str(video)) as c:
            frames = [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]
        for frame in frames[:: max(1, len(frames) // per_video)][:per_video]:
            h, w = frame.shape[:2]
            frame = cv2.resize(frame, (width, round(h * width / w)), interpolation=cv2.INTER_AREA)
            cv2.imwrite(str(out / f"{video.stem}_{n:03d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 85])
            n += 1
    return n


def device_name() -> str:
    """The GPU's name when nvidia-smi answers, else the CPU model."""
    if shutil.which("nvidia-smi"):
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
        )
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip().splitlines()[0]
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = next(
            line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Model name")
        )
    except (OSError, StopIteration):
        model = platform.processor()
    return f"CPU: {model}, {os.cpu_count()} cores"


def fill(client: redis.Redis, jpegs: list[bytes], cameras: int, per_camera: int) -> int:
    """Queue ``per_camera`` frames on each camera's stream (round-robin over the JPEGs)."""
    keys = Keys()
    shape = cv2.imdecode(np.frombuffer(jpegs[0], np.uint8), cv2.IMREAD_COLOR).shape
    pipe = client.pipeline(transaction=False)
    n = 0
    for cam in range(cameras):
        pipe.sadd(keys.cameras, f"cam{cam}")
        for seq in range(per_camera):
            jpeg = jpegs[(cam + seq) % len(jpegs)]
            msg = FrameMessage(f"cam{cam}", seq, time.time(), shape[1], shape[0], jpeg)
            pipe.xadd(keys.frames(f"cam{cam}"), msg.to_fields())  # type: ignore[arg-type]
            n += 1
    pipe.execute()
    return n


def run_batch(url: str, jpegs: list[bytes], cameras: int, per_camera: int, batch: int) -> dict:
    client = redis.Redis.from_url(url)
    client.flushall()
    settings = load_settings(
        None,
        redis_url=url,
        worker={"metrics_port": 0, "max_batch": batch, "max_wait_ms": 20, "max_frame_age_s": 0},
    )
    svc = WorkerService.from_settings(settings)
    total = fill(client, jpegs, cameras, per_camera)
    svc.consumer.discover(force=True)
    svc.step()  # warm-up: graph compilation, allocations
    warm = svc.stats.frames
    latencies = []
    t0 = time.perf_counter()
    while svc.stats.frames < total:
        t = time.perf_counter()
        if svc.step():
            latencies.append(time.perf_counter() - t)
    elapsed = time.perf_counter() - t0
    frames = svc.stats.frames - warm
    return {
        "batch": batch,
        "frames": frames,
        "seconds": round(elapsed, 3),
        "frames_per_s": round(frames / elapsed, 1),
        "faces": svc.stats.faces,
        "batch_latency_p50_ms": round(1000 * float(np.percentile(latencies, 50)), 1),
        "batch_latency_p99_ms": round(1000 * float(np.percentile(latencies, 99)), 1),
        "models": svc.inference.models,
    }


def detector_alone(jpegs: list[bytes], batches: list[int], repeats: int = 3) -> dict:
    """ms per frame of JPEG decode alone and of the detector alone, by batch size."""
    from maskwatch.runtime.model_factory import build_detector

    settings = load_settings(None)
    detector = build_detector(settings.detector)
    t = time.perf_counter()
    frames = [cv2.imdecode(np.frombuffer(j, np.uint8), cv2.IMREAD_COLOR) for j in jpegs]
    decode_ms = 1000 * (time.perf_counter() - t) / len(jpegs)
    out = {"detector": detector.name, "jpeg_decode_ms_per_frame": round(decode_ms, 2), "ms_per_frame": {}}
    for batch in batches:
        batch_frames = [frames[i % len(frames)] for i in range(batch)]
        detector.detect(batch_frames)
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            detector.detect(batch_frames)
            times.append(time.perf_counter() - t)
        out["ms_per_frame"][str(batch)] = round(1000 * statistics.median(times) / batch, 2)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jpegs", type=Path, help="folder of .jpg frames to feed")
    ap.add_argument("--make-jpegs", type=Path, metavar="DIR", help="write frames of --videos to DIR and exit")
    ap.add_argument(
        "--videos", type=Path, default=Path(os.environ.get("MASKWATCH_SHARED", "../shared")) / "data/videos"
    )
    ap.add_argument("--cameras", type=int, default=100)
    ap.add_argument("--frames-per-camera", type=int, default=6)
    ap.add_argument("--batches", default="1,8,32,128")
    ap.add_argument("--redis-server", help="redis-server binary (default: on PATH)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/gpu_worker.json"))
    args = ap.parse_args()
    if args.make_jpegs:
        print(f"wrote {make_jpegs(args.videos, args.make_jpegs)} frames to {args.make_jpegs}")
        return 0
    if not args.jpegs:
        ap.error("--jpegs DIR is required (make one with --make-jpegs)")
    jpegs = [p.read_bytes() for p in sorted(args.jpegs.glob("*.jpg"))]
    if not jpegs:
        ap.error(f"no .jpg files in {args.jpegs}")
    batches = [int(b) for b in args.batches.split(",")]
    server = RedisServer(binary=args.redis_server).start()
    try:
        rows = []
        for batch in batches:
            rows.append(run_batch(server.url, jpegs, args.cameras, args.frames_per_camera, batch))
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "models"}), flush=True)
    finally:
        server.cleanup()
    alone = detector_alone(jpegs, batches)
    print(json.dumps(alone))
    result = {
        "benchmark": "gpu_worker",
        "device": device_name(),
        "date": time.strftime("%Y-%m-%d"),
        "cameras": args.cameras,
        "frames_per_camera": args.frames_per_camera,
        "frame_size": list(cv2.imdecode(np.frombuffer(jpegs[0], np.uint8), cv2.IMREAD_COLOR).shape[1::-1]),
        "worker": rows,
        "detector_alone": alone,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
