"""``maskwatch evaluate crops``: crops folders and VOC scene boxes -> metrics JSON and PNG plots; metric maths."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from maskwatch.models.training.metrics import classification_metrics, roc_auc
from maskwatch.models.training.splits import load_split
from tests.conftest import shared_path

KEYS = {"n", "accuracy", "binary_accuracy", "log_loss", "roc_auc", "per_class", "confusion_matrix", "binary"}


def test_metrics_by_hand() -> None:
    y = np.array([0, 0, 1, 2])
    p = np.array([[0.9, 0.05, 0.05], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.3, 0.6, 0.1]])
    m = classification_metrics(y, p)
    assert m["n"] == 4 and m["accuracy"] == 0.5
    assert m["binary_accuracy"] == 0.75  # the incorrect_mask face predicted without_mask is still a violation
    assert m["confusion_matrix"]["matrix"] == [[1, 1, 0], [0, 1, 0], [0, 1, 0]]
    assert m["confusion_matrix"]["labels"] == ["with_mask", "without_mask", "incorrect_mask"]
    assert m["per_class"]["incorrect_mask"]["recall"] == 0.0
    assert m["per_class"]["without_mask"]["precision"] == pytest.approx(1 / 3)
    assert m["log_loss"] == pytest.approx(-np.mean(np.log([0.9, 0.2, 0.8, 0.1])))
    assert m["roc_auc"] == 0.75  # P(violation) 0.9, 0.7 vs 0.1, 0.8: 3 of 4 pairs ordered
    assert roc_auc(np.array([0, 1, 0, 1]), np.array([0.5, 0.5, 0.5, 0.5])) == 0.5
    assert roc_auc(np.array([1, 1]), np.array([0.1, 0.2])) is None


def _link(src: list[Path], dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for p in src:
        (dst / p.name).symlink_to(p)


@pytest.mark.shared
def test_evaluate_crops_folder_writes_json_and_plots(tmp_path: Path) -> None:
    from maskwatch.cli.main import main

    crops = shared_path("data", "crops")
    test = load_split("crops")["test"]
    _link([crops / n for n in test if n.startswith("with_mask/")][:6], tmp_path / "crops" / "mask")
    _link([crops / n for n in test if n.startswith("without_mask/")][:6], tmp_path / "crops" / "without_mask")
    out = tmp_path / "crops.json"
    rc = main(
        [
            "evaluate",
            "crops",
            str(tmp_path / "crops"),
            "--json",
            str(out),
            "--report-dir",
            str(tmp_path / "r"),
        ]
    )
    assert rc == 0
    m = json.loads(out.read_text())
    assert set(m) >= KEYS and m["n"] == 12
    assert {"precision", "recall", "f1"} <= set(m["per_class"]["with_mask"])
    for name in ("confusion", "roc", "reliability"):
        assert (tmp_path / "r" / f"crops_{name}.png").stat().st_size > 1000


@pytest.mark.shared
def test_evaluate_scene_boxes_of_a_voc_folder(tmp_path: Path) -> None:
    from maskwatch.cli.main import main

    scenes = shared_path("data", "scenes")
    names = load_split("scenes")["test"][:6]
    _link([scenes / n for n in names], tmp_path / "s" / "images")
    _link(
        [scenes / "annotations" / Path(n).with_suffix(".xml").name for n in names],
        tmp_path / "s" / "annotations",
    )
    out = tmp_path / "scenes.json"
    rc = main(
        [
            "evaluate",
            "crops",
            "--scenes",
            str(tmp_path / "s"),
            "--json",
            str(out),
            "--report-dir",
            str(tmp_path / "r"),
        ]
    )
    assert rc == 0
    m = json.loads(out.read_text())
    assert set(m) >= KEYS and m["n"] >= 6 and m["data"]["kind"] == "scenes"
    assert (tmp_path / "r" / "scenes_confusion.png").is_file()
