"""PASCAL VOC face annotations: parse one XML file into validated, canonically named boxes."""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from maskwatch.core.labels import canonical_class

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FaceBox:
    """One labelled face: class name (canonical) and x1, y1, x2, y2 pixel box, clipped to the image."""

    label: str
    box: tuple[float, float, float, float]


@dataclass
class VocImage:
    """One annotated scene image and its valid faces."""

    image: str
    width: int
    height: int
    faces: list[FaceBox] = field(default_factory=list)


@dataclass
class SkipCounter:
    """Counts annotations dropped while parsing, by reason."""

    reasons: Counter[str] = field(default_factory=Counter)

    def skip(self, reason: str, where: str) -> None:
        self.reasons[reason] += 1
        log.warning("skipping annotation in %s: %s", where, reason)

    @property
    def total(self) -> int:
        return sum(self.reasons.values())


def _number(node: ET.Element | None, tag: str) -> float | None:
    child = node.find(tag) if node is not None else None
    if child is None or child.text is None or not child.text.strip():
        return None
    try:
        return float(child.text)
    except ValueError:
        return None


def parse_voc(
    xml_path: Path,
    skipped: SkipCounter | None = None,
    extra_aliases: Mapping[str, str] | None = None,
    min_size: float = 1.0,
) -> VocImage:
    """Parse ``xml_path``; odd boxes (missing fields, zero area, outside the frame) are skipped and counted.

    Boxes partly outside the image are clipped to it. An unknown class name raises
    :class:`models.labels.UnknownClassError` naming the file.
    """
    skipped = skipped if skipped is not None else SkipCounter()
    where = str(xml_path)
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError as e:
        raise ValueError(f"{xml_path}: not a valid VOC XML file ({e})") from None
    filename = (root.findtext("filename") or "").strip() or xml_path.with_suffix(".jpg").name
    size = root.find("size")
    width, height = _number(size, "width"), _number(size, "height")
    if not width or not height:
        raise ValueError(f"{xml_path}: missing or zero <size><width>/<height>")
    result = VocImage(filename, int(width), int(height))
    for obj in root.iter("object"):
        name = (obj.findtext("name") or "").strip()
        if not name:
            skipped.skip("missing <name>", where)
            continue
        try:
            label = canonical_class(name, extra_aliases)
        except ValueError as e:
            raise type(e)(f"{xml_path}: {e}") from None
        bnd = obj.find("bndbox")
        coords = [_number(bnd, t) for t in ("xmin", "ymin", "xmax", "ymax")]
        if any(c is None for c in coords):
            skipped.skip("missing <bndbox> field", where)
            continue
        x1, y1, x2, y2 = (float(c) for c in coords)  # type: ignore[arg-type]
        if x2 - x1 < min_size or y2 - y1 < min_size:
            skipped.skip("zero-area box", where)
            continue
        cx1, cy1, cx2, cy2 = max(x1, 0.0), max(y1, 0.0), min(x2, width), min(y2, height)
        if cx2 - cx1 < min_size or cy2 - cy1 < min_size:
            skipped.skip("box outside the image", where)
            continue
        result.faces.append(FaceBox(label, (cx1, cy1, cx2, cy2)))
    return result


def read_voc_folder(
    scenes_dir: Path, extra_aliases: Mapping[str, str] | None = None
) -> tuple[list[VocImage], SkipCounter]:
    """Every annotation of a VOC folder (``annotations/*.xml`` beside ``images/``), sorted by image name."""
    ann_dir = scenes_dir / "annotations"
    if not ann_dir.is_dir():
        raise FileNotFoundError(f"{scenes_dir}: no annotations/ folder (expected a PASCAL VOC scene folder)")
    skipped = SkipCounter()
    images = [parse_voc(p, skipped, extra_aliases) for p in sorted(ann_dir.glob("*.xml"))]
    if not images:
        raise ValueError(f"{ann_dir}: no .xml annotation files")
    if skipped.total:
        log.warning("%s: skipped %d annotation(s): %s", scenes_dir, skipped.total, dict(skipped.reasons))
    return sorted(images, key=lambda im: im.image), skipped
