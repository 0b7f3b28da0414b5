"""Train/val/test splits by source image (never by crop), stratified, seeded, written to ``models/splits``.

``load_split(name)`` is light (json only) so detector code can use the same held-out images.
Split files list image paths relative to the dataset folder they name (``root``, relative to
``../shared``): ``images/<name>.jpg`` for scenes, ``<class>/<name>.jpg`` for crops.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

SPLITS_DIR = Path(__file__).resolve().parents[1] / "splits"
PARTS: tuple[str, ...] = ("train", "val", "test")
DEFAULT_FRACTIONS: tuple[float, float, float] = (0.70, 0.15, 0.15)
DEFAULT_SEED = 20261125
RARITY: tuple[str, ...] = ("incorrect_mask", "without_mask", "with_mask")
"""Stratum of a scene image: the rarest class among its faces (first of this tuple present)."""


def load_split(name: str, splits_dir: Path | None = None) -> dict[str, list[str]]:
    """The ``train``/``val``/``test`` lists of split ``name`` (e.g. ``"scenes"``, ``"crops"``)."""
    path = (splits_dir or SPLITS_DIR) / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no split file {path}; make it with `maskwatch train --make-splits`")
    data = json.loads(path.read_text())
    return {part: list(data[part]) for part in PARTS}


def stratified_group_split(
    groups: Mapping[str, Sequence[str]],
    stratum_of_group: Mapping[str, str],
    seed: int = DEFAULT_SEED,
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
) -> dict[str, list[str]]:
    """Assign whole groups of items to train/val/test, per stratum, with a seeded shuffle.

    Items of one group (one image, or duplicates of it) always land in the same part.
    """
    by_stratum: dict[str, list[str]] = defaultdict(list)
    for g in sorted(groups):
        by_stratum[stratum_of_group[g]].append(g)
    rng = random.Random(seed)
    out: dict[str, list[str]] = {p: [] for p in PARTS}
    for stratum in sorted(by_stratum):
        gs = by_stratum[stratum]
        rng.shuffle(gs)
        n = len(gs)
        n_test = round(n * fractions[2])
        n_val = round(n * fractions[1])
        parts = {"test": gs[:n_test], "val": gs[n_test : n_test + n_val], "train": gs[n_test + n_val :]}
        for part, members in parts.items():
            for g in members:
                out[part].extend(groups[g])
    return {p: sorted(v) for p, v in out.items()}


def _write(name: str, split: dict[str, list[str]], meta: dict, splits_dir: Path | None) -> Path:
    path = (splits_dir or SPLITS_DIR) / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    seen: dict[str, str] = {}
    for part in PARTS:
        for item in split[part]:
            if item in seen:
                raise AssertionError(f"{item} is in both {seen[item]} and {part}")
            seen[item] = part
    doc = {**meta, "counts": {p: len(split[p]) for p in PARTS}, **split}
    path.write_text(json.dumps(doc, indent=1) + "\n")
    return path


def make_scenes_split(
    scenes_dir: Path, seed: int = DEFAULT_SEED, splits_dir: Path | None = None, name: str = "scenes"
) -> Path:
    """Split a VOC scene folder by image, stratified by the rarest class in each image."""
    from maskwatch.models.training.voc import read_voc_folder

    images, _ = read_voc_folder(scenes_dir)
    groups, strata = {}, {}
    for im in images:
        rel = f"images/{im.image}"
        present = {f.label for f in im.faces}
        groups[rel] = [rel]
        strata[rel] = next((c for c in RARITY if c in present), "no_face")
    split = stratified_group_split(groups, strata, seed)
    meta = {
        "name": name,
        "root": "data/scenes",
        "unit": "image",
        "method": "stratified by the rarest class among the image's faces "
        "(incorrect_mask > without_mask > with_mask), seeded shuffle per stratum, 70/15/15",
        "seed": seed,
    }
    return _write(name, split, meta, splits_dir)


def image_fingerprints(path: Path) -> tuple[str, str]:
    """(sha256 of the file bytes, 64-bit difference hash of the picture) for duplicate grouping."""
    import cv2
    import numpy as np

    data = path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    if img is None:
        return sha, sha
    small = cv2.resize(img, (9, 8), interpolation=cv2.INTER_AREA).astype(np.int16)
    bits = (small[:, 1:] > small[:, :-1]).flatten()
    return sha, "d" + "".join("1" if b else "0" for b in bits)


def make_crops_split(
    crops_dir: Path, seed: int = DEFAULT_SEED, splits_dir: Path | None = None, name: str = "crops"
) -> Path:
    """Split a class-folder crops set by source image; exact and near-exact duplicates stay together."""
    from maskwatch.models.training.data import list_crop_images

    items = list_crop_images(crops_dir)
    parent = list(range(len(items)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_of: dict[str, int] = {}
    for i, (path, _label) in enumerate(items):
        for key in image_fingerprints(path):
            j = first_of.setdefault(key, i)
            parent[find(i)] = find(j)
    groups: dict[str, list[str]] = defaultdict(list)
    labels: dict[str, str] = {}
    for i, (path, label) in enumerate(items):
        root_rel = items[find(i)][0].relative_to(crops_dir).as_posix()
        groups[root_rel].append(path.relative_to(crops_dir).as_posix())
        labels.setdefault(root_rel, label)
    split = stratified_group_split(groups, labels, seed)
    n_dup = sum(len(v) - 1 for v in groups.values())
    meta = {
        "name": name,
        "root": "data/crops",
        "unit": "source image (files with equal sha256 or equal 64-bit dHash grouped together)",
        "method": f"stratified by class folder, seeded shuffle per class, 70/15/15; {n_dup} duplicate file(s) grouped",
        "seed": seed,
    }
    return _write(name, split, meta, splits_dir)
