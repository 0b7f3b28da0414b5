"""``maskwatch models list`` and ``models fetch --from``: pinned sha256, clear errors, nothing half-installed."""

from __future__ import annotations

import shutil

import pytest

from maskwatch.cli.main import main
from maskwatch.models.detectors.weights import file_states, weights_ready
from tests.conftest import shared_path


def test_fetch_from_a_folder_installs_verified_weights_and_list_shows_them(tmp_path, capsys):
    source = shared_path("weights")
    target = tmp_path / "weights"
    assert main(["models", "fetch", "yunet", "--from", str(source), "--weights-dir", str(target)]) == 0
    assert weights_ready("yunet", target)
    assert main(["models", "fetch", "opencv-res10", "--from", str(source), "--weights-dir", str(target)]) == 0
    assert all(s.verified for s in file_states("opencv-res10", target))
    capsys.readouterr()
    assert main(["models", "list", "--weights-dir", str(target)]) == 0
    out = capsys.readouterr().out
    assert f"{target / 'face_detection_yunet.onnx'}: verified" in out
    assert "mtcnn" in out and "blazeface" in out


def test_fetch_refuses_a_file_with_the_wrong_sha256_and_installs_nothing(tmp_path, capsys):
    source = tmp_path / "src"
    source.mkdir()
    (source / "face_detection_yunet.onnx").write_bytes(b"tampered")
    target = tmp_path / "weights"
    assert main(["models", "fetch", "yunet", "--from", str(source), "--weights-dir", str(target)]) == 2
    err = capsys.readouterr().err
    assert "face_detection_yunet.onnx" in err and "sha256" in err
    assert not (target / "face_detection_yunet.onnx").exists()


def test_list_reports_missing_and_mismatched_files_with_the_command_that_fixes_them(tmp_path, capsys):
    shutil.copyfile(
        shared_path("weights", "opencv_face_detector.pbtxt"), tmp_path / "opencv_face_detector.pbtxt"
    )
    (tmp_path / "opencv_face_detector_uint8.pb").write_bytes(b"truncated")
    assert main(["models", "list", "--weights-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "maskwatch models fetch yunet" in out and "maskwatch models fetch opencv-res10" in out
    assert "opencv_face_detector_uint8.pb: sha256 MISMATCH" in out
    assert f"{tmp_path / 'face_detection_yunet.onnx'}: missing" in out


def test_fetch_of_a_bundled_detector_says_there_is_nothing_to_fetch(tmp_path):
    with pytest.raises(SystemExit):  # argparse: only yunet and opencv-res10 have weight files
        main(["models", "fetch", "mtcnn", "--weights-dir", str(tmp_path)])


def test_the_shipped_network_is_listed_with_its_sha256_and_a_changed_one_is_not_ready(
    tmp_path, monkeypatch, capsys
):
    from maskwatch.models.detectors.base import DetectorWeights
    from maskwatch.models.detectors.weights import package_file_state

    state = package_file_state("retinaface")
    assert state is not None and state.verified and weights_ready("retinaface", tmp_path)
    assert main(["models", "list", "--weights-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"{state.path}: verified" in out and "retinaface_mnv2.onnx" in out

    changed = tmp_path / "retinaface_mnv2.onnx"
    changed.write_bytes(b"not the pinned network")
    real = DetectorWeights.package_path
    monkeypatch.setattr(
        DetectorWeights,
        "package_path",
        lambda self: changed if self.package == "maskwatch.models.detectors" else real(self),
    )
    assert package_file_state("retinaface").status == "sha256 MISMATCH"
    assert not weights_ready("retinaface", tmp_path)
