"""A decoded frame turned into what the ingest publishes: a BGR image (downscaled to ``max_width`` in the
same swscale pass as the colour conversion) and, for motion, the frame's own luma plane.

One :class:`FrameConverter` per camera reader: it keeps one swscale context (PyAV's
:class:`~av.video.reformatter.VideoReformatter`) from frame to frame and scales on the reader's own
thread. ``benchmarks/ingest_cost.py`` measures it: a 1080p frame to 1280x720 BGR costs about 2 ms of CPU
this way against about 11 ms for ``to_ndarray`` then ``cv2.resize(INTER_AREA)``.
"""

from __future__ import annotations

import av
import numpy as np
from av.video.reformatter import VideoReformatter

__all__ = ["FrameConverter", "luma_plane", "published_size"]


def published_size(width: int, height: int, max_width: int | None) -> tuple[int, int]:
    """``(width, height)`` of the published frame: a frame wider than ``max_width`` is scaled to it, the
    height rounded to the nearest pixel (never 0); others keep their size."""
    if max_width and width > max_width:
        return max_width, max(1, round(height * max_width / width))
    return width, height


class FrameConverter:
    """Decoded frames to published BGR images, for one camera (not thread-safe: one per reader)."""

    def __init__(self, max_width: int | None) -> None:
        self.max_width = max_width
        self._reformatter = VideoReformatter()

    def bgr(self, frame: av.VideoFrame) -> np.ndarray:
        """The published image of ``frame``: H x W x 3 uint8 BGR, at :func:`published_size`. Scaling
        averages source pixels (swscale ``AREA``, like ``cv2.INTER_AREA``) and runs in one thread."""
        width, height = published_size(frame.width, frame.height, self.max_width)
        if (width, height) == (frame.width, frame.height):
            out = self._reformatter.reformat(frame, format="bgr24", threads=1)
        else:
            out = self._reformatter.reformat(
                frame, width=width, height=height, format="bgr24", interpolation="AREA", threads=1
            )
        return out.to_ndarray()


def luma_plane(frame: av.VideoFrame) -> np.ndarray | None:
    """The frame's luma as an H x W uint8 view of its first plane (no copy, ``line_size`` padding cut
    off) when that plane holds 8-bit luma and nothing else (yuv420p, yuvj420p, yuv422p, yuv444p, nv12,
    gray, ...); None for any other pixel format (RGB, packed YUV, palette, more than 8 bits)."""
    fmt = frame.format
    components = fmt.components
    if fmt.has_palette or not components:
        return None
    luma = components[0]
    if not luma.is_luma or luma.plane != 0 or luma.bits != 8 or any(c.plane == 0 for c in components[1:]):
        return None
    plane = frame.planes[0]
    width, height, stride = plane.width, plane.height, plane.line_size
    if stride < width or plane.buffer_size < stride * height:
        return None
    return np.frombuffer(plane, np.uint8, stride * height).reshape(height, stride)[:, :width]
