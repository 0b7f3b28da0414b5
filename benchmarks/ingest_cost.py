"""CPU the ingest spends per camera, old way and new way side by side, on the shared videos.

Per video (CPU and wall milliseconds per frame, ``time.process_time`` so every thread counts):

* decode, flat out: FFmpeg's automatic frame + slice threads (``decode_threads: 0``, what every source used
  before) vs one thread (``decode_threads`` unset on a live source, now);
* conversion of a sampled frame to the published BGR image at ``max_width`` 1280: ``to_ndarray`` then
  ``cv2.resize(INTER_AREA)`` (before) vs one swscale pass (``ingest.convert.FrameConverter``);
* motion: ``MotionDetector.detect`` on the published BGR image (before) vs on the decoded luma plane
  with ``out_size`` (now);
* JPEG encoding of the published image (unchanged, for scale).

Then the ingest alone with live cameras (the three videos in turn, looped in real time, 5 fps,
``max_width`` 1280, ``drop_policy: drop_oldest``) on a private redis-server, each variant in its own
process for ``--seconds``: ``old`` (a reader doing the conversion and motion as before, with
``decode_threads: 0``), ``new_auto_threads`` (the new reader, ``decode_threads: 0``) and ``new`` (the
new reader and defaults: one decoder thread per live camera); and, for the decoder threads alone, the
same cameras only decoding, paced at 30 fps (``decode_only_auto_threads`` vs ``decode_only_single_thread``:
the frame threads' extra CPU shows when decoding flat out, as above, far less when paced). Variants
alternate, ``--rounds`` times; medians in ``live.summary``::

    .venv/bin/python benchmarks/ingest_cost.py --shared ../shared --out benchmarks/results/ingest_cost.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.report import machine, write_report  # noqa: E402
from maskwatch.config.cameras import MotionConfig  # noqa: E402
from maskwatch.ingest.camera import CameraReader  # noqa: E402
from maskwatch.ingest.convert import FrameConverter, luma_plane, published_size  # noqa: E402
from maskwatch.ingest.motion import MotionDetector  # noqa: E402

VIDEOS = ("corridor_cctv_masked_1080p.mp4", "street_crowd_720p.mp4", "bare_then_masked_720p.mp4")
MAX_WIDTH = 1280
VARIANTS = ("old", "new_auto_threads", "new")
DECODE_VARIANTS = {"decode_only_auto_threads": 0, "decode_only_single_thread": 1}
"""Live runs that only decode (the same cameras, paced, no ingest): what the decoder threads cost there."""


class LegacyReader(CameraReader):
    """The camera reader as it was before one-pass conversion: the full-size BGR frame from
    ``to_ndarray``, then ``cv2.resize(INTER_AREA)`` when wider than ``max_width``; motion on that image."""

    def _images(self, frame: av.VideoFrame) -> tuple[np.ndarray, np.ndarray | None]:
        return old_convert(frame, self.camera.max_width), None


def old_convert(frame: av.VideoFrame, max_width: int | None) -> np.ndarray:
    image = frame.to_ndarray(format="bgr24")
    h, w = image.shape[:2]
    if max_width and w > max_width:
        h, w = round(h * max_width / w), max_width
        image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
    return image


def _ms(seconds: float, n: int) -> float:
    return round(1000 * seconds / max(1, n), 3)


def decode_cost(path: Path, threads: int, frames: int) -> dict[str, Any]:
    """CPU and wall ms per decoded frame of the first ``frames`` frames, ``threads`` as ``decode_threads``."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        codec = stream.codec_context
        codec.thread_type, codec.thread_count = ("NONE", 1) if threads == 1 else ("AUTO", threads)
        n, used = 0, 0
        c0, w0 = time.process_time(), time.perf_counter()
        for _ in container.decode(stream):
            n += 1
            if n == 1:
                used = codec.thread_count
            if n >= frames:
                break
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    return {
        "decode_threads": threads,
        "threads_used": used,
        "frames": n,
        "cpu_ms": _ms(cpu, n),
        "wall_ms": _ms(wall, n),
    }


