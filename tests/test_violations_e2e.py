"""End to end: video files through ingest, worker (real detector and the shipped mask classifier) and
publisher over real Redis; violations, clips and snapshots as a user receives them."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import redis

from maskwatch.cli.run_all import run_all
from maskwatch.core.keys import Keys
from maskwatch.models.classifier import DEFAULT_MODEL_PATH
from tests.support.pipeline import make_settings

KEYS = Keys()
PRE_ROLL_S, POST_ROLL_S, FPS = 1.0, 1.0, 5

pytestmark = pytest.mark.skipif(
    not DEFAULT_MODEL_PATH.is_file(),
    reason=f"the mask classifier {DEFAULT_MODEL_PATH.name} is not in models/ yet",
)


def run_video(redis_url: str, weights_dir: Path, video: Path, camera: str, clips: Path) -> list[dict]:
    s = make_settings(
        redis_url,
        weights_dir,
        cameras=[{"id": camera, "url": str(video), "fps": FPS, "realtime": True}],
        classifier={"type": "keras"},
        clips={"dir": str(clips), "pre_roll_s": PRE_ROLL_S, "post_roll_s": POST_ROLL_S},
    )
    assert run_all(s, stop=threading.Event()) == 0
    client = redis.Redis.from_url(redis_url)
    return [
        json.loads(f[b"event"])
        for _, f in client.xrange(KEYS.violations)
        if json.loads(f[b"event"])["camera"] == camera
    ]


def test_bare_then_masked_raises_one_violation_for_the_bare_part_with_a_clip(
    redis_url, weights_dir, videos, tmp_path
):
    docs = run_video(
        redis_url, weights_dir, videos / "bare_then_masked_720p.mp4", "e2e-bare", tmp_path / "clips"
    )
    violations = [d for d in docs if d["type"] == "violation"]
    assert violations, f"no violation raised: {docs}"
    first = violations[0]
    assert first["class"] in ("without_mask", "incorrect_mask")
    assert first["seq"] <= 22, "decided during the bare-faced part (first 4.5 s = 23 frames at 5 fps)"
    assert all(v["seq"] <= 27 for v in violations), "the masked part raises nothing"
    ready = {d["violation_id"]: d for d in docs if d["type"] == "clip_ready"}
    assert first["id"] in ready, docs
    clip = ready[first["id"]]
    assert Path(clip["path"]).is_file() and Path(first["snapshot"]).is_file()
    with av.open(clip["path"]) as container:
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    assert len(frames) == clip["frames"] >= 3
    # Pre-roll frames precede the deciding one; real-time pacing makes 1 s about 5 frames (one frame
    # of timing jitter allowed at either end).
    pre_roll_frames = min(first["seq"], PRE_ROLL_S * FPS)
    assert clip["frames"] >= pre_roll_frames + 1 + POST_ROLL_S * FPS - 2
    x1, y1, x2, y2 = (int(v) for v in first["box"])
    band = np.s_[max(0, y1 - 30) : y1 + 6, max(0, x1 - 6) : x2 + 6]

    def violator_colour(img: np.ndarray) -> int:
        red = (img[..., 2] > 170) & (img[..., 1] < 90) & (img[..., 0] < 90)
        amber = (img[..., 2] > 200) & (img[..., 1] > 120) & (img[..., 1] < 210) & (img[..., 0] < 80)
        return int((red[band] | amber[band]).sum())

    assert max(violator_colour(f) for f in frames) > 200, "the violator's box is drawn in its class colour"
    assert cv2.imread(first["snapshot"]) is not None


def test_masked_corridor_person_raises_no_violation(redis_url, weights_dir, videos, tmp_path):
    docs = run_video(
        redis_url, weights_dir, videos / "corridor_cctv_masked_1080p.mp4", "e2e-corridor", tmp_path / "c"
    )
    assert [d for d in docs if d["type"] == "violation"] == []
