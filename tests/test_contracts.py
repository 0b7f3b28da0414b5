"""Stream messages round-trip, and malformed ones raise errors that say what is wrong."""

from __future__ import annotations

import json

import numpy as np
import pytest

from maskwatch.core.contracts import (
    ContractError,
    EndOfStream,
    FrameMessage,
    ResultMessage,
    decode_frame_entry,
    decode_result_entry,
    event_id,
)
from maskwatch.core.faces import Faces
from maskwatch.core.labels import CLASSES


def _b(fields):
    return {k.encode(): v if isinstance(v, bytes) else v.encode() for k, v in fields.items()}


def test_frame_round_trip():
    msg = FrameMessage("cam", 7, 1.5, 640, 480, b"\xff\xd8jpeg", "jpeg", 0.25)
    assert decode_frame_entry(_b(msg.to_fields())) == msg


def test_eof_round_trip():
    eos = EndOfStream("cam", 41, 42, "eof")
    assert decode_frame_entry(_b(eos.to_fields())) == eos


def test_result_round_trip():
    r = ResultMessage(
        "cam",
        3,
        1.0,
        10,
        10,
        2.0,
        Faces(
            np.array([[1, 2, 3, 4]], np.float32),
            np.array([0.9], np.float32),
            np.array([[0.1, 0.8, 0.1]]),
            CLASSES,
        ),
        {"detector": "d"},
        False,
        "w1",
        b"img",
    )
    back = decode_result_entry(_b(r.to_fields()))
    assert back.labels == ["without_mask"] and back.image == b"img" and back.models == {"detector": "d"}
    np.testing.assert_allclose(back.faces.boxes, r.faces.boxes)


def test_placeholder_results_are_unclassified():
    r = ResultMessage(
        "cam",
        0,
        0,
        1,
        1,
        0,
        Faces(np.zeros((2, 4)), np.zeros(2), np.full((2, 3), 1 / 3), CLASSES),
        placeholder=True,
    )
    assert r.labels == ["unclassified", "unclassified"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "missing field 'v'"),
        ({"v": "9", "kind": "frame"}, "schema version 9"),
        ({"v": "1", "kind": "bogus"}, "unknown message kind"),
        (
            {
                "v": "1",
                "kind": "frame",
                "camera": "c",
                "seq": "x",
                "ts": "1",
                "w": "1",
                "h": "1",
                "enc": "jpeg",
                "img": "a",
            },
            "'seq' is not a int",
        ),
        ({"v": "1", "kind": "frame", "camera": "c", "seq": "1"}, "'img'"),
    ],
)
def test_malformed_frames_name_the_problem(fields, message):
    with pytest.raises(ContractError, match=message):
        decode_frame_entry(_b(fields))


def test_garbage_bytes_are_a_contract_error():
    with pytest.raises(ContractError):
        decode_frame_entry({b"v": b"\xff\xfe", b"kind": b"frame"})


def test_event_id_is_stable_per_camera_and_sequence():
    assert event_id("a", 1) == event_id("a", 1)
    assert len({event_id("a", 1), event_id("a", 2), event_id("b", 1)}) == 3


def test_version_1_frames_still_parse_without_motion():
    fields = _b(FrameMessage("cam", 1, 1.0, 64, 48, b"jpg").to_fields())
    fields[b"v"] = b"1"
    msg = decode_frame_entry(fields)
    assert msg.motion is None and msg.full is False


def test_motion_boxes_and_the_full_flag_round_trip():
    msg = FrameMessage(
        "cam", 2, 1.0, 640, 480, b"jpg", motion=((10, 20, 110, 220), (0, 0, 640, 480)), full=True
    )
    back = decode_frame_entry(_b(msg.to_fields()))
    assert back == msg
    still = FrameMessage("cam", 3, 1.0, 640, 480, b"jpg", motion=())
    assert decode_frame_entry(_b(still.to_fields())).motion == ()