def decode_costs(path: Path, frames: int, repeat: int) -> dict[str, dict[str, Any]]:
    """:func:`decode_cost` of automatic threads and one thread, alternated ``repeat`` times: medians."""
    runs: dict[str, list[dict[str, Any]]] = {"auto_threads": [], "single_thread": []}
    for _ in range(repeat):
        runs["auto_threads"].append(decode_cost(path, 0, frames))
        runs["single_thread"].append(decode_cost(path, 1, frames))
    out = {}
    for name, rows in runs.items():
        out[name] = rows[0] | {
            "cpu_ms": round(float(np.median([r["cpu_ms"] for r in rows])), 3),
            "wall_ms": round(float(np.median([r["wall_ms"] for r in rows])), 3),
            "repeats": len(rows),
        }
    return out


def sampled_frames(path: Path, count: int, every: int = 6) -> list[av.VideoFrame]:
    """Every ``every``-th decoded frame (5 fps of a 30 fps source), ``count`` of them, kept decoded."""
    out = []
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i % every == 0:
                out.append(frame)
                if len(out) >= count:
                    break
    return out


def timed(fn: Callable[[Any], Any], items: list, repeat: int) -> dict[str, float]:
    fn(items[0])  # warm-up: first-call allocations, swscale context
    c0, w0 = time.process_time(), time.perf_counter()
    for _ in range(repeat):
        for item in items:
            fn(item)
    n = repeat * len(items)
    return {"cpu_ms": _ms(time.process_time() - c0, n), "wall_ms": _ms(time.perf_counter() - w0, n)}


def motion_cost(frames: list[av.VideoFrame], images: list[np.ndarray], luma: bool, repeat: int) -> dict:
    """Motion over the sampled frames in order (a fresh detector each repeat): on the published BGR
    images, or on each frame's luma plane with boxes in the published size. ``results``: the first
    pass's, frame by frame (dropped from the report)."""
    times, n = 0.0, 0
    results = []
    for r in range(repeat):
        detector = MotionDetector(MotionConfig())
        for frame, image in zip(frames, images, strict=True):
            h, w = image.shape[:2]
            c0 = time.process_time()
            if luma:
                plane = luma_plane(frame)
                assert plane is not None
                result = detector.detect(plane, out_size=(w, h))
            else:
                result = detector.detect(image)
            times += time.process_time() - c0
            n += 1
            if r == 0:
                results.append(result)
    kinds = {k: sum(x.kind == k for x in results) for k in ("motion", "still", "calibrating")}
    return {"cpu_ms": _ms(times, n), "kinds": kinds, "results": results}


def _union(boxes: tuple) -> tuple[int, int, int, int]:
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def _iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    ix, iy = max(0, min(a[2], b[2]) - max(a[0], b[0])), max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def motion_agreement(old: list, new: list) -> dict[str, Any]:
    """How alike motion on the BGR image and on the luma plane came out, frame by frame: the same kind
    (motion / still / calibrating), and the IoU of the boxes' unions where both found motion."""
    both = [(a, b) for a, b in zip(old, new, strict=True) if a.boxes and b.boxes]
    ious = [_iou(_union(a.boxes), _union(b.boxes)) for a, b in both]
    return {
        "frames": len(old),
        "same_kind": sum(a.kind == b.kind for a, b in zip(old, new, strict=True)),
        "both_motion": len(both),
        "union_iou_mean": round(float(np.mean(ious)), 3) if ious else None,
        "union_iou_min": round(float(np.min(ious)), 3) if ious else None,
    }


