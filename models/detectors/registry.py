"""Every detector backend, by its ``detector.type`` key: each module's ``SPEC``, collected once.

Adding a backend: a module here with its detector class, options model and ``SPEC``
(:class:`~maskwatch.models.detectors.base.DetectorSpec`), and one entry below. Config
(``detector.type`` and the ``detector.<key>`` sections), the factory, the CLI choices,
``maskwatch models list|fetch`` and calibration fitting all read this table.
"""

from __future__ import annotations

from maskwatch.models.detectors import blazeface, mtcnn, opencv_res10, retinaface, yunet
from maskwatch.models.detectors.base import DetectorSpec

DETECTORS: dict[str, DetectorSpec] = {
    spec.key: spec for spec in (retinaface.SPEC, yunet.SPEC, mtcnn.SPEC, blazeface.SPEC, opencv_res10.SPEC)
}
AUTO = "auto"
AUTO_ORDER: tuple[str, ...] = tuple(
    s.key
    for s in sorted((s for s in DETECTORS.values() if s.auto_rank is not None), key=lambda s: s.auto_rank)
)
"""What ``type: auto`` tries, best first (the first whose weights are installed; the last otherwise)."""


def get(key: str) -> DetectorSpec:
    """The backend ``key``; ``ValueError`` naming the known ones otherwise."""
    try:
        return DETECTORS[key]
    except KeyError:
        raise ValueError(f"unknown detector {key!r}; known: {', '.join(DETECTORS)}") from None


def with_weight_files() -> tuple[str, ...]:
    """Backends whose weights are files in ``weights_dir`` (what ``maskwatch models fetch`` installs)."""
    return tuple(k for k, s in DETECTORS.items() if s.weights.files)
