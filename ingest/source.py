"""Open a camera or file with PyAV and yield decoded video frames."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import av
import av.error

from maskwatch.config.settings import CameraConfig
from maskwatch.core.errors import ErrorKind, SourceError

__all__ = ["DecodedFrame", "SourceError", "classify_error", "iter_frames", "open_options"]


@dataclass(frozen=True)
class DecodedFrame:
    """A decoded frame: the PyAV frame (not yet converted) and its media time in seconds."""

    frame: av.VideoFrame
    time_s: float


def open_options(camera: CameraConfig) -> dict[str, str]:
    """FFmpeg options for the camera's URL scheme, then the user's own ``options``."""
    url = camera.url.get_secret_value().lower()
    options: dict[str, str] = {}
    if url.startswith(("rtsp://", "rtsps://")):
        options["rtsp_transport"] = camera.rtsp_transport
        options["rtsp_flags"] = "prefer_tcp" if camera.rtsp_transport == "tcp" else ""
    elif url.startswith(("http://", "https://")):
        options["reconnect"] = "1"
    options.update(camera.options)
    return {k: v for k, v in options.items() if v}


def classify_error(err: BaseException, camera: CameraConfig) -> SourceError:
    """Turn a PyAV/OS error into a :class:`SourceError` with a kind and a readable message."""
    where = f"camera {camera.id} ({camera.safe_url})"
    live = camera.is_live
    if isinstance(err, SourceError):
        return err
    if isinstance(err, av.error.InvalidDataError):
        return SourceError(
            f"{where}: not a readable video (invalid data)", ErrorKind.INVALID_DATA, retryable=live
        )
    if isinstance(err, av.error.FileNotFoundError | FileNotFoundError):
        return SourceError(f"{where}: no such file", ErrorKind.NOT_FOUND, retryable=live)
    if isinstance(err, av.error.ExitError | av.error.TimeoutError | TimeoutError):
        return SourceError(f"{where}: timed out (no data)", ErrorKind.TIMEOUT)
    if isinstance(err, av.error.ConnectionRefusedError | ConnectionRefusedError):
        return SourceError(f"{where}: connection refused", ErrorKind.REFUSED)
    if isinstance(err, av.error.HTTPError):
        return SourceError(f"{where}: HTTP error: {err}", ErrorKind.HTTP)
    return SourceError(f"{where}: {type(err).__name__}: {err}", ErrorKind.ERROR)


def iter_frames(camera: CameraConfig) -> Iterator[DecodedFrame]:
    """Open the source and yield its video frames until it ends; raises :class:`SourceError`."""
    url = camera.url.get_secret_value()
    if not camera.is_live and "://" not in url:
        if not os.path.exists(url):
            raise SourceError(
                f"camera {camera.id}: no such file: {camera.safe_url}", ErrorKind.NOT_FOUND, retryable=False
            )
        if os.path.getsize(url) == 0:
            raise SourceError(
                f"camera {camera.id}: file is empty: {camera.safe_url}",
                ErrorKind.INVALID_DATA,
                retryable=False,
            )
    try:
        container = av.open(
            url, options=open_options(camera), timeout=(camera.open_timeout_s, camera.stall_timeout_s)
        )
    except Exception as e:  # noqa: BLE001 - every open failure becomes a SourceError
        raise classify_error(e, camera) from e
    try:
        if not container.streams.video:
            raise SourceError(
                f"camera {camera.id}: source has no video stream",
                ErrorKind.NO_VIDEO,
                retryable=camera.is_live,
            )
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = float(stream.average_rate or stream.guessed_rate or 25)
        index = 0
        for frame in container.decode(stream):
            t = frame.time if frame.time is not None else index / rate
            index += 1
            yield DecodedFrame(frame, float(t))
        if index == 0:
            raise SourceError(
                f"camera {camera.id}: no decodable frame in source",
                ErrorKind.INVALID_DATA,
                retryable=camera.is_live,
            )
    except SourceError:
        raise
    except Exception as e:  # noqa: BLE001
        raise classify_error(e, camera) from e
    finally:
        container.close()
