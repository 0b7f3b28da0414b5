"""The shipped ``.keras`` classifier under another Keras 3 backend (JAX by default), e.g. on a GPU machine
that has JAX but no TensorFlow: same probabilities as the CPU runtimes, and crops per second.

Two steps, because the machine that runs the check may have neither TensorFlow nor ../shared:

    .venv/bin/python benchmarks/classifier_keras_backend.py --make-reference   # here: TF + ../shared
    python3 benchmarks/classifier_keras_backend.py [--backend jax]            # there: keras + jax

The reference (``.gpucheck/ref.npz``, git-ignored) holds preprocessed scene test face boxes (uint8,
as ``KerasMaskClassifier.preprocess`` makes them) and the TFLite and TensorFlow probabilities of the
shipped model. Timing is of the jitted network on a device-resident batch (no host transfer, no resize).
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
MODEL = ROOT / "models" / "mask_classifier.keras"


def make_reference(path: Path, n: int = 128) -> None:
    """Preprocessed scene test crops and the CPU runtimes' probabilities for them."""
    from maskwatch.models.keras_classifier import KerasMaskClassifier
    from maskwatch.models.training.data import load_scene_crops
    from maskwatch.models.training.splits import load_split

    shared = Path(os.environ.get("MASKWATCH_SHARED", ROOT.parent / "shared"))
    data = load_scene_crops(shared / "data" / "scenes", only=load_split("scenes")["test"][:40])
    x = KerasMaskClassifier.load(MODEL, runtime="tflite").preprocess(data.crops[:n])
    probs = {
        runtime: KerasMaskClassifier.load(MODEL, runtime=runtime).predict_preprocessed(x)
        for runtime in ("tflite", "tensorflow")
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, x=x, p_tflite=probs["tflite"], p_tensorflow=probs["tensorflow"])
    print(
        f"{path}: {len(x)} crops, runtimes differ by {np.abs(probs['tflite'] - probs['tensorflow']).max():.2e}"
    )


def check(reference: Path, backend: str, seconds: float, batches: list[int]) -> dict:
    """Probabilities against the reference, and crops/s per batch size, under ``backend``."""
    os.environ["KERAS_BACKEND"] = backend
    import keras

    ref = np.load(reference)
    model = keras.models.load_model(MODEL, compile=False)
    x = ref["x"].astype(np.float32)
    p = keras.ops.convert_to_numpy(model(x, training=False))
    report = {
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": platform.machine(),
        "crops": len(x),
        "max_abs_diff_vs_tflite": float(np.abs(p - ref["p_tflite"]).max()),
        "max_abs_diff_vs_tensorflow": float(np.abs(p - ref["p_tensorflow"]).max()),
        "same_class_as_tflite": int((p.argmax(1) == ref["p_tflite"].argmax(1)).sum()),
    }
    run, put, sync = model, np.asarray, np.asarray
    if backend == "jax":
        import jax

        report["devices"] = [str(d) for d in jax.devices()]
        run, put = jax.jit(lambda a: model(a, training=False)), jax.device_put
        sync = jax.block_until_ready
    rates = []
    for batch in batches:
        xb = put(np.resize(x, (batch, *x.shape[1:])))
        sync(run(xb))
        sync(run(xb))
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds or n < 3:
            sync(run(xb))
            n += 1
        dt = (time.perf_counter() - t0) / n
        rates.append(
            {"batch": batch, "ms_per_batch": round(1000 * dt, 3), "crops_per_s": round(batch / dt, 1)}
        )
        print(json.dumps(rates[-1]), flush=True)
    report["results"] = rates
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--make-reference", action="store_true", help="Write the reference (needs TF and ../shared)"
    )
    ap.add_argument("--reference", type=Path, default=ROOT / ".gpucheck" / "ref.npz")
    ap.add_argument("--backend", default="jax", choices=["jax", "tensorflow", "torch"])
    ap.add_argument("--seconds", type=float, default=2.0, help="Timing per batch size")
    ap.add_argument(
        "--batches",
        default="1,16,64,256",
        help="Comma list of batch sizes (the eager CPU backends run out of memory near 1024 on this 24 GB machine)",
    )
    ap.add_argument(
        "--out", type=Path, default=None, help="JSON (default: results/classifier_keras_<backend>.json)"
    )
    args = ap.parse_args()
    if args.make_reference:
        make_reference(args.reference)
        return
    batches = [int(b) for b in args.batches.split(",")]
    report = check(args.reference, args.backend, args.seconds, batches)
    out = args.out or ROOT / "benchmarks" / "results" / f"classifier_keras_{args.backend}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(out)


if __name__ == "__main__":
    main()