def per_frame_costs(path: Path, decode_frames: int, samples: int, repeat: int) -> dict[str, Any]:
    frames = sampled_frames(path, samples)
    first = frames[0]
    old_images = [old_convert(f, MAX_WIDTH) for f in frames]
    converter = FrameConverter(MAX_WIDTH)
    new_images = [converter.bgr(f) for f in frames]
    diff = float(
        np.mean([np.abs(a.astype(np.int16) - b).mean() for a, b in zip(old_images, new_images, strict=True)])
    )
    params = [cv2.IMWRITE_JPEG_QUALITY, 85]
    row = {
        "video": path.name,
        "source": f"{first.width}x{first.height} {first.format.name}",
        "published": "x".join(map(str, published_size(first.width, first.height, MAX_WIDTH))),
        "decode": decode_costs(path, decode_frames, repeat),
        "convert": {
            "old_to_ndarray_cv2_resize": timed(lambda f: old_convert(f, MAX_WIDTH), frames, repeat),
            "new_one_swscale_pass": timed(converter.bgr, frames, repeat),
            "mean_abs_diff_old_vs_new": round(diff, 3),
        },
        "motion": {
            "old_bgr": motion_cost(frames, old_images, luma=False, repeat=repeat),
            "new_luma": motion_cost(frames, new_images, luma=True, repeat=repeat),
        },
        "motion_agreement": {},
        "jpeg_encode": timed(lambda im: cv2.imencode(".jpg", im, params), new_images, repeat),
    }
    d, c, m = row["decode"], row["convert"], row["motion"]
    row["motion_agreement"] = motion_agreement(m["old_bgr"].pop("results"), m["new_luma"].pop("results"))
    # What one published frame costs at 5 fps of a 30 fps source: 6 decodes, 1 conversion, motion, JPEG.
    jpeg = row["jpeg_encode"]["cpu_ms"]
    row["cpu_ms_per_published_frame"] = {
        "old": round(
            6 * d["auto_threads"]["cpu_ms"]
            + c["old_to_ndarray_cv2_resize"]["cpu_ms"]
            + m["old_bgr"]["cpu_ms"]
            + jpeg,
            2,
        ),
        "new": round(
            6 * d["single_thread"]["cpu_ms"]
            + c["new_one_swscale_pass"]["cpu_ms"]
            + m["new_luma"]["cpu_ms"]
            + jpeg,
            2,
        ),
    }
    return row


# --- live cameras through the ingest, one variant per process ------------------------------------------


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _redis_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def live_run(
    variant: str, redis_url: str, redis_pid: int, videos: Path, cameras: int, seconds: float
) -> dict:
    """The ingest alone with ``cameras`` live cameras for ``seconds`` after a warm-up (this process)."""
    import redis

    import maskwatch.ingest.service as ingest_service
    from maskwatch.config.settings import load_settings
    from maskwatch.ingest.service import IngestService

    redis.Redis.from_url(redis_url).flushall()
    if variant == "old":
        ingest_service.CameraReader = LegacyReader  # type: ignore[misc]
    threads = {} if variant == "new" else {"decode_threads": 0}
    cams = [
        {
            "id": f"cam{i}",
            "url": str(videos / VIDEOS[i % len(VIDEOS)]),
            "fps": 5,
            "kind": "live",
            "drop_policy": "drop_oldest",
            "loop": True,
            "realtime": True,
            "max_width": MAX_WIDTH,
            **threads,
        }
        for i in range(cameras)
    ]
    s = load_settings(
        None, redis_url=redis_url, cameras=cams, ingest={"metrics_port": 0, "stream_max_len": 50}
    )
    ingest = IngestService.from_settings(s)
    stop = threading.Event()
    thread = threading.Thread(target=ingest.run, args=(stop,), daemon=True)
    thread.start()
    time.sleep(3)  # warm-up: opens, first frames, swscale contexts

    def counts() -> tuple[int, int, int]:
        readers = ingest.readers
        return (
            sum(r.stats.frames_read for r in readers),
            sum(r.stats.frames_published for r in readers),
            sum(r.stats.frames_dropped + r.stats.frames_redis_dropped for r in readers),
        )

    read0, pub0, drop0 = counts()
    c0, r0, t0 = _cpu_seconds(), _redis_cpu(redis_pid), time.perf_counter()
    load0 = os.getloadavg()[0]
    time.sleep(seconds)
    wall = time.perf_counter() - t0
    cpu, redis_cpu = _cpu_seconds() - c0, _redis_cpu(redis_pid) - r0
    read1, pub1, drop1 = counts()
    stop.set()
    thread.join(timeout=20)
    return {
        "variant": variant,
        "decode_threads": threads.get("decode_threads"),
        "cameras": cameras,
        "seconds": round(wall, 2),
        "loadavg_1m_at_start": round(load0, 2),
        "ingest_cpu_pct_of_a_core": round(100 * cpu / wall, 1),
        "ingest_cpu_pct_per_camera": round(100 * cpu / wall / cameras, 2),
        "redis_cpu_pct_of_a_core": round(100 * redis_cpu / wall, 1),
        "frames_read_per_s": round((read1 - read0) / wall, 1),
        "frames_published_per_s": round((pub1 - pub0) / wall, 1),
        "cpu_ms_per_published_frame": round(1000 * cpu / max(1, pub1 - pub0), 2),
        "frames_dropped": drop1 - drop0,
    }


