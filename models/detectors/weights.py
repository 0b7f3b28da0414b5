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

from maskwatch.models.detectors.base import DetectorWeights, WeightsError
from maskwatch.models.detectors.registry import get


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


def info(name: str) -> DetectorWeights:
    """The weights of detector ``name`` (its spec in the registry)."""
    return get(name).weights


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
    return info(name).package_path()


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