@pytest.mark.parametrize(
    "motion, match",
    [
        ("[[0, 0, 700, 10]]", "outside the 640x480 frame"),
        ("[[5, 5, 5, 10]]", "outside"),
        ("[[0, 0, 1.5, 10]]", "four integers"),
        ("[[0, 0, 10]]", "four integers"),
        ("{}", "list of at most"),
        ("[" + ",".join(["[0,0,1,1]"] * 300) + "]", "list of at most"),
        ("not json", "not JSON"),
    ],
)
def test_bad_motion_is_a_contract_error(motion, match):
    fields = _b(FrameMessage("cam", 4, 1.0, 640, 480, b"jpg").to_fields())
    fields[b"motion"] = motion.encode()
    with pytest.raises(ContractError, match=match):
        decode_frame_entry(fields)


def test_carried_faces_and_the_detection_mode_round_trip():
    faces = Faces(
        np.array([[1, 2, 3, 4], [5, 6, 7, 8]], np.float32),
        np.array([0.9, 0.8]),
        np.array([[0.1, 0.8, 0.1], [0.7, 0.2, 0.1]]),
        CLASSES,
        carried=np.array([False, True]),
    )
    r = ResultMessage("cam", 5, 1.0, 10, 10, 2.0, faces, detection="regions")
    back = decode_result_entry(_b(r.to_fields()))
    assert back.detection == "regions" and back.faces.carried.tolist() == [False, True]
    assert back.faces[np.array([False, True])].carried.tolist() == [True]
    with pytest.raises(ContractError, match="detection must be one of"):
        ResultMessage("cam", 5, 1.0, 10, 10, 2.0, faces, detection="partial")


def _frame_fields(**changes: str) -> dict:
    return _b(FrameMessage("cam", 1, 1.0e9, 640, 480, b"jpg", pts=0.5).to_fields() | changes)


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"w": "0"}, "'w' = 0 is outside"),
        ({"h": "70000"}, "'h' = 70000 is outside"),
        ({"ts": "nan"}, "'ts' is not a finite number"),
        ({"ts": "1e20"}, "'ts' = 1e.20 is outside"),
        ({"ts": "-1"}, "'ts' = -1.0 is outside"),
        ({"seq": "-1"}, "'seq' = -1 is outside"),
        ({"seq": str(2**60)}, "'seq' = .* is outside"),
        ({"pts": "inf"}, "'pts' is not a finite number"),
        ({"camera": "a b"}, "not a valid camera id"),
        ({"camera": ".."}, "not a valid camera id"),
        ({"enc": "j" * 300}, "longer than 256"),
    ],
)
def test_hostile_frame_fields_are_contract_errors(changes, match):
    with pytest.raises(ContractError, match=match):
        decode_frame_entry(_frame_fields(**changes))


def test_a_message_must_name_its_stream_camera():
    assert decode_frame_entry(_frame_fields(), "cam").camera == "cam"
    with pytest.raises(ContractError, match="differs from its stream's camera 'door'"):
        decode_frame_entry(_frame_fields(), "door")
    with pytest.raises(ContractError, match="differs from its stream's camera 'door'"):
        decode_result_entry(_b(EndOfStream("cam", 4, 5).to_fields()), "door")


@pytest.mark.parametrize(
    "seq, frames, match",
    [("4", "6", "claims 6 frames up to seq 4"), ("4", "-1", "'frames' = -1"), ("-2", "0", "'seq' = -2")],
)
def test_inconsistent_ends_are_contract_errors(seq, frames, match):
    fields = _b(EndOfStream("cam", 0, 1).to_fields() | {"seq": seq, "frames": frames})
    with pytest.raises(ContractError, match=match):
        decode_frame_entry(fields)
    assert decode_frame_entry(_b(EndOfStream("cam", -1, 0).to_fields())).frames == 0  # a file with no frame


