"""Stream messages round-trip, and malformed ones raise errors that say what is wrong."""

from __future__ import annotations

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
