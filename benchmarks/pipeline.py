"""Benchmark the pipeline on real Redis and real video: worker throughput by batch size, end-to-end
latency with 1, 4 and 8 live cameras (events per camera, fraction of frames that became events), the CPU
cost per frame of each step, and CPU per camera at 5 fps for a still and a busy scene.

    .venv/bin/python benchmarks/pipeline.py --shared ../shared --out benchmarks/results/pipeline.json

Writes JSON; prints a short table. Uses the configured models (MASKWATCH_* env applies).
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.report import machine, write_report  # noqa: E402
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
        client.xadd(keys.frames(cam), FrameMessage(cam, i, time.time(), w, h, jpeg).to_fields())  # type: ignore[arg-type]
    svc = WorkerService.from_settings(settings_for(url, weights, [], max_batch=batch, max_wait_ms=5))
    svc.consumer.discover(force=True)
    svc.step()  # warm-up batch (graph building, allocations)
    done0, faces0 = svc.stats.frames, svc.stats.faces
    steps0 = worker_step_seconds()
    t0, c0 = time.perf_counter(), time.process_time()
    while svc.stats.frames < len(jpegs):
        svc.step()
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    frames, faces = svc.stats.frames - done0, svc.stats.faces - faces0
    steps = {k: v - steps0.get(k, 0.0) for k, v in worker_step_seconds().items()}
    publisher = PublisherService.from_settings(settings_for(url, weights, []))
    publisher.consumer.discover(force=True)
    c0 = time.process_time()
    while publisher.step(0):
        pass
    publish_cpu = time.process_time() - c0
    return {
        "batch": batch,
        "frames": frames,
        "seconds": round(elapsed, 3),
        "frames_per_s": round(frames / elapsed, 2),
        "faces_per_s": round(faces / elapsed, 2),
        "models": svc.inference.models,
        "worker_cpu_ms_per_frame": round(1000 * cpu / frames, 2),
        "worker_step_ms_per_frame": {k: round(1000 * v / frames, 2) for k, v in sorted(steps.items())},
        "publisher_cpu_ms_per_frame": round(1000 * publish_cpu / max(1, len(jpegs)), 2),
    }


def worker_step_seconds() -> dict[str, float]:
    """Seconds so far of each worker step (``maskwatch_worker_inference_seconds{step}``, this process)."""
    from prometheus_client import REGISTRY

    out: dict[str, float] = {}
    for metric in REGISTRY.collect():
        if metric.name != "maskwatch_worker_inference_seconds":
            continue
        for sample in metric.samples:
            if sample.name.endswith("_sum"):
                out[sample.labels["step"]] = sample.value
    return out


def redis_cpu_seconds(server: RedisServer) -> float:
    """User + system CPU seconds of the private redis-server so far (Linux /proc)."""
    proc = getattr(server, "proc", None)
    try:
        fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()  # type: ignore[union-attr]
    except (AttributeError, OSError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def end_to_end(
    url: str,
    weights: Path,
    videos: Path,
    n_cameras: int,
    seconds: float,
    fps: float,
    sources: list[Path] | None = None,
    server: RedisServer | None = None,
    newest_first: bool = False,
    regions: bool | None = None,
) -> dict:
    """Live cameras (looped files paced at their native rate) through all three stages; ``sources`` (default:
    the shared videos in turn) gives each camera's video; ``regions``: ``worker.regions`` (None: as configured)."""
    client = redis.Redis.from_url(url)
    client.flushall()
    paths = sources or [videos / v for v in VIDEOS]
    cams = [
        {
            "id": f"cam{i}",
            "url": str(paths[i % len(paths)]),
            "fps": fps,
            "kind": "live",
            "drop_policy": "drop_oldest",
            "loop": True,
            "realtime": True,
            "max_width": 1280,
        }
        for i in range(n_cameras)
    ]
    extra = {} if regions is None else {"regions": regions}
    s = settings_for(url, weights, cams, max_batch=16, max_wait_ms=30, **extra)
    latencies: list[float] = []
    worker_latencies: list[float] = []  # capture -> result written (the rest is the publisher's)
    per_camera: dict[str, int] = {str(c["id"]): 0 for c in cams}
    lock = threading.Lock()

    def on_event(doc: dict) -> None:
        with lock:
            latencies.append(doc["published_ts"] - doc["capture_ts"])
            worker_latencies.append(doc["processed_ts"] - doc["capture_ts"])
            per_camera[doc["camera"]] = per_camera.get(doc["camera"], 0) + 1

    services = [
        IngestService.from_settings(s),
        WorkerService.from_settings(s),
        PublisherService.from_settings(s, on_event),
    ]
    ingest, worker = services[0], services[1]
    if newest_first:
        _newest_first(worker)
    stops = [threading.Event() for _ in services]
    threads = [
        threading.Thread(target=svc.run, args=(st,), daemon=True)
        for svc, st in zip(services, stops, strict=True)
    ]
    for t in threads:
        t.start()
    time.sleep(5)  # warm-up: model load, first batches

    def produced() -> int:
        return sum(r.stats.frames_published for r in ingest.readers)

    with lock:
        latencies.clear()
        worker_latencies.clear()
        per_camera = dict.fromkeys(per_camera, 0)
    produced0, skipped0, detections0 = produced(), worker.stats.skipped, worker_detections()
    c0, r0, t0 = time.process_time(), redis_cpu_seconds(server) if server else 0.0, time.perf_counter()
    time.sleep(seconds)
    with lock:
        measured = list(latencies)
        measured_worker = list(worker_latencies)
        events_by_camera = dict(per_camera)
    detections1 = worker_detections()
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    redis_cpu = (redis_cpu_seconds(server) - r0) if server else 0.0
    produced_in_window = produced() - produced0
    skipped = worker.stats.skipped - skipped0
    for st in stops:
        st.set()
    for t in threads:
        t.join(timeout=20)
    published = sum(r.stats.frames_published for r in ingest.readers)
    dropped = sum(r.stats.frames_dropped for r in ingest.readers)
    lat = np.array(measured) if measured else np.array([np.nan])
    wlat = np.array(measured_worker) if measured_worker else np.array([np.nan])
    detections: dict[str, int] = {}
    for (cam, mode), n in detections1.items():
        if cam in per_camera:
            detections[mode] = detections.get(mode, 0) + n - detections0.get((cam, mode), 0)
    return {
        "cameras": n_cameras,
        "regions": s.worker.regions,
        "detection_modes": detections,
        "target_fps_per_camera": fps,
        "seconds": seconds,
        "events": len(measured),
        "events_per_s": round(len(measured) / seconds, 2),
        "latency_p50_s": round(float(np.percentile(lat, 50)), 3),
        "latency_p99_s": round(float(np.percentile(lat, 99)), 3),
        "capture_to_result_p50_s": round(float(np.percentile(wlat, 50)), 3),
        "capture_to_result_p99_s": round(float(np.percentile(wlat, 99)), 3),
        "frames_published": published,
        "frames_dropped": dropped,
        "frames_produced_in_window": produced_in_window,
        "event_fraction": round(len(measured) / produced_in_window, 3) if produced_in_window else None,
        "events_by_camera": events_by_camera,
        "worker_skipped_in_window": skipped,
        "newest_first": worker.consumer.newest_first,
        "cpu_seconds": round(cpu, 3),
        "redis_cpu_seconds": round(redis_cpu, 3),
        "cpu_percent_of_core_per_camera": round(100 * (cpu + redis_cpu) / wall / n_cameras, 1),
    }