def decode_only_run(variant: str, videos: Path, cameras: int, seconds: float) -> dict:
    """``cameras`` threads decoding their video in a loop, paced at its 30 fps like the live cameras, no
    conversion, motion or Redis: the decoders' own CPU with ``decode_threads`` 0 or 1 (this process)."""
    threads = DECODE_VARIANTS[variant]
    counts = [0] * cameras
    stop = threading.Event()

    def decode(i: int) -> None:
        path = str(videos / VIDEOS[i % len(VIDEOS)])
        while not stop.is_set():
            with av.open(path) as container:
                stream = container.streams.video[0]
                codec = stream.codec_context
                codec.thread_type, codec.thread_count = ("NONE", 1) if threads == 1 else ("AUTO", threads)
                start = time.monotonic()
                for k, _ in enumerate(container.decode(stream), 1):
                    counts[i] += 1
                    ahead = k / 30 - (time.monotonic() - start)
                    if (ahead > 0 and stop.wait(ahead)) or stop.is_set():
                        return

    workers = [threading.Thread(target=decode, args=(i,), daemon=True) for i in range(cameras)]
    for w in workers:
        w.start()
    time.sleep(3)
    n0, c0, t0 = sum(counts), _cpu_seconds(), time.perf_counter()
    load0 = os.getloadavg()[0]
    time.sleep(seconds)
    wall, cpu, n = time.perf_counter() - t0, _cpu_seconds() - c0, sum(counts) - n0
    stop.set()
    for w in workers:
        w.join(timeout=10)
    return {
        "variant": variant,
        "decode_threads": threads,
        "cameras": cameras,
        "seconds": round(wall, 2),
        "loadavg_1m_at_start": round(load0, 2),
        "decode_cpu_pct_of_a_core": round(100 * cpu / wall, 1),
        "frames_decoded_per_s": round(n / wall, 1),
        "cpu_ms_per_decoded_frame": round(1000 * cpu / max(1, n), 3),
    }


def live_comparison(videos: Path, cameras: int, seconds: float, rounds: int) -> list[dict]:
    """Each variant in a fresh process, ``rounds`` times, interleaved (old, new, ...): the machine's
    other load falls on every variant alike."""
    from maskwatch.runtime.private_redis import RedisServer

    server = RedisServer().start()
    rows = []
    try:
        pid = server.proc.pid if server.proc else 0
        for r in range(rounds):
            for variant in (*VARIANTS, *DECODE_VARIANTS):
                args = [
                    sys.executable,
                    __file__,
                    "--live-child",
                    variant,
                    "--redis-url",
                    server.url,
                    "--redis-pid",
                    str(pid),
                    "--videos",
                    str(videos),
                    "--cameras",
                    str(cameras),
                    "--seconds",
                    str(seconds),
                ]
                out = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 120, check=True)
                row = json.loads(out.stdout.strip().splitlines()[-1]) | {"round": r}
                if variant in DECODE_VARIANTS:
                    said = f"{row['frames_decoded_per_s']} frames/s decoded"
                    pct = row["decode_cpu_pct_of_a_core"]
                else:
                    said = f"{row['frames_published_per_s']} frames/s published"
                    pct = row["ingest_cpu_pct_of_a_core"]
                print(f"  {variant:26s} {pct:5.1f} % of a core, {said}, load {row['loadavg_1m_at_start']}")
                rows.append(row)
    finally:
        server.cleanup()
    return rows


