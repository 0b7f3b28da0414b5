"""The detector plugin interface: a batch of BGR frames in, one :class:`Faces` per frame out.

A backend module declares everything about itself once, in a :class:`DetectorSpec` named ``SPEC``:
its ``detector.type`` key, its options model (the ``detector.<key>`` config section), its tuned
thresholds, its evaluation floor, its weight files and its place in the ``auto`` order.
:mod:`maskwatch.models.detectors.registry` collects them.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict

from maskwatch.core.faces import Faces


class WeightsError(FileNotFoundError):
    """A weights file is missing or corrupt; the message names the file and the fix."""


@runtime_checkable
class FaceDetector(Protocol):
    """Finds faces. ``name`` identifies backend and weights in results and logs."""

    name: str

    def detect(self, frames: Sequence[np.ndarray]) -> list[Faces]:
        """Detect faces in each BGR uint8 frame; one unclassified :class:`Faces` per frame, in order."""
        ...


class BackendConfig(BaseModel):
    """A backend's own options (the ``detector.<key>`` section): unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=True)


@dataclass(frozen=True)
class WeightFile:
    """One file a detector loads: its name in the weights folder, sha256 and official download URL."""

    name: str
    sha256: str | None
    url: str


@dataclass(frozen=True)
class DetectorWeights:
    """What a backend loads: files in ``weights_dir`` (one set, or ``alternatives``), or a pip package
    that bundles its weights (``package_file``: a file inside it, ``name`` relative to it, sha256-checked)."""

    description: str
    files: tuple[WeightFile, ...] = ()
    alternatives: tuple[tuple[WeightFile, ...], ...] = ()
    package: str | None = None
    package_file: WeightFile | None = None
    pip: str | None = None

    def package_path(self) -> Path | None:
        """Where ``package_file`` is in the installed package (None: no such file or package)."""
        if not (self.package and self.package_file):
            return None
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            return None
        return Path(next(iter(spec.submodule_search_locations))) / self.package_file.name


@dataclass(frozen=True)
class DetectorSpec:
    """One backend, declared once in its module.

    ``detector`` is called as ``detector(config, weights_dir=..., confidence=..., nms_iou=...)``;
    ``confidence``/``masked_confidence`` are the thresholds tuned on the ``train`` scenes (best face
    F1; masked/bare recall parity), used when the settings leave them unset; ``evaluation_floor`` the
    lowest score kept by ``maskwatch evaluate scenes`` (so AP sees the whole curve); ``auto_rank``
    the place in the ``auto`` order (None: never picked); ``flat_keys`` maps deprecated flat
    ``detector.*`` keys to fields of ``config``.
    """

    key: str
    detector: Callable[..., FaceDetector]
    config: type[BackendConfig]
    confidence: float
    evaluation_floor: float
    weights: DetectorWeights
    masked_confidence: float | None = None
    auto_rank: int | None = None
    flat_keys: Mapping[str, str] = field(default_factory=dict)

    @property
    def section(self) -> str:
        """The name of this backend's config section: ``detector.<section>.*`` (``-`` becomes ``_``)."""
        return self.key.replace("-", "_")


def require_file(path: Path, detector: str) -> Path:
    """Return ``path`` if it is a non-empty file, else raise :class:`WeightsError` naming the fix."""
    if not path.is_file() or path.stat().st_size == 0:
        state = "is empty" if path.is_file() else "does not exist"
        raise WeightsError(
            f"{detector}: weights file {path} {state}; install it with "
            f"`maskwatch models fetch {detector} --from DIR` or set MASKWATCH_DETECTOR__WEIGHTS_DIR"
        )
    return path