def worker_detections() -> dict[tuple[str, str], int]:
    """(camera, detection mode) -> frames searched so far, from the worker's metric (this process)."""
    from maskwatch.worker import metrics as worker_metrics

    out = {}
    for metric in worker_metrics.DETECTIONS.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                out[(sample.labels["camera"], sample.labels["detection"])] = int(sample.value)
    return out


def _newest_first(worker: WorkerService) -> None:
    """Turn on the consumer's newest-first reads for a worker that does not yet do so itself: superseded
    frames are acked at once and counted as skipped (``superseded``), as the worker is to do."""
    consumer = worker.consumer
    if consumer.newest_first:
        return
    from maskwatch.worker import metrics as worker_metrics

    consumer.newest_first = True
    read = consumer.read

    def read_and_ack(count: int, block_ms: int) -> list:
        out = read(count, block_ms)
        superseded = consumer.take_superseded()
        if superseded:
            pipe = worker.client.pipeline(transaction=True)
            consumer.ack(superseded, pipe)
            pipe.execute()
            for e in superseded:
                worker_metrics.FRAMES_SKIPPED.labels(worker.keys.camera_of(e.stream), "superseded").inc()
            worker.stats.skipped += len(superseded)
        return out

    consumer.read = read_and_ack


def still_video(path: Path, seconds: float = 10.0, fps: int = 25) -> Path:
    """A 1280x720 H.264 video of a static scene (textured background, shapes, nobody moving)."""
    import av

    rng = np.random.default_rng(7)
    texture = cv2.GaussianBlur(rng.integers(0, 255, (720, 1280, 3), dtype=np.uint8), (0, 0), 6)
    scene = cv2.addWeighted(texture, 0.5, np.full_like(texture, 120), 0.5, 0)
    cv2.rectangle(scene, (100, 420), (600, 700), (70, 90, 110), -1)  # a counter
    cv2.rectangle(scene, (800, 80), (1180, 400), (200, 200, 190), -1)  # a window
    cv2.line(scene, (0, 410), (1280, 380), (40, 40, 40), 5)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
        frame = av.VideoFrame.from_ndarray(scene.astype(np.uint8), format="bgr24")
        for _ in range(int(seconds * fps)):
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def step_costs(video: Path, n_frames: int, workdir: Path) -> dict:
    """CPU ms per frame of the ingest steps (decode, motion, JPEG encode) and of clip writing, in-process."""
    import av

    from maskwatch.config.cameras import MotionConfig
    from maskwatch.ingest.motion import MotionDetector

    decode = motion = encode = 0.0
    images: list[np.ndarray] = []
    detector = MotionDetector(MotionConfig())
    with av.open(str(video)) as c:
        frames = c.decode(video=0)
        while len(images) < n_frames:
            t = time.process_time()
            try:
                image = next(frames).to_ndarray(format="bgr24")
            except StopIteration:
                break
            decode += time.process_time() - t
            t = time.process_time()
            detector.detect(image)
            motion += time.process_time() - t
            t = time.process_time()
            cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
            encode += time.process_time() - t
            images.append(image)
    n = len(images)
    return {
        "video": video.name,
        "frames": n,
        "decode": round(1000 * decode / n, 2),
        "motion": round(1000 * motion / n, 2),
        "jpeg_encode": round(1000 * encode / n, 2),
        "clips": clip_cost(images[:30], workdir),
    }


