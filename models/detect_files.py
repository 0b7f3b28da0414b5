"""``maskwatch detect``: annotate image files, folders of images and videos, with one JSON per image/frame.

Images give ``<name>.<ext>`` (annotated) and ``<name>.json``; videos give ``<name>.mp4`` (H.264 at
the source's frame rate, every frame kept) and ``<name>.frames.jsonl`` (one JSON object per frame).
Faces carry the fields of the pipeline's events: ``box``, ``score``, ``class``, ``probs``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
from tqdm import tqdm

from maskwatch.core.faces import Faces
from maskwatch.models.analysis import FaceAnalyzer
from maskwatch.models.annotate import draw_faces

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".ts", ".mpg", ".mpeg"})
VIDEO_BATCH = 8


class InputError(ValueError):
    """A path given on the command line does not exist or is neither an image, a folder nor a video."""


def expand_inputs(paths: Sequence[Path]) -> list[Path]:
    """Files to process: images and videos as given, folders expanded to their images (sorted, recursive)."""
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
            if not found:
                raise InputError(f"{p}: folder has no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
            files.extend(found)
        elif p.is_file():
            if p.suffix.lower() not in IMAGE_SUFFIXES | VIDEO_SUFFIXES:
                raise InputError(f"{p}: not an image or video file (by its extension)")
            files.append(p)
        else:
            raise InputError(f"{p}: no such file or folder")
    return files


def face_records(faces: Faces) -> list[dict[str, Any]]:
    """The pipeline's face fields for each classified face: box, score, class, probs."""
    assert faces.probs is not None, "face_records needs classified faces"
    return [
        {
            "box": [round(float(v), 1) for v in box],
            "score": round(float(score), 4),
            "class": label,
            "probs": {c: round(float(p), 4) for c, p in zip(faces.classes, probs, strict=True)},
        }
        for box, score, label, probs in zip(faces.boxes, faces.scores, faces.labels, faces.probs, strict=True)
    ]


class FrameAnnotator:
    """Detect, classify and draw a batch of frames with a :class:`models.analysis.FaceAnalyzer`."""

    def __init__(self, analyzer: FaceAnalyzer) -> None:
        self.analyzer = analyzer

    @property
    def models(self) -> dict[str, str]:
        return self.analyzer.models

    def __call__(self, frames: Sequence[np.ndarray]) -> list[tuple[np.ndarray, list[dict[str, Any]]]]:
        return [
            (draw_faces(frame.copy(), faces), face_records(faces))
            for frame, faces in zip(frames, self.analyzer(frames), strict=True)
        ]


def annotate_image(path: Path, out_dir: Path, annotate: FrameAnnotator) -> dict[str, Any]:
    """Write the annotated copy and ``<name>.json`` of one image; returns its JSON document."""
    frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if frame is None:
        raise ValueError(f"{path}: cannot decode the image (unreadable or not an image)")
    ((drawn, faces),) = annotate([frame])
    target = out_dir / path.name
    if not cv2.imwrite(str(target), drawn):
        raise ValueError(f"{target}: cannot write the annotated image")
    doc = {
        "source": str(path),
        "width": frame.shape[1],
        "height": frame.shape[0],
        "faces": faces,
        "models": annotate.models,
        "placeholder_classifier": annotate.analyzer.placeholder,
    }
    (out_dir / f"{path.stem}.json").write_text(json.dumps(doc, indent=1) + "\n")
    return doc


def _decoded_frames(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> Iterator[np.ndarray]:
    for frame in container.decode(stream):
        yield frame.to_ndarray(format="bgr24")


def annotate_video(
    path: Path, out_dir: Path, annotate: FrameAnnotator, progress: bool = True
) -> dict[str, Any]:
    """Annotate every frame of a video into an H.264 MP4 at the source frame rate, plus one JSON line per frame."""
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: empty file (0 bytes), not a video")
    try:
        source = av.open(str(path))
    except av.error.FFmpegError as e:
        raise ValueError(f"{path}: cannot open the video: {e}") from None
    target = out_dir / f"{path.stem}.mp4"
    lines_path = out_dir / f"{path.stem}.frames.jsonl"
    n = faces_total = 0
    with source:
        if not source.streams.video:
            raise ValueError(f"{path}: has no video stream")
        stream = source.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        total = stream.frames or None
        with av.open(str(target), mode="w", format="mp4") as sink, open(lines_path, "w") as lines:
            out_stream = None
            bar = tqdm(total=total, desc=path.name, unit="frame", disable=not progress)
            batch: list[np.ndarray] = []

            def flush() -> None:
                nonlocal out_stream, n, faces_total
                for drawn, faces in annotate(batch):
                    if out_stream is None:
                        out_stream = sink.add_stream("libx264", rate=Fraction(rate).limit_denominator(1001))
                        out_stream.width = drawn.shape[1] - drawn.shape[1] % 2
                        out_stream.height = drawn.shape[0] - drawn.shape[0] % 2
                        out_stream.pix_fmt = "yuv420p"
                        out_stream.options = {"crf": "23", "preset": "veryfast"}
                    even = drawn[: out_stream.height, : out_stream.width]
                    for packet in out_stream.encode(
                        av.VideoFrame.from_ndarray(np.ascontiguousarray(even), format="bgr24")
                    ):
                        sink.mux(packet)
                    doc = {
                        "source": str(path),
                        "frame": n,
                        "time_s": round(float(n / rate), 4),
                        "faces": faces,
                    }
                    lines.write(json.dumps(doc) + "\n")
                    n += 1
                    faces_total += len(faces)
                bar.update(len(batch))
                batch.clear()

            try:
                for frame in _decoded_frames(source, stream):
                    batch.append(frame)
                    if len(batch) == VIDEO_BATCH:
                        flush()
                if batch:
                    flush()
            except av.error.FFmpegError as e:
                raise ValueError(f"{path}: cannot decode the video after {n} frames: {e}") from None
            finally:
                bar.close()
            if out_stream is None:
                raise ValueError(f"{path}: no frame could be decoded")
            for packet in out_stream.encode():
                sink.mux(packet)
    return {"source": str(path), "output": str(target), "frames": n, "fps": float(rate), "faces": faces_total}


def detect_paths(
    paths: Sequence[Path],
    out_dir: Path,
    analyzer: FaceAnalyzer,
    progress: bool = True,
) -> dict[str, Any]:
    """Annotate every input into ``out_dir``; a file that fails is reported and the others go on."""
    files = expand_inputs(paths)
    out_dir.mkdir(parents=True, exist_ok=True)
    annotate = FrameAnnotator(analyzer)
    summary: dict[str, Any] = {
        "images": 0,
        "videos": 0,
        "frames": 0,
        "faces": 0,
        "failed": [],
        "models": annotate.models,
    }
    for f in tqdm(files, desc="images", unit="img", disable=not progress or len(files) < 2):
        try:
            if f.suffix.lower() in VIDEO_SUFFIXES:
                v = annotate_video(f, out_dir, annotate, progress)
                summary["videos"] += 1
                summary["frames"] += v["frames"]
                summary["faces"] += v["faces"]
            else:
                doc = annotate_image(f, out_dir, annotate)
                summary["images"] += 1
                summary["faces"] += len(doc["faces"])
        except (ValueError, OSError) as e:
            summary["failed"].append({"path": str(f), "error": str(e)})
            tqdm.write(f"error: {e}", file=sys.stderr)
    return summary
