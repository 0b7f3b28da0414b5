"""The stand-in videos (tests/support/media.py) behave like the real ones: the default detector finds the
face and the shipped classifier calls it bare, then masked, on the timeline the tests expect."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from maskwatch.config.settings import ClassifierSettings, DetectorSettings
from maskwatch.models.classifier import DEFAULT_MODEL_PATH
from maskwatch.runtime.model_factory import build_analyzer
from tests.support import media


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return media.make_stand_in_videos(tmp_path_factory.mktemp("media"))


def sampled(path: Path, step: int = 6) -> tuple[list[np.ndarray], int, tuple[int, int], float]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = float(stream.average_rate)
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(stream)]
    return frames[::step], len(frames), frames[0].shape[1::-1], rate


def test_stand_ins_have_the_real_videos_sizes_rates_and_lengths(stand_ins):
    _, count, size, rate = sampled(stand_ins / media.BARE_THEN_MASKED)
    assert (count, size, rate) == (268, (1280, 720), 30.0)
    _, count, size, rate = sampled(stand_ins / media.CORRIDOR_MASKED)
    assert (count, size, rate) == (311, (1920, 1080), 30.0)


@pytest.mark.skipif(not DEFAULT_MODEL_PATH.is_file(), reason=f"needs models/{DEFAULT_MODEL_PATH.name}")
def test_detector_and_classifier_see_bare_then_masked_faces(stand_ins):
    analyzer = build_analyzer(DetectorSettings(), ClassifierSettings(type="keras"))
    frames, *_ = sampled(stand_ins / media.BARE_THEN_MASKED)
    classes = []
    for i in range(0, len(frames), 8):
        classes += [
            [analyzer.classes[int(np.argmax(p))] for p in r.probs] for r in analyzer(frames[i : i + 8])
        ]
    assert classes[:3] == [[], [], []]
    assert classes[3:23] == [["without_mask"]] * 20
    assert classes[23:28] == [[]] * 5
    assert classes[28:] == [["with_mask"]] * 17
    frames, *_ = sampled(stand_ins / media.CORRIDOR_MASKED, step=30)
    assert [[analyzer.classes[int(np.argmax(p))] for p in r.probs] for r in analyzer(frames)] == [
        ["with_mask"]
    ] * len(frames)
