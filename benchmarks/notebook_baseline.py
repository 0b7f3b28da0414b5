"""The original notebook's way versus maskwatch's pipeline, side by side on one video, every frame.

    .venv/bin/python benchmarks/notebook_baseline.py --shared ../shared \
        --out benchmarks/results/notebook_baseline.json

Notebook: every frame through OpenCV's res10 SSD (300x300 blob, confidence 0.5), then ``model.predict`` of
the shipped Keras classifier once per face. Pipeline: the real ingest, worker and publisher stages (what
``maskwatch run --source VIDEO --fps <video fps>`` builds, MASKWATCH_* env applies) on threads against a
private redis-server, timed from the start of the stages to the last frame event. Writes JSON; prints
frames/s of each and the ratio (the issue's target: >= 10x once motion gating lands).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.report import machine, write_report  # noqa: E402
from maskwatch.cli.stages import build_stage  # noqa: E402
from maskwatch.config.settings import load_settings  # noqa: E402
from maskwatch.runtime.private_redis import RedisServer  # noqa: E402

CONFIDENCE = 0.5


def video_fps(path: Path) -> tuple[float, int]:
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return float(s.average_rate or 30), int(s.frames or 0)


def notebook(video: Path, weights: Path, max_frames: int | None) -> dict[str, Any]:
    """The notebook's loop: cv2.VideoCapture, res10 SSD per frame, ``model.predict`` per face."""
    import keras

    from maskwatch.models.classifier import DEFAULT_MODEL_PATH

    net = cv2.dnn.readNetFromTensorflow(
        str(weights / "opencv_face_detector_uint8.pb"), str(weights / "opencv_face_detector.pbtxt")
    )
    model = keras.models.load_model(DEFAULT_MODEL_PATH, compile=False)
    size = int(model.input_shape[1])
    model.predict(np.zeros((1, size, size, 3), np.float32), verbose=0)  # warm-up, as a notebook re-run
    cap = cv2.VideoCapture(str(video))
    frames = faces = 0
    detect_s = classify_s = 0.0
    t0, c0 = time.perf_counter(), time.process_time()
    while max_frames is None or frames < max_frames:
        ok, frame = cap.read()
        if not ok:
            break
        frames += 1
        h, w = frame.shape[:2]
        t = time.perf_counter()
        blob = cv2.dnn.blobFromImage(frame, 1.0, (300, 300), (104.0, 177.0, 123.0))
        net.setInput(blob)
        detections = net.forward()
        detect_s += time.perf_counter() - t
        t = time.perf_counter()
        for i in range(detections.shape[2]):
            if detections[0, 0, i, 2] < CONFIDENCE:
                continue
            x1, y1, x2, y2 = (detections[0, 0, i, 3:7] * np.array([w, h, w, h])).astype(int)
            x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
            if x2 <= x1 or y2 <= y1:
                continue
            face = cv2.cvtColor(frame[y1:y2, x1:x2], cv2.COLOR_BGR2RGB)
            face = cv2.resize(face, (size, size)).astype(np.float32)
            model.predict(face[None], verbose=0)
            faces += 1
        classify_s += time.perf_counter() - t
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    cap.release()
    return {
        "frames": frames,
        "faces": faces,
        "seconds": round(elapsed, 3),
        "frames_per_s": round(frames / elapsed, 2),
        "cpu_seconds": round(cpu, 3),
        "detect_ms_per_frame": round(1000 * detect_s / max(frames, 1), 2),
        "classify_ms_per_frame": round(1000 * classify_s / max(frames, 1), 2),
    }


def pipeline(video: Path, weights: Path, fps: float, timeout_s: float) -> dict[str, Any]:
    """maskwatch's stages on the same file, every frame sampled; timed from their start to the last event."""
    server = RedisServer().start()
    events: list[float] = []
    lock = threading.Lock()

    def on_event(doc: dict) -> None:
        with lock:
            events.append(time.perf_counter())

    try:
        settings = load_settings(
            None,
            redis_url=server.url,
            cameras=[{"id": "cam1", "url": str(video), "fps": fps}],
            detector={"weights_dir": str(weights)},
            ingest={"metrics_port": 0},
            worker={"metrics_port": 0},
            publisher={"metrics_port": 0},
            clips={"dir": tempfile.mkdtemp(prefix="maskwatch-bench-clips-")},
        )
        t_build = time.perf_counter()
        services = {
            "ingest": build_stage("ingest", settings),
            "worker": build_stage("worker", settings),
            "publisher": build_stage("publisher", settings, on_event=on_event),
        }
        build_s = time.perf_counter() - t_build
        stops = {n: threading.Event() for n in services}
        threads = [
            threading.Thread(target=svc.run, args=(stops[n],), name=n, daemon=True)
            for n, svc in services.items()
        ]
        ingest, publisher, worker = services["ingest"], services["publisher"], services["worker"]
        c0 = time.process_time()
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        done = False
        while time.perf_counter() - t0 < timeout_s:
            if ingest.finished and publisher.done(["cam1"]):  # type: ignore[attr-defined]
                done = True
                break
            time.sleep(0.02)
        cpu = time.process_time() - c0
        for n in ("ingest", "worker", "publisher"):
            stops[n].set()
        for t in threads:
            t.join(timeout=20)
    finally:
        server.cleanup()
    with lock:
        last = events[-1] if events else time.perf_counter()
        first = events[0] if events else last
    elapsed = last - t0
    frames = len(events)
    ws = worker.stats  # type: ignore[attr-defined]
    return {
        "frames": frames,
        "completed": done,
        "setup_seconds": round(build_s, 3),
        "seconds": round(elapsed, 3),
        "frames_per_s": round(frames / elapsed, 2) if elapsed > 0 else None,
        "first_event_s": round(first - t0, 3),
        "steady_frames_per_s": round((frames - 1) / (last - first), 2) if last > first else None,
        "cpu_seconds": round(cpu, 3),
        "worker_frames_inferred": ws.frames,
        "worker_batches": ws.batches,
        "worker_faces": ws.faces,
        "worker_skipped": ws.skipped,
        "models": worker.inference.models,  # type: ignore[attr-defined]
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shared", type=Path, default=Path(os.environ.get("MASKWATCH_SHARED", "../shared")))
    p.add_argument("--video", default="street_crowd_720p.mp4", help="a video in <shared>/data/videos")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/notebook_baseline.json"))
    p.add_argument("--max-frames", type=int, default=None, help="notebook side only: stop after N frames")
    p.add_argument("--timeout", type=float, default=600.0, help="longest pipeline run in seconds")
    args = p.parse_args()
    video = args.shared / "data" / "videos" / args.video
    weights = args.shared / "weights"
    fps, n_frames = video_fps(video)
    nb = notebook(video, weights, args.max_frames)
    print(f"notebook: {nb['frames']} frames, {nb['faces']} faces, {nb['frames_per_s']:.2f} frames/s")
    mw = pipeline(video, weights, fps, args.timeout)
    print(f"maskwatch: {mw['frames']} frames, {mw['frames_per_s']} frames/s (completed: {mw['completed']})")
    ratio = round(mw["frames_per_s"] / nb["frames_per_s"], 2) if mw["frames_per_s"] else None
    print(f"ratio: {ratio}x (target >= 10x)")
    result = {
        "machine": machine(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "video": {"name": args.video, "fps": fps, "frames": n_frames},
        "notebook": nb,
        "maskwatch": mw,
        "speedup": ratio,
        "target_speedup": 10,
    }
    write_report(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
