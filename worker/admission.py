"""Which live frames of a batch the worker searches when it cannot search them all in time.

A live frame is worth searching only while its event can still arrive within ``latency_target_s`` of
its capture. :class:`SearchBudget` keeps a running estimate of what one searched frame costs and, each
batch, admits live frames while the batch would end within the target of every admitted frame's capture
and within half the target overall (the next batch's frames wait for this one). Cameras searched least
recently go first, so under overload every camera gets its turn; frames that plan no search (nothing
moved) cost nothing and always pass; a file's frames always pass (a file is never skipped). The frames
left out still get their event (``detection: "skipped"``); at least one frame is searched per batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from maskwatch.core.contracts import FrameMessage

COST_SMOOTHING = 0.3
"""Weight of each batch's measurement in the running cost of a searched frame."""
FIRST_COST_S = 0.05
"""The cost assumed before anything was measured (a 720p frame on a CPU, about)."""


@dataclass
class SearchBudget:
    """The running cost of a searched frame and when each camera was last searched (this worker's view)."""

    latency_target_s: float
    """0: every frame is searched."""
    cost_s: float = FIRST_COST_S
    clock: Callable[[], float] = time.time
    _searched_at: dict[str, float] = field(default_factory=dict)

    def admit(
        self, frames: Sequence[FrameMessage], searches: Callable[[FrameMessage], bool]
    ) -> tuple[list[FrameMessage], list[FrameMessage]]:
        """``(search, late)``: the frames to search now and the live frames left out (input order kept in
        each). ``searches(frame)``: whether the frame's plan calls the detector at all."""
        target = self.latency_target_s
        if target <= 0 or not frames:
            return list(frames), []
        now = self.clock()
        chosen: set[int] = set()
        costly = []
        ends = now
        earliest = float("inf")  # capture time of the oldest live frame admitted
        for i, f in enumerate(frames):
            if f.live and searches(f):
                costly.append(i)
                continue
            chosen.add(i)
            if f.live:
                earliest = min(earliest, f.capture_ts)
            elif searches(f):
                ends += self.cost_s
        costly.sort(key=lambda i: (self._searched_at.get(frames[i].camera, 0.0), frames[i].capture_ts))
        anything = ends > now
        for i in costly:
            end, oldest = ends + self.cost_s, min(earliest, frames[i].capture_ts)
            if anything and (end - oldest > target or end - now > target / 2):
                continue
            chosen.add(i)
            ends, earliest, anything = end, oldest, True
        search = [f for i, f in enumerate(frames) if i in chosen]
        for f in search:
            if f.live:
                self._searched_at[f.camera] = now
        return search, [f for i, f in enumerate(frames) if i not in chosen]

    def observe(self, seconds: float, searched: int) -> None:
        """A batch searched ``searched`` frames (those that called the detector) in ``seconds``."""
        if searched > 0:
            self.cost_s += COST_SMOOTHING * (seconds / searched - self.cost_s)
