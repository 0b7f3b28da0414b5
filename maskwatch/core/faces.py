"""The faces of one frame: one type from the detector to the clip (the supervision ``Detections`` style).

Parallel numpy arrays, validated once at construction; row ``i`` of every array is face ``i``.
A ``Faces`` is immutable: slicing (``faces[mask]``) and the ``with_*`` methods return new ones.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from maskwatch.core.errors import ContractError

UNCLASSIFIED = "unclassified"
NO_TRACK = -1


def touches_any(boxes: np.ndarray, others: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    """(N,) True where an ``x1, y1, x2, y2`` box of ``boxes`` intersects at least one of ``others``."""
    a = np.asarray(boxes, np.float64).reshape(-1, 1, 4)
    o = np.asarray(others, np.float64).reshape(1, -1, 4)
    hit = (
        (a[..., 0] < o[..., 2]) & (a[..., 2] > o[..., 0]) & (a[..., 1] < o[..., 3]) & (a[..., 3] > o[..., 1])
    )
    return np.asarray(hit.any(axis=1), bool)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(M, N) IoU of every ``x1, y1, x2, y2`` box of ``a`` (M, 4) with every box of ``b`` (N, 4)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = (x2 - x1).clip(0) * (y2 - y1).clip(0)
    area_a = (a[:, 2] - a[:, 0]).clip(0) * (a[:, 3] - a[:, 1]).clip(0)
    area_b = (b[:, 2] - b[:, 0]).clip(0) * (b[:, 3] - b[:, 1]).clip(0)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _rows(name: str, value: Any, shape: tuple[int, ...], dtype: type, n: int | None) -> np.ndarray:
    """``value`` as an array of ``(N, *shape)``; the error names the expected shape."""
    arr: np.ndarray = np.asarray(value, dtype=dtype)
    if arr.size == 0 and n in (None, 0):
        return np.zeros((0, *shape), dtype)
    if arr.ndim != 1 + len(shape) or arr.shape[1:] != shape or (n is not None and arr.shape[0] != n):
        want = ", ".join(["N" if n is None else str(n), *map(str, shape)])
        raise ValueError(f"Faces.{name} must be ({want}), got {arr.shape}")
    return arr


@dataclass(frozen=True, eq=False)
class Faces:
    """``N`` faces of one frame.

    - ``boxes`` (N, 4) float32 pixel ``x1, y1, x2, y2``; ``scores`` (N,) float32 detector scores;
    - ``probs`` (N, C) float32 class probabilities in the order of ``classes``, or None before
      classification; ``class_ids`` (N,) int, the argmax (or -1 where unclassified);
    - ``track_ids`` (N,) int64, ``-1`` where no tracker has assigned one;
    - ``landmarks`` (N, 5, 2) float32 pixel points, or None;
    - ``carried`` (N,) bool, True where a face was carried forward from an earlier frame of its
      camera (its region was not detected again in this one) rather than detected in it.
    """

    boxes: np.ndarray
    scores: np.ndarray
    probs: np.ndarray | None = None
    classes: tuple[str, ...] = ()
    class_ids: np.ndarray | None = None
    track_ids: np.ndarray | None = None
    landmarks: np.ndarray | None = None
    carried: np.ndarray | None = None

    def __post_init__(self) -> None:
        boxes = _rows("boxes", self.boxes, (4,), np.float32, None)
        n = boxes.shape[0]
        set_ = object.__setattr__
        set_(self, "boxes", boxes)
        set_(self, "scores", _rows("scores", self.scores, (), np.float32, n))
        set_(self, "classes", tuple(self.classes))
        if self.probs is not None:
            set_(self, "probs", _rows("probs", self.probs, (len(self.classes),), np.float32, n))
        if self.class_ids is None:
            ids = self.probs.argmax(axis=1) if self.probs is not None and n else np.full(n, -1)
            set_(self, "class_ids", ids.astype(np.int64))
        else:
            set_(self, "class_ids", _rows("class_ids", self.class_ids, (), np.int64, n))
        if self.track_ids is None:
            set_(self, "track_ids", np.full(n, NO_TRACK, np.int64))
        else:
            set_(self, "track_ids", _rows("track_ids", self.track_ids, (), np.int64, n))
        if self.landmarks is not None:
            set_(self, "landmarks", _rows("landmarks", self.landmarks, (5, 2), np.float32, n))
        if self.carried is None:
            set_(self, "carried", np.zeros(n, bool))
        else:
            set_(self, "carried", _rows("carried", self.carried, (), np.bool_, n))

    # --- construction -------------------------------------------------------------------------
    @classmethod
    def empty(cls, classes: Sequence[str] = ()) -> Faces:
        """No faces (with ``classes`` for an empty classified frame)."""
        probs = np.zeros((0, len(classes)), np.float32) if classes else None
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), probs, tuple(classes))

    @classmethod
    def merge(cls, parts: Sequence[Faces]) -> Faces:
        """Concatenate faces of the same frame (e.g. from several passes); optional arrays are kept
        only when every non-empty part has them."""
        if not parts:
            return cls.empty()
        parts = [p for p in parts if len(p)] or [parts[0]]
        if len(parts) == 1:
            return parts[0]

        def cat(name: str) -> np.ndarray | None:
            arrays = [getattr(p, name) for p in parts]
            return None if any(a is None for a in arrays) else np.concatenate(arrays)

        classes = parts[0].classes
        probs = cat("probs") if all(p.classes == classes for p in parts) else None
        return cls(
            np.concatenate([p.boxes for p in parts]),
            np.concatenate([p.scores for p in parts]),
            probs,
            classes if probs is not None else (),
            track_ids=cat("track_ids"),
            landmarks=cat("landmarks"),
            carried=cat("carried"),
        )

    def with_probs(self, probs: np.ndarray, classes: Sequence[str]) -> Faces:
        """These faces classified: ``probs`` (N, C) in the order of ``classes``."""
        return replace(self, probs=probs, classes=tuple(classes), class_ids=None)

    def with_track_ids(self, track_ids: np.ndarray | Sequence[int]) -> Faces:
        """These faces with tracker ids filled in."""
        return replace(self, track_ids=np.asarray(track_ids, np.int64))

    # --- access -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def __iter__(self) -> Iterator[Faces]:
        for i in range(len(self)):
            yield self[i : i + 1]

    def __getitem__(self, index: np.ndarray | slice | int | Sequence[int]) -> Faces:
        """The faces selected by a boolean mask, an index array or a slice."""
        if isinstance(index, int | np.integer):
            index = slice(int(index), int(index) + 1) if index != -1 else slice(-1, None)

        def take(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[index]

        return Faces(
            self.boxes[index],
            self.scores[index],
            take(self.probs),
            self.classes,
            take(self.class_ids),
            take(self.track_ids),
            take(self.landmarks),
            take(self.carried),
        )

    @property
    def classified(self) -> bool:
        """True when ``probs`` are present."""
        return self.probs is not None

    @property
    def labels(self) -> list[str]:
        """The class name of each face; ``unclassified`` where there is none."""
        assert self.class_ids is not None
        return [
            self.classes[i] if 0 <= i < len(self.classes) else UNCLASSIFIED for i in self.class_ids.tolist()
        ]

    @property
    def areas(self) -> np.ndarray:
        """(N,) box areas in square pixels."""
        return (self.boxes[:, 2] - self.boxes[:, 0]) * (self.boxes[:, 3] - self.boxes[:, 1])

    def clip(self, width: int, height: int) -> Faces:
        """Boxes clipped to a ``width`` × ``height`` frame; boxes left with no area are dropped."""
        boxes = self.boxes.copy()
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
        keep = (boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)
        return replace(self, boxes=boxes)[keep]

    # --- wire form ----------------------------------------------------------------------------
    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready parallel lists carried in a result message (``boxes scores probs classes``)."""
        probs = self.probs if self.probs is not None else np.zeros((len(self), len(self.classes)), np.float32)
        wire: dict[str, Any] = {
            "boxes": np.round(self.boxes.astype(float), 1).tolist(),
            "scores": np.round(self.scores.astype(float), 4).tolist(),
            "probs": np.round(probs.astype(float), 5).tolist(),
            "classes": list(self.classes),
        }
        assert self.carried is not None
        if self.carried.any():
            wire["carried"] = self.carried.tolist()
        return wire

    @classmethod
    def from_wire(cls, data: Any, width: float | None = None, height: float | None = None) -> Faces:
        """Inverse of :meth:`to_wire`, validating everything (the data comes from Redis): at most
        :data:`MAX_WIRE_FACES` faces; finite boxes with ``x1 <= x2``, ``y1 <= y2``, inside the
        ``width`` × ``height`` frame when given (within :data:`BOX_TOLERANCE_PX`, then clipped to it);
        scores and probabilities in [0, 1]; ``classes`` unique non-empty names, present whenever there
        are faces, one probability column each; ``carried`` booleans. Raises :class:`ContractError`."""
        if not isinstance(data, dict):
            raise ContractError(f"faces must be a JSON object, got {type(data).__name__}")
        classes = data.get("classes")
        if not (
            isinstance(classes, list)
            and len(classes) <= MAX_WIRE_CLASSES
            and all(isinstance(c, str) and 0 < len(c) <= MAX_NAME_CHARS for c in classes)
            and len(set(classes)) == len(classes)
        ):
            raise ContractError(
                f"'classes' must be a list of at most {MAX_WIRE_CLASSES} unique names of 1-{MAX_NAME_CHARS} chars"
            )
        boxes = _wire_array(data, "boxes", (4,))
        n = len(boxes)
        scores = _wire_array(data, "scores", (), n)
        probs = _wire_array(data, "probs", (len(classes),), n)
        if n and not classes:
            raise ContractError("'classes' is empty but there are faces")
        if ((scores < 0) | (scores > 1)).any() or (
            (probs < -PROB_TOLERANCE) | (probs > 1 + PROB_TOLERANCE)
        ).any():
            raise ContractError("'scores' and 'probs' must lie in [0, 1]")
        if ((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])).any():
            raise ContractError("a box has x2 < x1 or y2 < y1")
        if width is not None and height is not None and n:
            t = BOX_TOLERANCE_PX
            if (
                (boxes[:, [0, 1]] < -t).any()
                or (boxes[:, 2] > width + t).any()
                or (boxes[:, 3] > height + t).any()
            ):
                raise ContractError(f"a box lies outside the {width}x{height} frame")
            boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
            boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
        carried = data.get("carried")
        if carried is not None and not (
            isinstance(carried, list) and len(carried) == n and all(isinstance(c, bool) for c in carried)
        ):
            raise ContractError("'carried' must be a list of booleans, one per face")
        flags = None if carried is None else np.asarray(carried, bool)
        return cls(boxes, scores, probs.clip(0, 1), tuple(classes), carried=flags)


