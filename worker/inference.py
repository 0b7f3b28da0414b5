"""Decode a batch of frames where they need searching, detect faces (whole frames or regions), classify
the faces that need it; results for frames that were not searched."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from maskwatch.config.stages import WorkerSettings
from maskwatch.core.contracts import FrameMessage, ResultMessage
from maskwatch.core.errors import ErrorKind, FrameError
from maskwatch.core.faces import Faces, iou_matrix, touches_any
from maskwatch.models.analysis import Analyzed, FaceAnalyzer
from maskwatch.worker import metrics
from maskwatch.worker.camera_state import CameraState
from maskwatch.worker.regions import FULL, RegionPlan, inside_any, plan_regions

CARRIED_OVERLAP = 0.3
"""A remembered face overlapping a face detected in this frame this much (IoU) is not carried."""


@dataclass(frozen=True)
class Rejected:
    """A frame that yields no result: ``kind`` is ``undecodable`` or ``inference_error``."""

    frame: FrameMessage
    kind: ErrorKind
    reason: str


class BatchInference:
    """Frames in, results out: one detector call for whole frames, one for every region of every frame,
    one classifier call per batch; each camera's remembered faces (:class:`CameraState`) decide where
    to look, which faces are carried forward and which keep their class."""

    def __init__(self, analyzer: FaceAnalyzer, worker_name: str, config: WorkerSettings) -> None:
        self.analyzer, self.worker_name, self.config = analyzer, worker_name, config
        self.include_image = config.include_image
        self.models = analyzer.models

    def plan(self, frame: FrameMessage, state: CameraState) -> tuple[RegionPlan, np.ndarray]:
        """Where to search ``frame``, and which remembered faces (mask) were due for a new look."""
        cfg = self.config
        due = np.zeros(len(state.faces), bool)
        if not cfg.regions or not self.analyzer.supports_regions or frame.motion is None or frame.full:
            return FULL, due
        boxes = state.boxes
        if len(boxes):
            age = np.array([clock(frame) - f.detected_ts for f in state.faces])
            due = touches_any(boxes, frame.motion) | (age >= cfg.stationary_recheck_s) | (age < 0)
        plan = plan_regions(
            frame.width,
            frame.height,
            frame.motion,
            boxes[due],
            size=cfg.region_size,
            full_coverage=cfg.full_frame_coverage,
        )
        return plan, due

    def search_units(self, frame: FrameMessage, state: CameraState | None) -> float:
        """The search work of ``frame``'s plan from ``state``, in ``region_size`` squares: a full frame its
        pixels over one square's, a region one square plus its area in squares when larger (it is searched
        whole and in tiles), 0 when nothing is searched."""
        plan = self.plan(frame, (state or CameraState()).usable(self.analyzer.classes))[0]
        square = float(self.config.region_size) ** 2
        if plan.mode == "full":
            return max(1.0, frame.width * frame.height / square)
        return sum(
            1.0 + ((x2 - x1) * (y2 - y1) / square if x2 - x1 > self.config.region_size else 0.0)
            for x1, y1, x2, y2 in plan.regions
        )

    def process(
        self, frames: list[FrameMessage], states: Mapping[str, CameraState] | None = None
    ) -> tuple[list[ResultMessage], list[Rejected], dict[str, CameraState]]:
        """Results for the decodable frames (in input order), the frames that failed to decode, and the
        new state of each camera (after its newest frame here) for the caller to write.

        With regions on, where a frame is searched depends on what the camera's earlier frames found, so
        the batch runs in waves (:func:`waves`): the k-th frame of every camera in wave k, each wave one
        analyzer call batched across cameras, each camera's state advanced between waves. Otherwise the
        plans do not depend on the state and the whole batch is one wave."""
        t0 = time.perf_counter()
        good, bad = [], []
        for f in frames:
            try:
                check_image(f, self.config.max_frame_pixels)
            except FrameError as e:
                bad.append(Rejected(f, e.kind, str(e)))
                continue
            good.append(f)
        classes = self.analyzer.classes
        before = {f.camera: (states or {}).get(f.camera, CameraState()).usable(classes) for f in good}
        current = dict(before)
        stateful = self.config.regions and self.analyzer.supports_regions
        groups = waves(good) if stateful else ([list(range(len(good)))] if good else [])
        results: list[ResultMessage | None] = [None] * len(good)
        seconds = {"decode": time.perf_counter() - t0, "detect": 0.0, "classify": 0.0}
        for wave in groups:
            bad += self._wave(wave, good, current, results, seconds)
        metrics.INFERENCE_SECONDS.labels("decode").observe(seconds["decode"])
        if groups:
            metrics.INFERENCE_SECONDS.labels("detect").observe(seconds["detect"])
            metrics.INFERENCE_SECONDS.labels("classify").observe(seconds["classify"])
        changed = {cam: s for cam, s in current.items() if s is not before[cam]}
        return [r for r in results if r is not None], bad, changed

    def skipped(
        self, frames: Sequence[FrameMessage], states: Mapping[str, CameraState]
    ) -> list[ResultMessage]:
        """Results of frames the worker did not search (a newer frame of the camera superseded them, or
        they were older than ``max_frame_age_s``): ``detection: "skipped"``, the camera's remembered faces
        carried forward (``states``: read before the batch), nothing decoded. Every frame gets its event."""
        classes = self.analyzer.classes
        now = time.time()
        out = []
        for f in frames:
            state = states.get(f.camera, CameraState()).usable(classes)
            metrics.DETECTIONS.labels(f.camera, "skipped").inc()
            out.append(self._result(f, state.carried(np.ones(len(state.faces), bool)), "skipped", now))
        return out

    def _result(self, f: FrameMessage, faces: Faces, detection: str, now: float) -> ResultMessage:
        return ResultMessage(
            camera=f.camera,
            seq=f.seq,
            capture_ts=f.capture_ts,
            width=f.width,
            height=f.height,
            processed_ts=now,
            faces=faces,
            models=self.models,
            placeholder=self.analyzer.placeholder,
            worker=self.worker_name,
            image=f.image if self.include_image else None,
            encoding=f.encoding,
            detection=detection,
            pts=f.pts,
        )

    def _wave(
        self,
        wave: list[int],
        good: list[FrameMessage],
        current: dict[str, CameraState],
        results: list[ResultMessage | None],
        seconds: dict[str, float],
    ) -> list[Rejected]:
        """Analyze frames ``good[i]`` for ``i`` in ``wave`` (one analyzer call), each planned from its
        camera's ``current`` state; put each result at ``results[i]`` and advance ``current``. Only the
        frames whose plan searches pixels are decoded; those that fail to decode are returned."""
        cfg = self.config
        state_of = {i: current[good[i].camera] for i in wave}  # the state each frame is planned from
        planned = {i: self.plan(good[i], state_of[i])[0] for i in wave}
        t0 = time.perf_counter()
        images: dict[int, np.ndarray] = {}
        bad = []
        for i, plan in planned.items():
            if plan.mode == "none":
                continue
            try:
                images[i] = _decode(good[i])
            except FrameError as e:
                bad.append(Rejected(good[i], e.kind, str(e)))
        seconds["decode"] += time.perf_counter() - t0
        searched = [i for i in wave if i in images]

        def reuse(k: int, faces: Faces) -> list[np.ndarray | None]:
            state, ts = state_of[searched[k]], clock(good[searched[k]])
            cached = [
                state.cached_probs(
                    box, ts, min_times=cfg.classify_min_times, interval_s=cfg.reclassify_interval_s
                )
                for box in faces.boxes
            ]
            return [None if c is None else np.asarray(c, np.float32) for c in cached]

        analyzed = dict(
            zip(
                searched,
                self.analyzer.analyze(
                    [images[i] for i in searched],
                    [None if planned[i].mode == "full" else planned[i].regions for i in searched],
                    region_size=cfg.region_size,
                    reuse=reuse,
                ),
                strict=True,
            )
        )
        if searched:
            for step in ("detect", "classify"):
                seconds[step] += self.analyzer.seconds[step]
        nothing = Analyzed(Faces.empty(self.analyzer.classes), np.zeros(0, bool))
        now = time.time()
        for i in wave:
            plan = planned[i]
            if plan.mode != "none" and i not in analyzed:  # undecodable: rejected above
                continue
            f, state = good[i], state_of[i]
            a = analyzed.get(i, nothing)
            faces, classified = a.faces, a.classified
            if plan.mode != "full" and state.faces:
                outside = ~inside_any(state.boxes, plan.regions)
                if len(faces):  # a remembered face a region found again is not also carried
                    outside &= ~(iou_matrix(state.boxes, faces.boxes) >= CARRIED_OVERLAP).any(axis=1)
                carried = state.carried(outside)
                if len(carried):
                    faces = Faces.merge([faces, carried])
                    classified = np.concatenate([classified, np.zeros(len(carried), bool)])
            metrics.DETECTIONS.labels(f.camera, plan.mode).inc()
            metrics.CLASSES_REUSED.labels(f.camera).inc(int((~classified & ~faces.carried).sum()))
            if f.seq > current[f.camera].seq:
                current[f.camera] = current[f.camera].advance(f.seq, clock(f), faces, classified)
            results[i] = self._result(f, faces, plan.mode, now)
        return bad


def waves(frames: Sequence[FrameMessage]) -> list[list[int]]:
    """Indices of ``frames`` in waves: wave k holds the k-th frame (by ``seq``) of every camera, so a
    frame is analyzed after its camera's earlier frames of the batch and beside other cameras' frames."""
    by_camera: dict[str, list[int]] = {}
    for i in sorted(range(len(frames)), key=lambda i: frames[i].seq):
        by_camera.setdefault(frames[i].camera, []).append(i)
    depth = max((len(v) for v in by_camera.values()), default=0)
    return [sorted(v[k] for v in by_camera.values() if k < len(v)) for k in range(depth)]


def clock(frame: FrameMessage) -> float:
    """The camera's own time line for per-camera state: media time for files (read faster than real
    time, or replayed in a loop), capture time for live sources."""
    return frame.pts if not frame.live and frame.pts is not None else frame.capture_ts


_SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


def declared_size(data: bytes, encoding: str) -> tuple[int, int] | None:
    """(width, height) an encoded image declares in its header (JPEG SOF, PNG IHDR), read without
    decoding it; None when the header cannot be found."""
    if encoding == "png":
        if len(data) >= 24 and data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
            return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        return None
    i = 2 if data[:2] == b"\xff\xd8" else len(data)
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            i += 2
            continue
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if marker in _SOF_MARKERS and i + 9 <= len(data):
            return int.from_bytes(data[i + 7 : i + 9], "big"), int.from_bytes(data[i + 5 : i + 7], "big")
        if marker == 0xDA or length < 2:  # start of scan: no frame header before the pixels
            return None
        i += 2 + length
    return None


def check_image(frame: FrameMessage, max_pixels: int) -> None:
    """Raise :class:`FrameError` when the frame's image cannot be used, from its header alone (no
    decoding): the encoding, the size it declares (a tiny file cannot claim gigabytes of pixels) and
    that size against the message's."""
    if frame.encoding not in ("jpeg", "png"):
        raise FrameError(f"unsupported image encoding {frame.encoding!r}")
    size = declared_size(frame.image, frame.encoding)
    if size is None:
        raise FrameError(
            f"image bytes do not decode as {frame.encoding}: no header found ({len(frame.image)} bytes)"
        )
    if size[0] * size[1] > max_pixels:
        raise FrameError(
            f"image declares {size[0]}x{size[1]} pixels, over worker.max_frame_pixels ({max_pixels})"
        )
    if size != (frame.width, frame.height):
        raise FrameError(f"image declares {size[0]}x{size[1]}, the message {frame.width}x{frame.height}")


def _decode(frame: FrameMessage) -> np.ndarray:
    """The pixels (BGR) of a frame that passed :func:`check_image`, or :class:`FrameError`."""
    try:
        image = cv2.imdecode(np.frombuffer(frame.image, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as e:  # one bad image must never cost the rest of its batch
        raise FrameError(f"image bytes do not decode as {frame.encoding}: {str(e).strip()[-120:]}") from None
    if image is None:
        raise FrameError(f"image bytes do not decode as {frame.encoding} ({len(frame.image)} bytes)")
    if image.shape[:2] != (frame.height, frame.width):
        raise FrameError(
            f"decoded size {image.shape[1]}x{image.shape[0]} differs from declared {frame.width}x{frame.height}"
        )
    return image
