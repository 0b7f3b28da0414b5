"""Detector speed: milliseconds per frame on real 720p/1080p CCTV frames and on scene photos, batch 1 and 8.

    .venv/bin/python benchmarks/detectors.py --out benchmarks/results/detectors.json

Each detector runs with its default settings (tuned threshold, box calibration on). One warm-up
batch is not timed; the median over batches, best of ``--repeats`` passes, is reported. Rows of
detectors not named by ``--detectors`` are kept from an existing ``--out`` file. ``--threads`` caps OpenCV and TensorFlow threads (default 1, the worker's
share of this 2-core machine); other processes on the machine make these numbers noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MASKWATCH_SHARED", ROOT.parent / "shared"))
CONFIGS: dict[str, dict] = {
    "opencv-res10": {"type": "opencv-res10"},
    "blazeface-back": {"type": "blazeface", "blazeface_variant": "back"},
    "yunet": {"type": "yunet", "upscale_to": None, "downscale_to": None},
    "yunet+up1280+down400": {"type": "yunet", "upscale_to": 1280, "downscale_to": 400},
    "mtcnn": {"type": "mtcnn"},
    "retinaface": {"type": "retinaface"},
    "retinaface+flip": {"type": "retinaface", "test_time_flip": True},
}


def read_frames(video: Path, count: int, step: int = 5) -> list:
    import av

    frames = []
    with av.open(str(video)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i % step == 0:
                frames.append(f.to_ndarray(format="bgr24"))
            if len(frames) == count:
                break
    return frames


def time_detector(detector, frames: list, batch: int, repeats: int) -> float:
    """Milliseconds per frame: the median over batches, the best of ``repeats`` passes.

    Median and minimum both resist the bursts of other processes on a shared machine.
    """
    detector.detect(frames[:batch])  # warm-up
    passes = []
    for _ in range(repeats):
        per_frame = []
        for i in range(0, len(frames), batch):
            chunk = frames[i : i + batch]
            t0 = time.perf_counter()
            detector.detect(chunk)
            per_frame.append(1000 * (time.perf_counter() - t0) / len(chunk))
        passes.append(float(np.median(per_frame)))
    return min(passes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=32, help="Frames per source")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3, help="Timed passes per case; the best is kept")
    ap.add_argument("--detectors", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "detectors.json")
    args = ap.parse_args()
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(args.threads))
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import cv2

    from maskwatch.config.settings import DetectorSettings
    from maskwatch.runtime.model_factory import build_detector

    cv2.setNumThreads(args.threads)
    videos = SHARED / "data" / "videos"
    scenes = sorted((SHARED / "data" / "scenes" / "images").glob("*.jpg"))[:: 1745 // args.frames][
        : args.frames
    ]
    sources = {
        "cctv_1080p": read_frames(videos / "corridor_cctv_masked_1080p.mp4", args.frames),
        "street_720p": read_frames(videos / "street_crowd_720p.mp4", args.frames),
        "scene_photos": [cv2.imread(str(p)) for p in scenes],
    }
    previous = json.loads(args.out.read_text())["rows"] if args.out.exists() else []
    rows = [r for r in previous if r["detector"] in CONFIGS and r["detector"] not in args.detectors]
    for name in args.detectors:
        detector = build_detector(DetectorSettings(weights_dir=SHARED / "weights", **CONFIGS[name]))
        row = {"detector": name, "name": detector.name}
        for source, frames in sources.items():
            row[f"{source}_ms_batch1"] = round(time_detector(detector, frames, 1, args.repeats), 1)
            if source != "scene_photos":  # mixed sizes: no batching gain to measure
                row[f"{source}_ms_batch8"] = round(time_detector(detector, frames, 8, args.repeats), 1)
        rows.append(row)
        print(json.dumps(row), flush=True)
    report = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared)",
        "threads": args.threads,
        "frames_per_source": args.frames,
        "repeats": args.repeats,
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