MAX_WIRE_FACES = 4096
"""Most faces one result message may carry."""
MAX_WIRE_CLASSES = 64
MAX_NAME_CHARS = 128
BOX_TOLERANCE_PX = 0.5
"""How far a wire box may reach outside its frame (rounding to 0.1 px) before it is refused."""
PROB_TOLERANCE = 1e-3


def _wire_array(data: dict[str, Any], name: str, shape: tuple[int, ...], n: int | None = None) -> np.ndarray:
    """``data[name]`` as a finite float32 array of ``(N, *shape)`` (``N`` = ``n`` when given)."""
    value = data.get(name)
    if not isinstance(value, list) or len(value) > MAX_WIRE_FACES:
        raise ContractError(f"{name!r} must be a list of at most {MAX_WIRE_FACES} items")
    try:
        kind = np.asarray(value).dtype.kind  # numbers only: no strings, booleans or nulls
        if value and kind not in "iuf":
            raise TypeError(f"items of kind {kind!r}")
        arr = _rows(name, value, shape, np.float64, n)
    except (ValueError, TypeError) as e:
        raise ContractError(f"{name!r} is not a list of numbers of the right shape: {e}") from None
    if not np.isfinite(arr).all() or (np.abs(arr) > 1e9).any():
        raise ContractError(f"{name!r} holds a number that is not finite or out of range")
    return arr.astype(np.float32)
