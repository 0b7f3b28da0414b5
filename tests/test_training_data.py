"""Classifier data pipeline: splits never leak an image, aliases map, odd VOC boxes are skipped and counted,
bad input fails with a clear error."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from maskwatch.core.labels import UnknownClassError, canonical_class
from maskwatch.models.crops import crop_faces
from maskwatch.models.training.data import (
    DataError,
    list_crop_images,
    load_crops_folder,
    load_scene_crops,
    read_image,
)
from maskwatch.models.training.splits import PARTS, load_split, make_scenes_split, stratified_group_split
from maskwatch.models.training.voc import SkipCounter, parse_voc, read_voc_folder
from tests.conftest import shared_path


def _parts_disjoint(split: dict[str, list[str]]) -> None:
    for i, a in enumerate(PARTS):
        for b in PARTS[i + 1 :]:
            assert not set(split[a]) & set(split[b]), f"{a} and {b} share images"


def test_committed_splits_are_disjoint_and_cover_the_data() -> None:
    scenes_dir = shared_path("data", "scenes")
    crops_dir = shared_path("data", "crops")
    for name, root, pattern in (("scenes", scenes_dir, "images/*.jpg"), ("crops", crops_dir, "*/*.jpg")):
        split = load_split(name)
        _parts_disjoint(split)
        every = {p.relative_to(root).as_posix() for p in root.glob(pattern)}
        listed = set().union(*split.values())
        assert listed == every, f"{name}: split and folder differ by {len(listed ^ every)} images"
        n = len(every)
        assert 0.12 * n < len(split["test"]) < 0.18 * n


def test_identical_crop_files_never_straddle_parts() -> None:
    crops_dir = shared_path("data", "crops")
    part_of_digest: dict[str, str] = {}
    for part, names in load_split("crops").items():
        for name in names:
            digest = hashlib.sha256((crops_dir / name).read_bytes()).hexdigest()
            assert part_of_digest.setdefault(digest, part) == part, (
                f"{name} duplicates an image of another part"
            )


def test_scene_split_is_stratified_and_reproducible(tmp_path: Path) -> None:
    scenes_dir = shared_path("data", "scenes")
    images, _ = read_voc_folder(scenes_dir)
    has_incorrect = {
        f"images/{im.image}" for im in images if any(f.label == "incorrect_mask" for f in im.faces)
    }
    split = load_split("scenes")
    shares = {p: len(has_incorrect & set(split[p])) / len(split[p]) for p in PARTS}
    assert max(shares.values()) - min(shares.values()) < 0.03, shares
    again = make_scenes_split(scenes_dir, splits_dir=tmp_path)
    assert load_split("scenes", splits_dir=again.parent) == split


def test_group_split_keeps_groups_together() -> None:
    groups = {f"g{i}": [f"g{i}_a", f"g{i}_b"] for i in range(40)}
    split = stratified_group_split(groups, {g: "s" for g in groups}, seed=1)
    _parts_disjoint(split)
    for g, items in groups.items():
        assert len({p for p in PARTS for it in items if it in split[p]}) == 1, g


@pytest.mark.parametrize(
    "alias", ["with_incorrect_mask", "mask_weared_incorrect", "incorrect_mask", " Mask_Weared_Incorrect "]
)
def test_incorrect_aliases_map(alias: str) -> None:
    assert canonical_class(alias) == "incorrect_mask"


def test_config_alias_mapping_and_unknown_name() -> None:
    assert canonical_class("nose_out", {"nose_out": "with_incorrect_mask"}) == "incorrect_mask"
    with pytest.raises(UnknownClassError, match="unknown class name 'hat'"):
        canonical_class("hat")


def _link_images(src: list[Path], dst: Path) -> None:
    dst.mkdir(parents=True)
    for p in src:
        (dst / p.name).symlink_to(p)


def test_crops_folder_accepts_alias_folder_names(tmp_path: Path) -> None:
    crops_dir = shared_path("data", "crops")
    _link_images(sorted((crops_dir / "with_mask").glob("*.jpg"))[:3], tmp_path / "mask")
    _link_images(sorted((crops_dir / "without_mask").glob("*.jpg"))[:2], tmp_path / "no_mask")
    _link_images(sorted((crops_dir / "without_mask").glob("*.jpg"))[2:4], tmp_path / "mask_weared_incorrect")
    data = load_crops_folder(tmp_path)
    assert data.counts() == {"with_mask": 3, "without_mask": 2, "incorrect_mask": 2}
    assert all(c.ndim == 3 and c.dtype == np.uint8 for c in data.crops)


VOC_ODD = """<annotation><filename>odd.jpg</filename><size><width>100</width><height>80</height></size>
<object><name>with_mask</name><bndbox><xmin>10</xmin><ymin>10</ymin><xmax>40</xmax><ymax>50</ymax></bndbox></object>
<object><name>mask_weared_incorrect</name><bndbox><xmin>-10</xmin><ymin>60</ymin><xmax>20</xmax><ymax>95</ymax></bndbox></object>
<object><name>without_mask</name><bndbox><xmin>30</xmin><ymin>30</ymin><xmax>30</xmax><ymax>60</ymax></bndbox></object>
<object><name>without_mask</name><bndbox><xmin>120</xmin><ymin>10</ymin><xmax>150</xmax><ymax>40</ymax></bndbox></object>
<object><name>without_mask</name><bndbox><xmin>5</xmin><ymin>5</ymin><ymax>20</ymax></bndbox></object>
<object><name>with_mask</name></object>
<object><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax><ymax>9</ymax></bndbox></object>
</annotation>"""


def test_voc_odd_boxes_are_skipped_with_a_warning_and_counted(tmp_path: Path, caplog) -> None:
    xml = tmp_path / "odd.xml"
    xml.write_text(VOC_ODD)
    skipped = SkipCounter()
    with caplog.at_level(logging.WARNING):
        im = parse_voc(xml, skipped)
    assert [(f.label, f.box) for f in im.faces] == [
        ("with_mask", (10.0, 10.0, 40.0, 50.0)),
        ("incorrect_mask", (0.0, 60.0, 20.0, 80.0)),  # partly outside: clipped
    ]
    assert skipped.reasons == {
        "zero-area box": 1,
        "box outside the image": 1,
        "missing <bndbox> field": 2,
        "missing <name>": 1,
    }
    assert skipped.total == 5
    assert sum("skipping annotation" in r.message for r in caplog.records) == 5


def test_voc_unknown_class_names_the_file(tmp_path: Path) -> None:
    xml = tmp_path / "bad.xml"
    xml.write_text(VOC_ODD.replace("<name>with_mask</name>", "<name>helmet</name>", 1))
    with pytest.raises(UnknownClassError, match=r"bad\.xml.*'helmet'"):
        parse_voc(xml)


def test_scene_crops_are_cut_like_the_worker() -> None:
    scenes_dir = shared_path("data", "scenes")
    first = load_split("scenes")["test"][:3]
    data = load_scene_crops(scenes_dir, margin=0.15, only=first, max_side=None)
    assert len(data) >= 3 and set(data.sources) == set(first)
    expected = []
    for name in first:
        im = parse_voc(scenes_dir / "annotations" / Path(name).with_suffix(".xml").name)
        frame = read_image(scenes_dir / name)
        expected += crop_faces(frame, np.array([f.box for f in im.faces]), 0.15)
    assert len(expected) == len(data)
    for got, want in zip(data.crops, expected, strict=True):
        np.testing.assert_array_equal(got, want)


def test_empty_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no class subfolders"):
        list_crop_images(tmp_path)
    (tmp_path / "with_mask").mkdir()
    with pytest.raises(DataError, match="hold no images"):
        list_crop_images(tmp_path)


def test_unknown_class_folder_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "helmet").mkdir()
    cv2.imwrite(str(tmp_path / "helmet" / "a.jpg"), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(DataError, match="class folder 'helmet'"):
        list_crop_images(tmp_path)


def test_unreadable_image_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "with_mask").mkdir()
    bad = tmp_path / "with_mask" / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match=r"broken\.jpg: unreadable"):
        read_image(bad)
    with pytest.raises(DataError, match="unreadable"):
        load_crops_folder(tmp_path)


def test_evaluate_cli_reports_bad_input_with_exit_code_2(tmp_path: Path, capsys) -> None:
    from maskwatch.cli.main import main

    rc = main(["evaluate", "crops", str(tmp_path), "--json", str(tmp_path / "m.json")])
    assert rc == 2
    assert "no class subfolders" in capsys.readouterr().err
