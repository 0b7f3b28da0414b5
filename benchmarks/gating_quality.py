"""Does motion gating lose faces? Each video run twice through the real stages, side by side:
full detection on every sampled frame vs the default (motion, regions, carried faces, per-person classes).

    .venv/bin/python benchmarks/gating_quality.py --shared ../shared [--fps 5] [--out benchmarks/results/gating_quality.json]

For each ../shared/data/videos/*.mp4: the share of full-detection face observations (per frame)
that the gated run also reports (IoU >= 0.5, detected or carried), the violation documents of both
runs (class per person), the detection modes of the gated frames, and wall time. Files are processed
completely (no drops), so both runs see the same frames.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from maskwatch.cli.run_all import run_all  # noqa: E402
from maskwatch.config.settings import load_settings  # noqa: E402
from maskwatch.core.faces import iou_matrix  # noqa: E402
from maskwatch.core.keys import Keys  # noqa: E402
from maskwatch.runtime.private_redis import RedisServer  # noqa: E402

REALTIME = False


def run(video: Path, fps: float, gated: bool, workdir: Path) -> dict:
    server = RedisServer().start()
    events_path = workdir / f"{video.stem}-{'gated' if gated else 'full'}.jsonl"
    try:
        settings = load_settings(
            None,
            redis_url=server.url,
            data_dir=str(workdir / ("gated" if gated else "full")),
            cameras=[
                {
                    "id": "cam",
                    "url": str(video),
                    "fps": fps,
                    "motion": {"enabled": gated},
                    "realtime": REALTIME,
                }
            ],
            ingest={"metrics_port": 0},
            worker={"metrics_port": 0, "regions": gated},
            publisher={"metrics_port": 0},
        )
        t = time.perf_counter()
        rc = run_all(settings, exit_when_done=True, results_json=str(events_path), stop=None)
        seconds = time.perf_counter() - t
        client = redis.Redis.from_url(server.url)
        violations = [json.loads(f[b"event"]) for _, f in client.xrange(Keys().violations)]
    finally:
        server.cleanup()
    frames = [json.loads(line) for line in events_path.read_text().splitlines()]
    return {"rc": rc, "seconds": seconds, "frames": frames, "violations": violations}


def compare(full: dict, gated: dict) -> dict:
    by_seq = {e["seq"]: e for e in gated["frames"] if e.get("type") == "frame"}
    total = matched = 0
    for event in (e for e in full["frames"] if e.get("type") == "frame"):
        ref = np.array([f["box"] for f in event["faces"]], float).reshape(-1, 4)
        other = by_seq.get(event["seq"])
        if not len(ref):
            continue
        total += len(ref)
        if other is None or not other["faces"]:
            continue
        got = np.array([f["box"] for f in other["faces"]], float).reshape(-1, 4)
        matched += int((iou_matrix(ref, got).max(axis=1) >= 0.5).sum())

    def people(run: dict) -> list[str]:
        return sorted(v.get("class", "?") for v in run["violations"] if v.get("type") == "violation")

    modes = Counter(e.get("detection", "full") for e in gated["frames"] if e.get("type") == "frame")
    carried = sum(bool(f.get("carried")) for e in gated["frames"] for f in e.get("faces", []))
    return {
        "frames": len(full["frames"]),
        "full_faces": total,
        "matched_by_gated": matched,
        "match_ratio": round(matched / total, 4) if total else None,
        "violations_full": people(full),
        "violations_gated": people(gated),
        "violations_same": people(full) == people(gated),
        "gated_detection_modes": dict(modes),
        "gated_carried_faces": carried,
        "seconds_full": round(full["seconds"], 1),
        "seconds_gated": round(gated["seconds"], 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=Path(os.environ.get("MASKWATCH_SHARED", "../shared")))
    ap.add_argument("--fps", type=float, default=5.0)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/gating_quality.json"))
    args = ap.parse_args()
    videos = sorted((args.shared / "data" / "videos").glob("*.mp4"))
    if not videos:
        ap.error(f"no videos in {args.shared / 'data' / 'videos'}")
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for video in videos:
            full = run(video, args.fps, False, Path(tmp))
            gated = run(video, args.fps, True, Path(tmp))
            rows[video.name] = compare(full, gated)
            print(video.name, json.dumps(rows[video.name]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"benchmark": "gating_quality", "fps": args.fps, "videos": rows}, indent=1) + "\n"
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
