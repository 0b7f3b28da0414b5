"""Clip writing throughput (frames per second encoded, per resolution and blur mode) and the cost of
``ViolationMonitor.observe`` on the publisher loop, on real frames of ../shared videos.

    nice .venv/bin/python benchmarks/clips.py --out benchmarks/results/clips.json

Writes JSON; prints a short table.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.report import machine, write_report  # noqa: E402
from maskwatch.config.settings import load_settings  # noqa: E402
from maskwatch.core.contracts import ResultMessage  # noqa: E402
from maskwatch.core.faces import Faces  # noqa: E402
from maskwatch.core.labels import CLASSES  # noqa: E402
from maskwatch.publisher.clips import ClipJob, encode_clip  # noqa: E402
from maskwatch.publisher.frames import BufferedFrame  # noqa: E402
from maskwatch.publisher.tracker import track_key  # noqa: E402
from maskwatch.publisher.violations import ViolationMonitor  # noqa: E402


def sampled(video: Path, count: int) -> tuple[list[bytes], int, int]:
    import av
    import cv2

    out, w, h = [], 0, 0
    with av.open(str(video)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i % 6:
                continue
            img = frame.to_ndarray(format="bgr24")
            h, w = img.shape[:2]
            out.append(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes())
            if len(out) == count:
                break
    return out, w, h


def clip_rate(jpegs: list[bytes], w: int, h: int, blur: str, max_width: int, workdir: Path) -> dict:
    box = np.array([[w * 0.4, h * 0.1, w * 0.6, h * 0.5], [w * 0.1, h * 0.4, w * 0.25, h * 0.7]])
    probs = [[0.05, 0.9, 0.05], [0.8, 0.1, 0.1]]  # without_mask 0.9 (track "1-0"), with_mask 0.8 ("1-1")
    faces = Faces(box, [0.98, 0.98], probs, CLASSES, track_ids=[track_key(1, 0), track_key(1, 1)])
    frames = [BufferedFrame("bench", i, 1000 + i / 5, faces, jpeg=j) for i, j in enumerate(jpegs)]
    job = ClipJob("id", "bench", workdir / f"{w}x{h}-{blur}.mp4", frames, {"1-0"}, ["v"], fps=5.0, blur=blur,
                  max_width=max_width)  # fmt: skip
    result = encode_clip(job)
    if result.error:
        raise RuntimeError(result.error)
    return {
        "source": f"{w}x{h}",
        "max_width": max_width,
        "blur": blur,
        "frames": result.frames,
        "write_s": round(result.write_s, 3),
        "frames_per_s": round(result.frames / result.write_s, 1),
        "mb": round(result.size_bytes / 1e6, 3),
    }


def observe_cost(jpegs: list[bytes], w: int, h: int, workdir: Path) -> dict:
    settings = load_settings(None, clips={"dir": str(workdir / "observe")})
    monitor = ViolationMonitor.from_settings(settings)
    probs = np.array([[0.1, 0.85, 0.05]], np.float32)
    times = []
    for i in range(300):
        box = np.array([[w * 0.4 + i, h * 0.1, w * 0.6 + i, h * 0.5]], np.float32)
        faces = Faces(box, np.array([0.9], np.float32), probs, CLASSES)
        r = ResultMessage("obs", i, 1000 + i / 5, w, h, 0.0, faces, image=jpegs[i % len(jpegs)])
        t = time.perf_counter()
        monitor.observe(r, None)
        times.append(time.perf_counter() - t)
    monitor.close(time.time() + 60)
    ms = np.array(times) * 1000
    return {"results": len(ms), "p50_ms": round(float(np.median(ms)), 3), "p99_ms": round(float(np.percentile(ms, 99)), 3),
            "max_ms": round(float(ms.max()), 3), "note": "snapshots and clips are written on the clip-writer thread"}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", default=os.environ.get("MASKWATCH_SHARED", str(ROOT.parent / "shared")))
    parser.add_argument("--frames", type=int, default=30, help="frames per clip (5 fps sampling)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "clips.json"))
    args = parser.parse_args()
    videos = Path(args.shared) / "data" / "videos"
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in ("bare_then_masked_720p.mp4", "corridor_cctv_masked_1080p.mp4"):
            jpegs, w, h = sampled(videos / name, args.frames)
            for blur, max_width in (("none", 1280), ("all", 1280), ("none", 1920)):
                if max_width > w and max_width != 1280:
                    continue
                runs.append(clip_rate(jpegs, w, h, blur, max_width, work))
        jpegs, w, h = sampled(videos / "bare_then_masked_720p.mp4", 20)
        observe = observe_cost(jpegs, w, h, work)
    report = {
        "benchmark": "clips",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "encoder": "libx264 preset veryfast crf 26 (PyAV)",
        "clips": runs,
        "observe": observe,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_report(args.out, report)
    for r in runs:
        print(f"{r['source']:>10} -> width {r['max_width']:4d} blur {r['blur']:4s}: {r['frames_per_s']:6.1f} frames/s "
              f"({r['frames']} frames in {r['write_s']} s, {r['mb']} MB)")  # fmt: skip
    print(f"observe(): p50 {observe['p50_ms']} ms, p99 {observe['p99_ms']} ms, max {observe['max_ms']} ms")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