def _summary(rows: list[dict]) -> dict[str, dict[str, Any]]:
    """Median and runs of each variant's CPU (% of a core) and rate."""
    out: dict[str, dict[str, Any]] = {}
    for variant in (*VARIANTS, *DECODE_VARIANTS):
        mine = [r for r in rows if r["variant"] == variant]
        if not mine:
            continue
        what, rate = (
            ("decode", "frames_decoded_per_s")
            if variant in DECODE_VARIANTS
            else ("ingest", "frames_published_per_s")
        )
        pct = [r[f"{what}_cpu_pct_of_a_core"] for r in mine]
        out[variant] = {
            f"{what}_cpu_pct_of_a_core_median": round(float(np.median(pct)), 1),
            f"{what}_cpu_pct_of_a_core_runs": pct,
            f"{rate}_median": round(float(np.median([r[rate] for r in mine])), 1),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--shared",
        default=os.environ.get("MASKWATCH_SHARED") or str(Path(__file__).resolve().parents[2] / "shared"),
    )
    ap.add_argument("--decode-frames", type=int, default=300, help="frames decoded per thread setting")
    ap.add_argument("--samples", type=int, default=30, help="sampled frames converted / run through motion")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cameras", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=15.0, help="measured seconds of each live run")
    ap.add_argument("--rounds", type=int, default=3, help="live runs per variant (interleaved)")
    ap.add_argument("--no-live", action="store_true", help="per-frame costs only")
    ap.add_argument("--out", default="benchmarks/results/ingest_cost.json")
    ap.add_argument("--live-child", choices=(*VARIANTS, *DECODE_VARIANTS), help=argparse.SUPPRESS)
    ap.add_argument("--redis-url", help=argparse.SUPPRESS)
    ap.add_argument("--redis-pid", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--videos", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.live_child in DECODE_VARIANTS:
        row = decode_only_run(args.live_child, Path(args.videos), args.cameras, args.seconds)
    elif args.live_child:
        row = live_run(
            args.live_child, args.redis_url, args.redis_pid, Path(args.videos), args.cameras, args.seconds
        )
    if args.live_child:
        print(json.dumps(row))
        return 0
    videos = Path(args.shared) / "data" / "videos"
    missing = [v for v in VIDEOS if not (videos / v).is_file()]
    if missing:
        print(f"needs {', '.join(missing)} under {videos} (--shared or MASKWATCH_SHARED)", file=sys.stderr)
        return 2
    report: dict[str, Any] = {
        "benchmark": "ingest_cost",
        "machine": machine(),
        "versions": {"av": av.__version__, "ffmpeg": av.ffmpeg_version_info, "opencv": cv2.__version__},
        "cv2_threads": cv2.getNumThreads(),
        "max_width": MAX_WIDTH,
        "per_frame": [],
    }
    for name in VIDEOS:
        row = per_frame_costs(videos / name, args.decode_frames, args.samples, args.repeat)
        report["per_frame"].append(row)
        d, c, m = row["decode"], row["convert"], row["motion"]
        total = row["cpu_ms_per_published_frame"]
        print(
            f"{name}: CPU ms, old -> new: decode {d['auto_threads']['cpu_ms']} -> "
            f"{d['single_thread']['cpu_ms']}; convert {c['old_to_ndarray_cv2_resize']['cpu_ms']} -> "
            f"{c['new_one_swscale_pass']['cpu_ms']}; motion {m['old_bgr']['cpu_ms']} -> "
            f"{m['new_luma']['cpu_ms']}; jpeg {row['jpeg_encode']['cpu_ms']}; "
            f"per published frame {total['old']} -> {total['new']}"
        )
    if not args.no_live:
        print(f"{args.cameras} live cameras, {args.seconds:g} s each:")
        rows = live_comparison(videos, args.cameras, args.seconds, args.rounds)
        report["live"] = {
            "cameras": args.cameras,
            "fps": 5,
            "max_width": MAX_WIDTH,
            "videos": list(VIDEOS),
            "runs": rows,
            "summary": _summary(rows),
        }
    write_report(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
