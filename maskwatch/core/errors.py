"""Every error maskwatch raises on purpose, under one base; each carries a kind that is a metric label.

The hierarchy::

    MaskwatchError                 base: ``except MaskwatchError`` catches everything below
    ├── ConfigError                the configuration is invalid (file, environment, command line);
    │                              ``source`` names where from, ``problems`` lists ``path: message``
    ├── ContractError (ValueError) a stream message that does not follow the contract   kind: malformed
    │   └── FrameError             a frame whose image cannot be used (not JPEG/PNG,    kind: undecodable
    │                              does not decode, wrong size)
    ├── SourceError                a camera or file cannot be read; ``retryable`` says  kind: per failure
    │                              whether ingest reconnects (network sources) or gives
    │                              up (a broken file)
    ├── ModelError                 a detector or classifier failed to load or to run    kind: inference_error
    └── ClipError                  a violation clip or snapshot could not be written    kind: per failure

Redis being unreachable is not a maskwatch error: stages catch redis-py's own
``redis.ConnectionError``/``redis.TimeoutError`` (``maskwatch.runtime.redis_conn.REDIS_DOWN``) and
reconnect; anything else (a full disk, a bug) propagates and stops the stage.

:class:`ErrorKind` values are the exact label strings of the metrics that count failures
(``maskwatch_deadletter_total{reason}``, ``maskwatch_camera_errors_total{kind}``,
``maskwatch_clip_errors_total{reason}``): a ``StrEnum`` member *is* its label.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorKind(StrEnum):
    """Why something failed, as exported in metric labels (low cardinality, stable names)."""

    # Generic
    ERROR = "error"
    # Messages dead-lettered by a stage (maskwatch_deadletter_total{reason})
    MALFORMED = "malformed"
    UNDECODABLE = "undecodable"
    INFERENCE_ERROR = "inference_error"
    MAX_DELIVERIES = "max_deliveries"
    FORGED_EOF = "forged_eof"
    # Camera sources (maskwatch_camera_errors_total{kind})
    INVALID_DATA = "invalid_data"
    NOT_FOUND = "not_found"
    TIMEOUT = "timeout"
    REFUSED = "refused"
    HTTP = "http"
    NO_VIDEO = "no_video"
    ENCODE = "encode"
    REDIS = "redis"
    ENDED = "ended"
    # Clips and snapshots (maskwatch_clip_errors_total{reason})
    TOO_LARGE = "too_large"
    WRITE_ERROR = "write_error"
    BACKLOG = "backlog"
    SNAPSHOT = "snapshot"
    INTERNAL = "internal"
    PUBLISHER_STOPPED = "publisher_stopped"


class MaskwatchError(Exception):
    """Base of every maskwatch error; ``kind`` is the metric label it is counted under."""

    kind: ErrorKind = ErrorKind.ERROR

    def __init__(self, message: str = "", kind: ErrorKind | str | None = None) -> None:
        super().__init__(message)
        if kind is not None:
            self.kind = ErrorKind(kind)


class ConfigError(MaskwatchError):
    """The configuration is invalid: ``problems`` lists each as ``path: message`` (values never echoed)."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"invalid configuration ({source}):\n" + "\n".join(f"  {p}" for p in problems))


class ContractError(MaskwatchError, ValueError):
    """A stream message that does not follow the contract (dead-lettered, never retried)."""

    kind = ErrorKind.MALFORMED


class FrameError(ContractError):
    """A frame message whose image cannot be used: unsupported encoding, undecodable, wrong size."""

    kind = ErrorKind.UNDECODABLE


class SourceError(MaskwatchError):
    """The source cannot be read. ``retryable`` is False for broken files (not a video, missing)."""

    def __init__(self, message: str, kind: ErrorKind | str, retryable: bool = True) -> None:
        super().__init__(message, kind)
        self.retryable = retryable


class ModelError(MaskwatchError):
    """A detector or classifier could not be loaded or failed on a batch."""

    kind = ErrorKind.INFERENCE_ERROR


class ClipError(MaskwatchError):
    """A violation clip or snapshot could not be written."""

    kind = ErrorKind.WRITE_ERROR
