"""Crops per second of the shipped mask classifier at batch sizes 1, 16 and 64 (preprocessing included),
on both runtimes (TensorFlow Lite, the CPU default, and TensorFlow).

Usage: .venv/bin/python benchmarks/classifier_throughput.py [--model PATH] [--seconds 5] [--out JSON]

Crops are real scene face boxes from ../shared (cut as the worker cuts them) when available,
otherwise random-sized noise crops. Also times ``model.predict`` for comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _crops(n: int) -> tuple[list[np.ndarray], str]:
    shared = Path(os.environ.get("MASKWATCH_SHARED", ROOT.parent / "shared"))
    scenes = shared / "data" / "scenes"
    if scenes.is_dir():
        from maskwatch.models.training.data import load_scene_crops
        from maskwatch.models.training.splits import load_split

        data = load_scene_crops(scenes, only=load_split("scenes")["test"][:200])
        return [data.crops[i % len(data)] for i in range(n)], "scene test face boxes (margin 0.15)"
    rng = np.random.default_rng(0)
    return [
        rng.integers(0, 255, (s, s, 3), np.uint8) for s in rng.integers(16, 160, n)
    ], "random crops 16-160 px"


def _rate(fn, batch: list[np.ndarray], seconds: float) -> tuple[float, float]:
    fn(batch)
    fn(batch)
    times = []
    t_end = time.perf_counter() + seconds
    while time.perf_counter() < t_end or len(times) < 3:
        t0 = time.perf_counter()
        fn(batch)
        times.append(time.perf_counter() - t0)
    med = float(np.median(times))
    return len(batch) / med, med * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--seconds", type=float, default=5.0, help="Timing per batch size")
    ap.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "classifier_throughput.json"
    )
    args = ap.parse_args()

    from maskwatch.models.keras_classifier import KerasMaskClassifier

    pool, kind = _crops(64)
    results = []
    for runtime in ("tflite", "tensorflow"):
        clf = KerasMaskClassifier.load(args.model, runtime=runtime)
        for bs in (1, 16, 64):
            batch = pool[:bs]
            rate, ms = _rate(clf.predict, batch, args.seconds)
            x = clf.preprocess(batch)
            rate_pre, _ = _rate(lambda b, x=x, clf=clf: clf.predict_preprocessed(x), batch, args.seconds / 2)
            row = {
                "runtime": runtime,
                "batch": bs,
                "crops_per_s": round(rate, 1),
                "ms_per_batch": round(ms, 2),
                "crops_per_s_network_only": round(rate_pre, 1),
            }
            if runtime == "tensorflow":
                rate_mp, ms_mp = _rate(
                    lambda b, x=x, clf=clf: clf.model.predict(x.astype(np.float32), verbose=0),
                    batch,
                    args.seconds / 2,
                )
                row |= {
                    "crops_per_s_model_predict": round(rate_mp, 1),
                    "ms_per_batch_model_predict": round(ms_mp, 2),
                }
            results.append(row)
            print(json.dumps(row), flush=True)
    doc = {
        "model": clf.name,
        "input_size": clf.input_size,
        "crops": kind,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_at_end": os.getloadavg()[0],
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "method": "median time of repeated KerasMaskClassifier.predict calls (resize + network), after 2 warm-up "
        "calls; runtime tflite (XNNPACK, all cores) and tensorflow (tf.function); model.predict for comparison",
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    print(args.out)


if __name__ == "__main__":
    main()
