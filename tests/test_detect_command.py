"""``maskwatch detect`` on a real image and a real video from ../shared, and on bad input."""

from __future__ import annotations

import json
import shutil

import av
import cv2
import numpy as np
import pytest

from maskwatch.cli.main import main
from maskwatch.models.annotate import CLASS_COLORS
from tests.conftest import shared_path

IMAGE = "055739ea453a69a9af7ae56404286e94.jpg"
VIDEO = "street_crowd_720p.mp4"  # 135 frames, many small faces


@pytest.fixture(scope="module")
def yunet_args() -> list[str]:
    weights = shared_path("weights")
    if not (weights / "face_detection_yunet.onnx").is_file():
        pytest.skip("needs ../shared/weights/face_detection_yunet.onnx")
    return ["--detector", "yunet", "--weights-dir", str(weights), "--quiet"]


def _edge_colour(frame: np.ndarray, box: list[float]) -> np.ndarray:
    """Median colour of the box's left edge (the label sits above the top edge)."""
    x1, y1, _, y2 = (round(v) for v in box)
    return np.median(frame[y1 + 5 : y2 - 5, max(x1 - 1, 0) : x1 + 2].reshape(-1, 3), axis=0)


def test_detect_on_an_image_writes_the_annotated_copy_and_its_json(tmp_path, yunet_args, capsys):
    src = shared_path("data", "scenes", "images", IMAGE)
    assert main(["detect", str(src), "--out", str(tmp_path), *yunet_args]) == 0
    doc = json.loads((tmp_path / f"{src.stem}.json").read_text())
    assert doc["width"] == 800 or doc["width"] > 0
    face = doc["faces"][0]
    assert set(face) == {"box", "score", "class", "probs"} and face["class"] in face["probs"]
    drawn = cv2.imread(str(tmp_path / IMAGE))
    original = cv2.imread(str(src))
    assert drawn.shape == original.shape and not np.array_equal(drawn, original)
    expected = np.array(CLASS_COLORS[face["class"]])
    assert np.abs(_edge_colour(drawn, face["box"]) - expected).max() < 40


def test_detect_on_a_video_keeps_every_frame_and_the_frame_rate(tmp_path, yunet_args):
    src = shared_path("data", "videos", VIDEO)
    assert main(["detect", str(src), "--out", str(tmp_path), *yunet_args]) == 0
    lines = [json.loads(x) for x in (tmp_path / "street_crowd_720p.frames.jsonl").read_text().splitlines()]
    with av.open(str(src)) as c:
        n_in, rate_in = sum(1 for _ in c.decode(video=0)), c.streams.video[0].average_rate
    with av.open(str(tmp_path / "street_crowd_720p.mp4")) as c:
        stream = c.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.average_rate == rate_in
        frames = [f.to_ndarray(format="bgr24") for f in c.decode(stream)]
    assert len(frames) == n_in == len(lines)
    k = next(
        i
        for i, doc in enumerate(lines)
        if doc["faces"] and doc["faces"][0]["box"][3] - doc["faces"][0]["box"][1] > 30
    )
    face = lines[k]["faces"][0]
    expected = np.array(CLASS_COLORS[face["class"]])
    assert (
        np.abs(_edge_colour(frames[k], face["box"]) - expected).max() < 60
    )  # H.264 blurs thin lines a little


def test_bad_inputs_fail_clearly_and_the_good_ones_still_run(tmp_path, yunet_args, capsys, monkeypatch):
    monkeypatch.setenv(
        "MASKWATCH_CLASSIFIER__TYPE", "placeholder"
    )  # input handling only: skip the model load
    empty_video = tmp_path / "in" / "empty.mp4"
    empty_video.parent.mkdir()
    empty_video.write_bytes(b"")
    broken_image = tmp_path / "in" / "broken.jpg"
    broken_image.write_bytes(b"\xff\xd8 not really a jpeg")
    good = tmp_path / "in" / IMAGE
    shutil.copyfile(shared_path("data", "scenes", "images", IMAGE), good)
    out = tmp_path / "out"
    assert (
        main(["detect", str(empty_video), str(broken_image), str(good), "--out", str(out), *yunet_args]) == 1
    )
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    errors = {f["path"]: f["error"] for f in summary["failed"]}
    assert "empty file" in errors[str(empty_video)] and "cannot decode" in errors[str(broken_image)]
    assert summary["images"] == 1 and (out / f"{good.stem}.json").exists()

    assert main(["detect", str(tmp_path / "missing.jpg"), "--out", str(out), *yunet_args]) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_detect_with_missing_weights_names_the_file_and_the_fix(tmp_path, capsys):
    img = tmp_path / "x.jpg"
    cv2.imwrite(str(img), np.zeros((64, 64, 3), np.uint8))
    assert (
        main(
            [
                "detect",
                str(img),
                "--out",
                str(tmp_path / "o"),
                "--detector",
                "yunet",
                "--weights-dir",
                str(tmp_path),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert str(tmp_path / "face_detection_yunet.onnx") in err and "maskwatch models fetch yunet" in err


def test_detect_on_a_folder_annotates_every_image_in_it(tmp_path, yunet_args, capsys, monkeypatch):
    monkeypatch.setenv(
        "MASKWATCH_CLASSIFIER__TYPE", "placeholder"
    )  # input handling only: skip the model load
    folder = tmp_path / "in" / "sub"
    folder.mkdir(parents=True)
    for name in (IMAGE, "29d7ae661aae8934f9a2f1974132cd17.jpg"):
        shutil.copyfile(shared_path("data", "scenes", "images", name), folder / name)
    assert main(["detect", str(tmp_path / "in"), "--out", str(tmp_path / "out"), *yunet_args]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["images"] == 2 and summary["faces"] >= 2 and not summary["failed"]
    assert len(list((tmp_path / "out").glob("*.json"))) == 2
