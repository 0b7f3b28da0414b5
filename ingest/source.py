"""Open a camera or file with PyAV and yield decoded video frames."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import av
import av.error

from maskwatch.config.cameras import url_problem
from maskwatch.config.settings import CameraConfig
from maskwatch.core.errors import ErrorKind, SourceError
from maskwatch.ingest import metrics

__all__ = [
    "DecodedFrame",
    "FILE_FORMATS",
    "SourceError",
    "SourceRejected",
    "check_source",
    "classify_error",
    "decoder_threads",
    "iter_frames",
    "open_options",
]

log = logging.getLogger(__name__)

FILE_FORMATS = "mov,matroska,avi,mpegts,flv,h264,hevc"
"""Demuxers a file may be read with (FFmpeg ``format_whitelist``): mp4/mov, mkv/webm, avi, MPEG-TS, FLV
and raw H.264/HEVC. Anything else (a text file read by the ``tty`` demuxer, a single JPEG, an image
sequence, a playlist of local files) is refused as not a video."""
NETWORK_FORMATS = FILE_FORMATS + ",rtsp,sdp,rtp,hls,live_flv,mpjpeg,aac,mp3"
"""Demuxers a network source may use: the files' ones plus RTSP/RTP, HLS (and its audio renditions),
RTMP's live FLV and MJPEG over HTTP."""
_PROTOCOLS = {
    "rtsp": "rtp,srtp,udp,tcp,tls",
    "rtsps": "rtp,srtp,udp,tcp,tls",
    "http": "http,https,tcp,tls,crypto,hls,httpproxy",
    "https": "http,https,tcp,tls,crypto,hls,httpproxy",
    "rtmp": "rtmp,rtmps,rtmpt,rtmpts,tcp,tls",
    "udp": "udp,rtp",
    "tcp": "tcp",
    "srt": "srt",
    "file": "file",
}
"""FFmpeg ``protocol_whitelist`` per URL scheme; local paths get ``file`` only (so an HLS playlist over
HTTP can never make FFmpeg read a local file, and a path can never name ``concat:`` or ``subfile,``)."""


class SourceRejected(SourceError):
    """The source is refused for good, before or at open: ``reason`` is ``scheme``, ``port`` or ``format``
    (``maskwatch_camera_rejected_total{reason}``). Never retried."""

    def __init__(self, message: str, kind: ErrorKind, reason: str) -> None:
        super().__init__(message, kind, retryable=False)
        self.reason = reason


@dataclass(frozen=True)
class DecodedFrame:
    """A decoded frame: the PyAV frame (not yet converted) and its media time in seconds."""

    frame: av.VideoFrame
    time_s: float


def _scheme(camera: CameraConfig) -> str:
    """The URL's scheme in lower case (``file`` for a local path)."""
    url = camera.url.get_secret_value()
    return url.split("://", 1)[0].lower() if "://" in url else "file"


def open_options(camera: CameraConfig) -> dict[str, str]:
    """FFmpeg options for the camera's URL scheme (transport, format and protocol whitelists), then the
    user's own ``options`` (which may widen a whitelist on purpose)."""
    scheme = _scheme(camera)
    options: dict[str, str] = {
        "format_whitelist": FILE_FORMATS if scheme == "file" else NETWORK_FORMATS,
        "protocol_whitelist": _PROTOCOLS.get(scheme, "file"),
    }
    if scheme in ("rtsp", "rtsps"):
        options["rtsp_transport"] = camera.rtsp_transport
        options["rtsp_flags"] = "prefer_tcp" if camera.rtsp_transport == "tcp" else ""
    elif scheme in ("http", "https"):
        options["reconnect"] = "1"
    options.update(camera.options)
    return {k: v for k, v in options.items() if v}


def check_source(camera: CameraConfig) -> None:
    """Raise :class:`SourceRejected` when the URL can never be opened (scheme, port), or when a local
    file is missing or empty; settings validation refuses the URL cases already, this is the reader's
    own guard."""
    url = camera.url.get_secret_value()
    problem = url_problem(url)
    if problem:
        reason = "scheme" if problem.startswith("unsupported URL scheme") else "port"
        raise SourceRejected(f"camera {camera.id}: {problem}", ErrorKind.ERROR, reason)
    if "://" not in url:  # a missing or empty file fails for good, unless it is declared a live source
        if not os.path.exists(url):
            raise SourceError(
                f"camera {camera.id}: no such file: {camera.safe_url}",
                ErrorKind.NOT_FOUND,
                retryable=camera.is_live,
            )
        if os.path.getsize(url) == 0:
            raise SourceError(
                f"camera {camera.id}: file is empty: {camera.safe_url}",
                ErrorKind.INVALID_DATA,
                retryable=camera.is_live,
            )


