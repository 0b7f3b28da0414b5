"""Logging set-up: one format, credentials redacted from every record, native libraries' noise off.

TensorFlow prints a dozen lines when it loads (oneDNN, "could not find cuda drivers", a CUDA "error" on a
machine without a GPU, the TFLite delegate), partly before its own log level applies (absl's "before
absl::InitializeLog()" lines ignore ``TF_CPP_MIN_LOG_LEVEL``). Unless the log level is DEBUG:
``TF_CPP_MIN_LOG_LEVEL=3`` (when not set already), Python's ``absl`` and ``tensorflow`` loggers at
WARNING, and :func:`quiet_native_stderr` around what prints the rest (its output is shown when the
block fails).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator

from maskwatch.core.redaction import RedactingFilter

NOISY_LOGGERS = ("absl", "tensorflow", "h5py")
_quiet = {"native": False}


def setup_logging(level: str = "INFO") -> None:
    """Configure the root logger once; every handler redacts URL credentials. Below DEBUG, TensorFlow's
    start-up noise is silenced (set it before TensorFlow is imported)."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    quiet = level.upper() != "DEBUG"
    _quiet["native"] = quiet
    if quiet:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING if quiet else logging.NOTSET)


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Hold what native code writes to file descriptor 2 during the block (when logging is not DEBUG);
    it is written out after all if the block raises. Python's own logging and ``sys.stderr`` keep going
    to the real stderr meanwhile."""
    if not _quiet["native"]:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    real = open(saved, "w", closefd=False, buffering=1, encoding="utf-8", errors="replace")  # noqa: SIM115
    python_stderr = sys.stderr
    handlers = [
        h
        for h in logging.getLogger().handlers
        if isinstance(h, logging.StreamHandler) and h.stream is python_stderr
    ]
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        sys.stderr = real
        for h in handlers:
            h.setStream(real)
        failed = False
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            real.flush()
            os.dup2(saved, 2)
            sys.stderr = python_stderr
            for h in handlers:
                h.setStream(python_stderr)
            real.close()
            os.close(saved)
            if failed:
                held.seek(0)
                os.write(2, held.read())


def import_tensorflow_quietly() -> None:
    """Import TensorFlow (if installed) under :func:`quiet_native_stderr`, so its load-time lines stay out
    of the log; later imports find it loaded. A missing TensorFlow is left to whoever needs it."""
    if "tensorflow" in sys.modules or not _quiet["native"]:
        return
    with contextlib.suppress(ImportError), quiet_native_stderr():
        import tensorflow  # noqa: F401
