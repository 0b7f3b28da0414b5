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
