"""A track's class, decided by agreement over its recent observations (K of the last N)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from maskwatch.config.violations import ViolationSettings


@dataclass(frozen=True)
class Decision:
    """The decided class of a track and the mean probability of its agreeing observations."""

    label: str
    confidence: float
    votes: int


@dataclass(frozen=True)
class AgreementRule:
    """Decide class ``c`` when at least ``min_votes`` of the last ``window`` observations have ``c`` as
    their most probable class and the mean probability of ``c`` over those observations is at least
    ``min_confidence``. One frame never decides (unless configured with ``min_votes=1``)."""

    window: int
    min_votes: int
    min_confidence: float

    @classmethod
    def from_settings(cls, violations: ViolationSettings) -> AgreementRule:
        """The rule of the ``violations`` settings (``window_frames``, ``min_votes``, ``min_confidence``)."""
        return cls(violations.window_frames, violations.min_votes, violations.min_confidence)

    def __post_init__(self) -> None:
        if not 1 <= self.min_votes <= self.window:
            raise ValueError(
                f"need 1 <= min_votes <= window, got min_votes={self.min_votes}, window={self.window}"
            )

    def decide(self, history: Sequence[np.ndarray], classes: Sequence[str]) -> Decision | None:
        """The decision over the last ``window`` probability rows of ``history``, or None."""
        rows = np.asarray(list(history)[-self.window :], dtype=np.float64).reshape(-1, len(classes))
        if len(rows) < self.min_votes:
            return None
        winners = rows.argmax(axis=1)
        best: Decision | None = None
        for c, name in enumerate(classes):
            agreeing = rows[winners == c, c]
            if len(agreeing) < self.min_votes:
                continue
            mean = float(agreeing.mean())
            if mean < self.min_confidence:
                continue
            candidate = Decision(name, mean, int(len(agreeing)))
            if best is None or (candidate.votes, candidate.confidence) > (best.votes, best.confidence):
                best = candidate
        return best