def classify_error(err: BaseException, camera: CameraConfig, opening_s: float | None = None) -> SourceError:
    """Turn a PyAV/OS error into a :class:`SourceError` with a kind and a readable message.

    ``opening_s``: how long ``av.open`` ran before failing, when it was the open that failed; a network
    open that gives up after ``open_timeout_s`` is a timeout whatever FFmpeg calls it (RTSP reports an
    interrupted DESCRIBE as invalid data)."""
    where = f"camera {camera.id} ({camera.safe_url})"
    live = camera.is_live
    network = _scheme(camera) != "file"
    if isinstance(err, SourceError):
        return err
    if isinstance(err, av.error.ExitError | av.error.TimeoutError | TimeoutError) or (
        network
        and opening_s is not None
        and opening_s >= 0.9 * camera.open_timeout_s
        and isinstance(err, av.error.FFmpegError)
    ):
        if opening_s is not None:
            return SourceError(
                f"{where}: timed out opening: no answer within open_timeout_s={camera.open_timeout_s:g}s",
                ErrorKind.TIMEOUT,
            )
        return SourceError(f"{where}: timed out (no data)", ErrorKind.TIMEOUT)
    if isinstance(err, av.error.InvalidDataError):
        return SourceError(
            f"{where}: not a readable video (invalid data)", ErrorKind.INVALID_DATA, retryable=live
        )
    if isinstance(err, av.error.ArgumentError) and not network and opening_s is not None:
        hint = " (or an option in cameras[].options is invalid)" if camera.options else ""
        return SourceRejected(
            f"{where}: not a video in a supported container (mp4/mov, mkv/webm, avi, MPEG-TS, FLV, "
            f"raw H.264/HEVC){hint}",
            ErrorKind.INVALID_DATA,
            "format",
        )
    if isinstance(err, av.error.FileNotFoundError | FileNotFoundError):
        return SourceError(f"{where}: no such file", ErrorKind.NOT_FOUND, retryable=live)
    if isinstance(err, av.error.ConnectionRefusedError | ConnectionRefusedError):
        return SourceError(f"{where}: connection refused", ErrorKind.REFUSED)
    if isinstance(err, av.error.HTTPError):
        return SourceError(f"{where}: HTTP error: {err}", ErrorKind.HTTP)
    return SourceError(f"{where}: {type(err).__name__}: {err}", ErrorKind.ERROR)


def decoder_threads(camera: CameraConfig) -> tuple[str, int]:
    """PyAV ``(thread_type, thread_count)`` of the camera's decoder, from ``decode_threads``: unset is one
    thread for a live source (frame threads cost a quarter to a half more CPU per frame, and hold frames
    back while they fill) and FFmpeg's automatic frame + slice threads for a file (read through
    fastest); 0 is automatic, N is N threads (1: no threading at all)."""
    threads = camera.decode_threads
    if threads is None:
        threads = 1 if camera.is_live else 0
    return ("NONE", 1) if threads == 1 else ("AUTO", threads)


def iter_frames(camera: CameraConfig, start_after: float | None = None) -> Iterator[DecodedFrame]:
    """Open the source and yield its video frames until it ends; raises :class:`SourceError`.

    ``start_after``: media time (seconds) of the last frame already sent; the file is sought to it and
    only later frames are yielded (a resumed file). A network source that spends ``stall_timeout_s``
    waiting for data without a decoded frame (however many reads that takes) is stalled: TIMEOUT.
    Counts each successful open in ``maskwatch_camera_opens_total``. Decodes with
    :func:`decoder_threads`.
    """
    check_source(camera)
    url = camera.url.get_secret_value()
    network = _scheme(camera) != "file"
    started = time.monotonic()
    try:
        container = av.open(
            url, options=open_options(camera), timeout=(camera.open_timeout_s, camera.stall_timeout_s)
        )
    except Exception as e:  # noqa: BLE001 - every open failure becomes a SourceError
        raise classify_error(e, camera, opening_s=time.monotonic() - started) from e
    metrics.OPENS.labels(camera.id).inc()
    try:
        if not container.streams.video:
            raise SourceError(
                f"camera {camera.id}: source has no video stream",
                ErrorKind.NO_VIDEO,
                retryable=camera.is_live,
            )
        stream = container.streams.video[0]
        codec = stream.codec_context
        codec.thread_type, codec.thread_count = decoder_threads(camera)
        rate = float(stream.average_rate or stream.guessed_rate or 25)
        if start_after is not None:
            _seek(container, stream, start_after, camera)
        index = 0
        waited = 0.0  # time spent waiting on the source since the last decoded frame
        packets = container.demux()  # every stream: a trickle of audio or data does not hide a stall
        while True:
            t0 = time.monotonic()
            packet = next(packets, None)
            waited += time.monotonic() - t0
            if packet is None:
                break
            if network and waited >= camera.stall_timeout_s:
                raise SourceError(
                    f"camera {camera.id} ({camera.safe_url}): timed out: stalled, no frame for {waited:.1f}s "
                    f"(stall_timeout_s={camera.stall_timeout_s:g})",
                    ErrorKind.TIMEOUT,
                )
            if packet.stream.index != stream.index:
                continue
            for frame in stream.decode(packet):
                waited = 0.0
                if index == 0:
                    log.debug(
                        "camera %s: decoding %s with %d thread(s) (%s)",
                        camera.id,
                        codec.name,
                        codec.thread_count,
                        codec.thread_type.name,
                    )
                t = float(frame.time if frame.time is not None else index / rate)
                index += 1
                if start_after is not None and t <= start_after + 1e-6:
                    continue
                yield DecodedFrame(frame, t)
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


def _seek(
    container: av.container.InputContainer, stream: av.VideoStream, after: float, camera: CameraConfig
) -> None:
    """Seek to the keyframe at or before media time ``after``; on failure decode from the start (the
    caller skips frames up to ``after`` either way)."""
    if stream.time_base is None:
        return
    try:
        container.seek(int(after / stream.time_base), stream=stream, backward=True)
    except av.error.FFmpegError as e:
        log.warning("camera %s: cannot seek to %.3fs (%s); decoding from the start", camera.id, after, e)
