"""Stand-in test videos, written with PyAV from a real face photo shipped in a pip wheel.

Used when ``../shared/data/videos`` is absent, under the same file names and with the same timelines
(size, rate, frame count, when a face is bare, away or masked), so the tests' expectations hold:

- ``bare_then_masked_720p.mp4``: H.264 1280x720, 30 fps, 268 frames (45 at 5 fps). No face for the
  first 0.6 s (seq 0-2 at 5 fps), a bare face drifting near x 450-870, y 50-450 to 4.6 s (seq 3-22),
  a cut-away without a face (seq 23-27), then the same face wearing a drawn surgical mask (seq 28-44).
- ``corridor_cctv_masked_1080p.mp4``: H.264 1920x1080, 30 fps, 311 frames. One masked face that grows
  from about 90 px to 300 px wide as it comes towards the camera.

The face is Grace Hopper's portrait from matplotlib's sample data (``grace_hopper.jpg``, in the
matplotlib wheel of the dev extra); the default detector finds it and the shipped classifier calls it
``without_mask``, and ``with_mask`` once the mask is drawn on (``tests/test_media.py`` checks both).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import lru_cache
from pathlib import Path

import av
import cv2
import numpy as np

BARE_THEN_MASKED = "bare_then_masked_720p.mp4"
CORRIDOR_MASKED = "corridor_cctv_masked_1080p.mp4"
FPS = 30

# The head in grace_hopper.jpg (512x600): the crop pasted into frames, and the face box and mask
# outline inside the source image (from RetinaFace's box and landmarks on it).
_HEAD = (slice(40, 440), slice(90, 440))  # rows, columns: 400 x 350 px
_FACE_CENTRE_IN_HEAD = (176.0, 195.0)  # x, y of the face box centre inside the crop
_MASK_OUTLINE = np.array(
    [
        [180, 222],
        [225, 205],
        [268, 212],
        [312, 203],
        [352, 220],
        [350, 290],
        [320, 335],
        [268, 350],
        [215, 335],
        [185, 290],
    ],
    np.int32,
)


def face_photo_path() -> Path:
    """``grace_hopper.jpg`` from the installed matplotlib (a real, bare face)."""
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: install the dev extra (matplotlib)")
    return path


@lru_cache(maxsize=1)
def face_photo() -> np.ndarray:
    """The bare face photo, BGR."""
    image = cv2.imread(str(face_photo_path()))
    if image is None:
        raise OSError(f"cannot read {face_photo_path()}")
    return image


@lru_cache(maxsize=1)
def masked_face_photo() -> np.ndarray:
    """The same photo with a light-blue pleated surgical mask drawn over nose, mouth and chin."""
    image = face_photo().copy()
    cv2.fillPoly(image, [_MASK_OUTLINE], (225, 205, 170), lineType=cv2.LINE_AA)
    for y in (245, 270, 295):  # pleats
        cv2.line(image, (190, y), (345, y), (195, 175, 140), 2, cv2.LINE_AA)
    cv2.line(image, (182, 225), (160, 250), (235, 235, 235), 3, cv2.LINE_AA)  # ear loops
    cv2.line(image, (350, 222), (372, 248), (235, 235, 235), 3, cv2.LINE_AA)
    return image


def background(width: int, height: int, seed: int, level: int = 90) -> np.ndarray:
    """A grey vertical gradient with fixed sensor-like noise, BGR."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(-25, 25, height, dtype=np.float32)[:, None, None]
    noise = rng.normal(0, 6, (height, width, 3)).astype(np.float32)
    return np.clip(level + ramp + noise, 0, 255).astype(np.uint8)


def paste_face(frame: np.ndarray, photo: np.ndarray, centre: tuple[float, float], scale: float) -> None:
    """Paste the head crop of ``photo`` into ``frame`` (in place), scaled, with its face centred at ``centre``."""
    head = cv2.resize(photo[_HEAD], None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    fx, fy = _FACE_CENTRE_IN_HEAD
    x0, y0 = round(centre[0] - fx * scale), round(centre[1] - fy * scale)
    h, w = head.shape[:2]
    fh, fw = frame.shape[:2]
    sx, sy = max(0, -x0), max(0, -y0)
    ex, ey = min(w, fw - x0), min(h, fh - y0)
    if ex > sx and ey > sy:
        frame[y0 + sy : y0 + ey, x0 + sx : x0 + ex] = head[sy:ey, sx:ex]


def write_video(path: Path, frames: Iterator[np.ndarray], fps: int = FPS) -> Path:
    """Encode BGR frames as H.264 (yuv420p) MP4 with PyAV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = None
        for image in frames:
            if stream is None:
                stream = container.add_stream("libx264", rate=fps)
                stream.height, stream.width = image.shape[:2]
                stream.pix_fmt = "yuv420p"
                stream.options = {"preset": "veryfast", "crf": "23"}
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            for packet in stream.encode(frame):
                container.mux(packet)
        if stream is not None:
            for packet in stream.encode():
                container.mux(packet)
    return path


def _frames(count: int, draw: Callable[[int], np.ndarray]) -> Iterator[np.ndarray]:
    for i in range(count):
        yield draw(i)


def bare_then_masked(path: Path) -> Path:
    """The stand-in for ``bare_then_masked_720p.mp4`` (see the module docstring)."""
    room, away = background(1280, 720, seed=1), background(1280, 720, seed=2, level=140)
    bare, masked = face_photo(), masked_face_photo()

    def draw(i: int) -> np.ndarray:
        if i < 18:  # seq 0-2: nobody yet
            return room.copy()
        if i < 138:  # seq 3-22: bare face, drifting slowly
            frame = room.copy()
            paste_face(frame, bare, (640 + 25 * np.sin(i / 20), 245 + 8 * np.sin(i / 13)), 1.2)
            return frame
        if i < 168:  # seq 23-27: the camera looks away
            return away.copy()
        frame = room.copy()  # seq 28-44: masked
        paste_face(frame, masked, (660 + 20 * np.sin(i / 18), 265 + 6 * np.sin(i / 11)), 1.2)
        return frame

    return write_video(path, _frames(268, draw))


def corridor_masked(path: Path) -> Path:
    """The stand-in for ``corridor_cctv_masked_1080p.mp4`` (see the module docstring)."""
    corridor, masked = background(1920, 1080, seed=3, level=110), masked_face_photo()

    def draw(i: int) -> np.ndarray:
        t = i / 310
        frame = corridor.copy()
        paste_face(frame, masked, (900 + 120 * t, 300 + 200 * t), 0.55 + 1.25 * t)
        return frame

    return write_video(path, _frames(311, draw))


def make_stand_in_videos(folder: Path) -> Path:
    """Write both stand-in videos into ``folder``; return it."""
    bare_then_masked(folder / BARE_THEN_MASKED)
    corridor_masked(folder / CORRIDOR_MASKED)
    return folder


FACE_BOX_IN_PHOTO = np.array([[184.0, 139.0, 348.0, 331.0]], np.float32)
"""The face in ``grace_hopper.jpg`` (x1, y1, x2, y2; forehead to chin, ear to ear), the same in the masked copy."""


def stand_in_scenes(bare: str, masked: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Two labelled images like ``../shared/data/scenes`` ones, keyed by the given names: the bare face photo
    and its masked copy, each with its one face box."""
    return {bare: (face_photo(), FACE_BOX_IN_PHOTO), masked: (masked_face_photo(), FACE_BOX_IN_PHOTO)}
