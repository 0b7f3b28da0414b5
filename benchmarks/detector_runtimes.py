"""RetinaFace-MobileNetV2 network speed on every CPU runtime, side by side in one run.

    .venv/bin/python benchmarks/detector_runtimes.py [--repeats 5] [--out benchmarks/results/detector_runtimes.json]

Runtimes: the original TensorFlow frozen graph (its in-graph NMS, one image per call), TensorFlow
Lite/XNNPACK, ONNX Runtime and OpenVINO, fp32 and int8 (a statically quantized copy, ``--int8``),
plus OpenVINO's bf16 inference precision where the CPU has bf16. Inputs: 320×320, 640×384 and
1280×736 (640×360 and 1280×720 padded to multiples of 32), batch 1 and 8, 1 and 2 threads.
Reports the median ms per input (network only; decode + NMS are measured separately). Random
pixels are fine for speed: the network's cost does not depend on content.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from maskwatch.models.detectors import retinaface_decode as rd  # noqa: E402

FP32 = ROOT / "models" / "detectors" / "retinaface_mnv2.onnx"
INT8 = Path("/tmp/retinaface_mnv2.int8.onnx")
"""Not shipped (it loses 0.06 face AP); make it with
``python -m maskwatch.models.training.convert_retinaface --out /tmp/retinaface_mnv2.onnx --int8``."""
SIZES = ((320, 320), (384, 640), (736, 1280))
Runner = Callable[[np.ndarray], object]


def cpu_flags() -> list[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next(
        (line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []
    )
    return sorted(
        f for f in flags if f.startswith(("avx512_vnni", "avx_vnni", "amx", "avx512_bf16", "avx512f", "avx2"))
    )


def ort_runner(path: Path, threads: int) -> Runner:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return lambda x: sess.run(None, {"x": x})


def openvino_runner(path: Path, threads: int, precision: str = "f32") -> Runner:
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(path))
    config = {
        "INFERENCE_NUM_THREADS": threads,
        "INFERENCE_PRECISION_HINT": precision,
        "PERFORMANCE_HINT": "LATENCY",
    }
    compiled: dict[tuple[int, ...], object] = {}

    def run(x: np.ndarray) -> object:
        if x.shape not in compiled:
            model.reshape({"x": list(x.shape)})
            compiled[x.shape] = core.compile_model(model, "CPU", config)
        return compiled[x.shape]({"x": x})  # type: ignore[operator]

    return run


def tflite_runner(threads: int) -> Runner:
    import tensorflow as tf

    from maskwatch.models.training.convert_retinaface import HEADS, source_graph

    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(source_graph().read_bytes())
    interpreters: dict[tuple[int, ...], object] = {}

    def build(shape: tuple[int, ...]) -> object:
        def imported() -> None:
            tf.compat.v1.import_graph_def(graph_def, name="")

        wrapped = tf.compat.v1.wrap_function(imported, [])
        fn = wrapped.prune(
            wrapped.graph.as_graph_element("x:0"),
            [wrapped.graph.as_graph_element(f"{t}:0") for t in HEADS.values()],
        )
        concrete = tf.function(lambda x: fn(x)).get_concrete_function(tf.TensorSpec(shape, tf.float32))
        tflite = tf.lite.TFLiteConverter.from_concrete_functions([concrete], wrapped).convert()
        interp = tf.lite.Interpreter(model_content=tflite, num_threads=threads)
        interp.allocate_tensors()
        return interp

    def run(x: np.ndarray) -> object:
        if x.shape not in interpreters:
            interpreters[x.shape] = build(x.shape)
        interp = interpreters[x.shape]
        interp.set_tensor(interp.get_input_details()[0]["index"], x)  # type: ignore[attr-defined]
        interp.invoke()  # type: ignore[attr-defined]
        return [interp.get_tensor(o["index"]) for o in interp.get_output_details()]  # type: ignore[attr-defined]

    return run


def tf_graph_runner(threads: int) -> Runner:
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from maskwatch.models.training.convert_retinaface import source_graph

    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(source_graph().read_bytes())
    wrapped = tf.compat.v1.wrap_function(lambda: tf.compat.v1.import_graph_def(graph_def, name=""), [])
    fn = wrapped.prune(wrapped.graph.as_graph_element("x:0"), wrapped.graph.as_graph_element("Identity:0"))

    def run(x: np.ndarray) -> object:
        return [fn(tf.constant(x[i : i + 1])).numpy() for i in range(len(x))]  # one image per call

    return run


def time_ms(run: Runner, x: np.ndarray, repeats: int) -> float:
    run(x)  # warm-up (and compile for this shape)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times) / len(x)


def decode_ms(repeats: int) -> dict[str, float]:
    """Anchor decode + NMS per input, on the real fp32 network's output for a random frame."""
    run = ort_runner(FP32, 2)
    out = {}
    for h, w in SIZES:
        x = np.random.default_rng(0).uniform(0, 255, (1, h, w, 3)).astype(np.float32)
        loc, landmarks, conf = run(x)  # type: ignore[misc]
        times = []
        for _ in range(repeats * 4):
            t = time.perf_counter()
            for boxes, scores, _points in rd.decode(loc, landmarks, conf, h, w, 0.3):
                rd.nms_indices(boxes, scores, 0.4)
            times.append(time.perf_counter() - t)
        out[f"{w}x{h}"] = round(1000 * statistics.median(times), 3)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument(
        "--runtimes", default="tf-graph,tflite,ort-fp32,ort-int8,openvino-fp32,openvino-bf16,openvino-int8"
    )
    ap.add_argument("--int8", type=Path, default=INT8, help="the int8 network (rows skipped when absent)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "detector_runtimes.json")
    args = ap.parse_args()
    flags = cpu_flags()
    builders: dict[str, Callable[[int], Runner]] = {
        "tf-graph": tf_graph_runner,
        "tflite": tflite_runner,
        "ort-fp32": lambda t: ort_runner(FP32, t),
        "ort-int8": lambda t: ort_runner(args.int8, t),
        "openvino-fp32": lambda t: openvino_runner(FP32, t, "f32"),
        "openvino-bf16": lambda t: openvino_runner(FP32, t, "bf16"),
        "openvino-int8": lambda t: openvino_runner(args.int8, t, "f32"),
    }
    rows = []
    for name in args.runtimes.split(","):
        if name == "openvino-bf16" and not any("bf16" in f or "amx" in f for f in flags):
            print(f"{name}: skipped, this CPU has no bf16 instructions")
            continue
        for threads in map(int, args.threads.split(",")):
            try:
                run = builders[name](threads)
            except Exception as e:  # a runtime that is not installed: say so, measure the rest
                print(f"{name}: not available ({type(e).__name__}: {e})")
                break
            for h, w in SIZES:
                for batch in map(int, args.batches.split(",")):
                    x = np.random.default_rng(0).uniform(0, 255, (batch, h, w, 3)).astype(np.float32)
                    ms = time_ms(run, x, args.repeats)
                    rows.append(
                        {
                            "runtime": name,
                            "threads": threads,
                            "input": f"{w}x{h}",
                            "batch": batch,
                            "ms_per_input": round(ms, 2),
                        }
                    )
                    print(json.dumps(rows[-1]), flush=True)
    result = {
        "benchmark": "detector_runtimes",
        "network": {"fp32_sha256": _sha(FP32), "int8_sha256": _sha(args.int8)},
        "machine": {
            "cpu": _cpu_name(),
            "cores": os.cpu_count(),
            "flags": flags,
            "python": platform.python_version(),
        },
        "versions": _versions(),
        "repeats": args.repeats,
        "decode_nms_ms_per_input": decode_ms(args.repeats),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


def _sha(path: Path) -> str | None:
    from maskwatch.models.detectors.weights import sha256_of

    return sha256_of(path) if path.is_file() else None


def _cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return platform.processor()
    return next(
        (line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")), ""
    )


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("onnxruntime", "openvino", "tensorflow", "numpy"):
        with contextlib.suppress(PackageNotFoundError):
            out[pkg] = version(pkg)
    return out


if __name__ == "__main__":
    raise SystemExit(main())