def clip_cost(images: list[np.ndarray], workdir: Path) -> float:
    """CPU ms per clip frame of writing a violation clip (boxes drawn, H.264) from buffered JPEG frames."""
    from maskwatch.core.faces import Faces
    from maskwatch.core.labels import CLASSES
    from maskwatch.publisher.clips import ClipJob, encode_clip
    from maskwatch.publisher.frames import BufferedFrame
    from maskwatch.publisher.tracker import track_key

    h, w = images[0].shape[:2]
    box = np.array([[w * 0.4, h * 0.1, w * 0.6, h * 0.5]])
    probs = np.array([[0.05, 0.9, 0.05]], np.float32)
    ids = np.array([track_key(1, 0)])
    faces = Faces(box, np.array([0.98], np.float32), probs, CLASSES, track_ids=ids)
    jpegs = [cv2.imencode(".jpg", im, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes() for im in images]
    frames = [BufferedFrame("bench", i, 1000 + i / 5, faces, jpeg=j) for i, j in enumerate(jpegs)]
    job = ClipJob("id", "bench", workdir / "cost.mp4", frames, {"1-0"}, ["v"], fps=5.0)
    t = time.process_time()
    result = encode_clip(job)
    cpu = time.process_time() - t
    if result.error:
        raise RuntimeError(result.error)
    return round(1000 * cpu / max(1, result.frames), 2)


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
    p.add_argument(
        "--newest-first",
        action="store_true",
        help="live runs: newest frame first (superseded frames acked and counted) if the worker does not do it",
    )
    p.add_argument(
        "--regions",
        default="",
        help="live and CPU-per-camera runs once per worker.regions value, side by side (e.g. 'off,on'); "
        "'' runs them as configured",
    )
    p.add_argument("--cost-seconds", type=float, default=15.0, help="measured seconds per CPU-per-camera run")
    p.add_argument(
        "--cost-cameras", type=int, default=2, help="cameras per CPU-per-camera run (0 skips them)"
    )
    args = p.parse_args()
    modes: list[bool | None] = [{"on": True, "off": False}[m] for m in args.regions.split(",") if m] or [None]
    videos, weights = args.shared / "data" / "videos", args.shared / "weights"
    server = RedisServer().start()
    workdir = Path(tempfile.mkdtemp(prefix="maskwatch-bench-"))
    cost: dict = {}
    try:
        batches = [int(b) for b in args.batches.split(",") if b]
        throughput = [worker_throughput(server.url, weights, videos, b, args.frames) for b in batches]
        for r in throughput:
            print(f"batch {r['batch']:>2}: {r['frames_per_s']:7.2f} frames/s {r['faces_per_s']:7.2f} faces/s")
        counts = [int(n) for n in args.cameras.split(",") if n]
        latency = [
            end_to_end(
                server.url,
                weights,
                videos,
                n,
                args.seconds,
                args.fps,
                server=server,
                newest_first=args.newest_first,
                regions=mode,
            )
            for n in counts
            for mode in modes
        ]
        for r in latency:
            print(
                f"{r['cameras']} camera(s), regions {r['regions']}: {r['events_per_s']:6.2f} events/s  p50 {r['latency_p50_s']:.3f}s  "
                f"p99 {r['latency_p99_s']:.3f}s  dropped {r['frames_dropped']}/{r['frames_published']}  "
                f"events/produced {r['event_fraction']}  by camera {r['events_by_camera']}"
            )
        busy = videos / "street_crowd_720p.mp4"
        steps = step_costs(busy, 60, workdir)
        largest = max(throughput, key=lambda r: r["batch"]) if throughput else {}
        cost = {
            "cpu_ms_per_frame": {
                "decode": steps["decode"],
                "motion": steps["motion"],
                "jpeg_encode": steps["jpeg_encode"],
                **{k: v for k, v in largest.get("worker_step_ms_per_frame", {}).items() if k != "decode"},
                "worker_jpeg_decode": largest.get("worker_step_ms_per_frame", {}).get("decode"),
                "publish": largest.get("publisher_cpu_ms_per_frame"),
                "clips": steps["clips"],
            },
            "worker_cpu_ms_per_frame": largest.get("worker_cpu_ms_per_frame"),
            "notes": (
                f"decode/motion/jpeg_encode: process CPU in-process on {steps['frames']} frames of {busy.name}; "
                f"regions/detect/classify/worker_jpeg_decode: worker step seconds per frame "
                f"(maskwatch_worker_inference_seconds, batch {largest.get('batch')}; multi-threaded runtimes "
                "can use more CPU than that); publish: publisher process CPU per result; clips: CPU per "
                "frame of a violation clip (only frames in clips pay it)"
            ),
        }
        print(f"CPU ms per frame: {cost['cpu_ms_per_frame']}")
        if args.cost_cameras:
            still = still_video(workdir / "still_720p.mp4")
            per_camera = []
            for (scene, source), mode in itertools.product((("still", still), ("busy", busy)), modes):
                r = end_to_end(
                    server.url,
                    weights,
                    videos,
                    args.cost_cameras,
                    args.cost_seconds,
                    5.0,
                    [source],
                    server,
                    newest_first=args.newest_first,
                    regions=mode,
                )
                per_camera.append({"scene": scene, "video": source.name, **r})
                print(
                    f"{scene}, regions {r['regions']}: {r['cpu_percent_of_core_per_camera']}% of a core per camera at 5 fps "
                    f"({args.cost_cameras} cameras, {r['events_per_s']} events/s)"
                )
            cost["cpu_per_camera"] = per_camera
    finally:
        server.cleanup()
    result = {
        "machine": machine(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "worker_throughput": throughput,
        "end_to_end_latency": latency,
        "stage_cost": cost,
    }
    write_report(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
