"""Scene images with their labelled faces, read with :mod:`models.training.voc` (the classifier's parser)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maskwatch.models.training.voc import VocImage, read_voc_folder


@dataclass(frozen=True)
class SceneImage:
    """One labelled image: (N, 4) pixel boxes, canonical class names, VOC-style ``difficult`` flags."""

    path: Path
    boxes: np.ndarray
    classes: tuple[str, ...]
    difficult: np.ndarray


def _scene(root: Path, voc: VocImage) -> SceneImage:
    boxes = np.asarray([f.box for f in voc.faces], np.float32).reshape(-1, 4)
    return SceneImage(
        path=root / "images" / voc.image,
        boxes=boxes,
        classes=tuple(f.label for f in voc.faces),
        difficult=np.zeros(len(boxes), bool),
    )


def load_scenes(root: Path | str, only: Iterable[str] | None = None) -> list[SceneImage]:
    """Every annotated image of a VOC folder (``images/`` + ``annotations/``), sorted by name.

    ``only``: keep just these images, named as in the split files (``images/<name>.jpg``) or by file name.
    Aliases of the incorrect-mask class (``with_incorrect_mask``, ``mask_weared_incorrect``) are accepted.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"scene folder {root} does not exist")
    images, _ = read_voc_folder(root)
    if only is not None:
        wanted = {Path(name).name for name in only}
        images = [im for im in images if im.image in wanted]
    return [_scene(root, im) for im in images]
