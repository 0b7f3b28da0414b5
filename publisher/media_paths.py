"""Where a camera's clips and snapshots go: always inside the clips folder, whatever a message says."""

from __future__ import annotations

from pathlib import Path

from maskwatch.core.errors import ContractError
from maskwatch.core.keys import is_camera_id


def media_path(root: Path, camera: str, filename: str) -> Path:
    """``root/<camera>/<filename>``, refused (:class:`ContractError`) unless ``camera`` is a valid camera
    id and the resolved path stays inside ``root``."""
    if not is_camera_id(camera):
        raise ContractError(f"camera id {camera[:80]!r} is not a valid camera id: no clip or snapshot for it")
    path = Path(root) / camera / filename
    if not path.resolve().is_relative_to(Path(root).resolve()) or Path(filename).name != filename:
        raise ContractError(f"media path {path} would leave the clips folder {root}")
    return path