def _result_fields(data_text: str | None = None, **data: object) -> dict:
    faces = Faces(
        np.array([[1, 2, 30, 40]], np.float32), np.array([0.9]), np.array([[0.1, 0.8, 0.1]]), CLASSES
    )
    fields = ResultMessage("cam", 3, 1.0, 64, 48, 2.0, faces, {"detector": "d"}).to_fields()
    wire = json.loads(fields["data"]) | data
    return _b(fields | {"data": data_text if data_text is not None else json.dumps(wire)})


@pytest.mark.parametrize(
    "data, match",
    [
        ({"models": "retinaface"}, "'models' must map"),
        ({"models": [["detector", "x"]]}, "'models' must map"),
        ({"models": {"detector": 1}}, "'models' must map"),
        ({"classes": [], "probs": [[]]}, "'classes' is empty but there are faces"),
        ({"classes": ["a", "a", "b"]}, "unique names"),
        ({"boxes": [[0, 0, 65, 40]]}, "outside the 64x48 frame"),
        ({"boxes": [[0, 0, 30]]}, "right shape"),
        ({"boxes": [[0, 0, 30, None]]}, "right shape"),
        ({"scores": [1.5]}, r"lie in \[0, 1\]"),
        ({"probs": [[0.1, 0.8]]}, "right shape"),
        ({"carried": [1]}, "booleans, one per face"),
        ({"detection": 3}, "'detection' must be one of"),
        ({"worker": ["w"]}, "'worker' must be text"),
    ],
)
def test_hostile_result_data_are_contract_errors(data, match):
    with pytest.raises(ContractError, match=match):
        decode_result_entry(_result_fields(**data))


@pytest.mark.parametrize("text", ['{"boxes": [[NaN, 0, 1, 1]]}', "[1]", "[" * 50_000 + "]" * 50_000, "{"])
def test_result_data_that_is_not_a_json_object_of_numbers_is_a_contract_error(text):
    with pytest.raises(ContractError):
        decode_result_entry(_result_fields(text))


def test_wire_boxes_within_rounding_of_the_frame_are_clipped_into_it():
    back = decode_result_entry(_result_fields(boxes=[[-0.04, 0, 64.04, 48.0]]))
    assert back.faces.boxes.tolist() == [[0.0, 0.0, 64.0, 48.0]]


def test_a_result_holding_nan_cannot_be_written():
    faces = Faces(np.array([[1, 2, 30, 40]], np.float32), np.array([np.nan]), None)
    with pytest.raises(ValueError, match="Out of range float"):
        ResultMessage("cam", 3, 1.0, 64, 48, 2.0, faces).to_fields()


def test_a_results_media_time_round_trips_and_is_optional():
    faces = Faces(
        np.array([[1, 2, 3, 4]], np.float32),
        np.array([0.9], np.float32),
        np.array([[0.1, 0.8, 0.1]]),
        CLASSES,
    )
    with_pts = ResultMessage("cam", 3, 1.0e9, 10, 10, 1.0e9, faces, pts=12.4)
    assert decode_result_entry(_b(with_pts.to_fields())).pts == 12.4
    assert (
        decode_result_entry(_b(ResultMessage("cam", 3, 1.0e9, 10, 10, 1.0e9, faces).to_fields())).pts is None
    )
    with pytest.raises(ContractError, match="pts"):
        decode_result_entry(_b(with_pts.to_fields() | {"pts": "nan"}))


def test_clips_of_files_show_media_time_and_live_clips_the_capture_time():
    from maskwatch.publisher.frames import BufferedFrame
    from maskwatch.publisher.render import clock_text

    empty = Faces.empty(CLASSES)
    assert clock_text(BufferedFrame("cam", 1, 1_764_000_000.0, empty, pts=3723.46)) == "01:02:03.5"
    assert clock_text(BufferedFrame("cam", 1, 1_764_000_000.0, empty)).endswith(" UTC")
