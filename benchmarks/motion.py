"""Cost of the ingest's motion detection per frame (``maskwatch.ingest.motion.MotionDetector``).

Runs the detector over frames of a real video (``--video``) or, without one, synthetic 720p frames with
a moving patch, and writes milliseconds per frame (mean, p50, p95) as JSON::

    python benchmarks/motion.py --out benchmarks/results/motion.json
    python benchmarks/motion.py --video ../shared/data/videos/clip.mp4 --frames 300
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from maskwatch.config.cameras import MotionConfig
from maskwatch.ingest.motion import MotionDetector


def synthetic_frames(n: int, width: int = 1280, height: int = 720) -> list[np.ndarray]:
    """A still textured scene with a bright patch crossing it."""
    rng = np.random.default_rng(0)
    scene = cv2.GaussianBlur(rng.integers(40, 200, (height, width, 3), dtype=np.uint8), (0, 0), 6)
    frames = []
    for i in range(n):
        frame = scene.copy()
        x = 100 + (i * 17) % (width - 300)
        cv2.rectangle(frame, (x, 250), (x + 160, 450), (240, 240, 240), -1)
        noise = rng.integers(-3, 4, frame.shape, dtype=np.int16)
        frames.append(np.clip(frame.astype(np.int16) + noise, 0, 255).astype(np.uint8))
    return frames


def video_frames(path: str, n: int, height: int) -> list[np.ndarray]:
    """The first ``n`` frames of ``path`` as BGR, scaled to ``height`` rows."""
    import av

    frames = []
    with av.open(path) as container:
        for frame in container.decode(video=0):
            w = round(frame.width * height / frame.height)
            frames.append(frame.reformat(w, height).to_ndarray(format="bgr24"))
            if len(frames) >= n:
                break
    return frames


def measure(frames: list[np.ndarray], config: MotionConfig, repeat: int) -> dict:
    times = []
    kinds: dict[str, int] = {}
    for _ in range(repeat):
        detector = MotionDetector(config)
        for frame in frames:
            t0 = time.perf_counter()
            result = detector.detect(frame)
            times.append((time.perf_counter() - t0) * 1e3)
            kinds[result.kind] = kinds.get(result.kind, 0) + 1
    ms = np.asarray(times)
    return {
        "frames": len(ms),
        "ms_mean": round(float(ms.mean()), 4),
        "ms_p50": round(float(np.percentile(ms, 50)), 4),
        "ms_p95": round(float(np.percentile(ms, 95)), 4),
        "kinds": kinds,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", help="a video file (default: synthetic frames)")
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--height", type=int, default=720, help="frame height fed to the detector")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="cv2.setNumThreads (one camera = one thread)")
    ap.add_argument("--out", help="write the JSON here too")
    args = ap.parse_args(argv)
    cv2.setNumThreads(args.threads)
    if args.video:
        frames = video_frames(args.video, args.frames, args.height)
    else:
        frames = synthetic_frames(args.frames, round(args.height * 16 / 9), args.height)
    h, w = frames[0].shape[:2]
    report = {
        "benchmark": "motion",
        "source": Path(args.video).name if args.video else "synthetic",
        "frame": f"{w}x{h}",
        "opencv": cv2.__version__,
        "threads": args.threads,
        "machine": platform.processor() or platform.machine(),
        **measure(frames, MotionConfig(), args.repeat),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
