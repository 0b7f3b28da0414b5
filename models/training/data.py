"""Labelled face crops for training and evaluation: class folders and VOC scene boxes, same cropping as serving."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from maskwatch.core.labels import CLASSES, canonical_class
from maskwatch.models.crops import crop_faces

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})


class DataError(ValueError):
    """The input data cannot be used (empty folder, unreadable image, unknown class)."""


def default_shared_dir() -> Path:
    """``$MASKWATCH_SHARED``, else ``../shared`` beside the repository."""
    env = os.environ.get("MASKWATCH_SHARED")
    return Path(env) if env else (Path(__file__).resolve().parents[2] / ".." / "shared").resolve()


def list_crop_images(
    crops_dir: Path, extra_aliases: Mapping[str, str] | None = None
) -> list[tuple[Path, str]]:
    """(path, canonical class) of every image under the class subfolders of ``crops_dir``, sorted.

    Folder names may be aliases (``with_incorrect_mask``, ``mask_weared_incorrect``, ...).
    """
    crops_dir = Path(crops_dir)
    if not crops_dir.is_dir():
        raise DataError(f"{crops_dir}: not a folder")
    subdirs = sorted(p for p in crops_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not subdirs:
        raise DataError(f"{crops_dir}: no class subfolders (expected e.g. with_mask/, without_mask/)")
    items: list[tuple[Path, str]] = []
    for d in subdirs:
        try:
            label = canonical_class(d.name, extra_aliases)
        except ValueError as e:
            raise DataError(f"{crops_dir}: class folder {d.name!r}: {e}") from None
        items += [(p, label) for p in sorted(d.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    if not items:
        raise DataError(
            f"{crops_dir}: the class subfolders hold no images ({', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    return items


def read_image(path: Path) -> np.ndarray:
    """A BGR uint8 image; :class:`DataError` if it cannot be decoded."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None or img.size == 0:
        raise DataError(f"{path}: unreadable or not an image")
    return img


@dataclass
class CropSet:
    """Face crops (BGR uint8, any size), their class indices and the source image of each."""

    crops: list[np.ndarray]
    labels: np.ndarray
    sources: list[str]

    def __len__(self) -> int:
        return len(self.crops)

    def counts(self) -> dict[str, int]:
        return {c: int((self.labels == i).sum()) for i, c in enumerate(CLASSES)}

    def subset(self, idx: Sequence[int] | np.ndarray) -> CropSet:
        return CropSet(
            [self.crops[i] for i in idx],
            self.labels[np.asarray(idx, dtype=int)],
            [self.sources[i] for i in idx],
        )

    @staticmethod
    def concat(parts: Sequence[CropSet]) -> CropSet:
        return CropSet(
            [c for p in parts for c in p.crops],
            np.concatenate([p.labels for p in parts]) if parts else np.zeros(0, np.int64),
            [s for p in parts for s in p.sources],
        )


def _shrink(img: np.ndarray, max_side: int | None) -> np.ndarray:
    if max_side and max(img.shape[:2]) > max_side:
        s = max_side / max(img.shape[:2])
        img = cv2.resize(
            img,
            (max(1, round(img.shape[1] * s)), max(1, round(img.shape[0] * s))),
            interpolation=cv2.INTER_AREA,
        )
    return img


def load_crops_folder(
    crops_dir: Path,
    only: Sequence[str] | None = None,
    extra_aliases: Mapping[str, str] | None = None,
    max_side: int | None = 256,
) -> CropSet:
    """Read a class-folder crops set (optionally only the relative paths in ``only``)."""
    crops_dir = Path(crops_dir)
    items = list_crop_images(crops_dir, extra_aliases)
    if only is not None:
        wanted = set(only)
        items = [(p, c) for p, c in items if p.relative_to(crops_dir).as_posix() in wanted]
        if not items:
            raise DataError(f"{crops_dir}: none of the {len(wanted)} listed images exist")
    crops = [_shrink(read_image(p), max_side) for p, _ in items]
    labels = np.array([CLASSES.index(c) for _, c in items], dtype=np.int64)
    return CropSet(crops, labels, [p.relative_to(crops_dir).as_posix() for p, _ in items])


def load_scene_crops(
    scenes_dir: Path,
    margin: float = 0.15,
    only: Sequence[str] | None = None,
    extra_aliases: Mapping[str, str] | None = None,
    max_side: int | None = 256,
) -> CropSet:
    """Cut every valid ground-truth face box of a VOC folder, as the worker does (``crop_faces``)."""
    from maskwatch.models.training.voc import read_voc_folder

    scenes_dir = Path(scenes_dir)
    images, _ = read_voc_folder(scenes_dir, extra_aliases)
    if only is not None:
        wanted = set(only)
        images = [im for im in images if f"images/{im.image}" in wanted]
    crops: list[np.ndarray] = []
    labels: list[int] = []
    sources: list[str] = []
    for im in images:
        if not im.faces:
            continue
        frame = read_image(scenes_dir / "images" / im.image)
        if frame.shape[:2] != (im.height, im.width):
            sy, sx = frame.shape[0] / im.height, frame.shape[1] / im.width
        else:
            sy = sx = 1.0
        boxes = np.array([f.box for f in im.faces], dtype=np.float32) * np.array([sx, sy, sx, sy], np.float32)
        for crop, face in zip(crop_faces(frame, boxes, margin), im.faces, strict=True):
            crops.append(_shrink(crop, max_side))
            labels.append(CLASSES.index(face.label))
            sources.append(f"images/{im.image}")
    if not crops:
        raise DataError(f"{scenes_dir}: no face boxes found")
    return CropSet(crops, np.array(labels, dtype=np.int64), sources)
