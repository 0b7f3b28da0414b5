"""Where maskwatch keeps its files (detector weights, clips and snapshots), decided in one place.

The data directory is, first found:

1. ``data_dir`` in the config, or ``MASKWATCH_DATA_DIR`` in the environment;
2. ``/var/lib/maskwatch`` when running as root, or when it exists and this user may write to it;
3. ``$XDG_DATA_HOME/maskwatch`` (``~/.local/share/maskwatch`` when ``XDG_DATA_HOME`` is unset or relative).

Defaults derive from it: ``detector.weights_dir`` = ``<data_dir>/weights``, ``clips.dir`` =
``<data_dir>/clips``. Never the working directory, never ``../shared``. Nothing is created here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

DATA_DIR_ENV = "MASKWATCH_DATA_DIR"
SYSTEM_DATA_DIR = Path("/var/lib/maskwatch")


def default_data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The data directory when the config names none (see the module docstring); always absolute."""
    env = os.environ if environ is None else environ
    if configured := env.get(DATA_DIR_ENV, "").strip():
        return Path(configured).expanduser().absolute()
    is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    if is_root or (SYSTEM_DATA_DIR.is_dir() and os.access(SYSTEM_DATA_DIR, os.W_OK | os.X_OK)):
        return SYSTEM_DATA_DIR
    xdg = env.get("XDG_DATA_HOME", "").strip()
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share"
    return base / "maskwatch"


def default_weights_dir() -> Path:
    """``<data_dir>/weights``: where ``maskwatch models fetch`` puts detector weights."""
    return default_data_dir() / "weights"


def default_clips_dir() -> Path:
    """``<data_dir>/clips``: violation clips and snapshots, one sub-folder per camera."""
    return default_data_dir() / "clips"


def resolve_path(path: Path | str, base: Path | None = None) -> Path:
    """``path`` made absolute once: ``~`` expanded, a relative path taken against ``base`` (else the
    working directory)."""
    p = Path(path).expanduser()
    if p.is_absolute():
        return p
    return ((base or Path.cwd()) / p).absolute()
