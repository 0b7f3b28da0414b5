"""Which live frames of a batch the worker searches when it cannot search them all in time.

A live frame is worth searching only while its event can still arrive within ``latency_target_s`` of
its capture. :class:`SearchBudget` keeps a running estimate of what search work costs and, each
batch, admits live frames while the batch (search and the running overhead of a batch) would end within
the target of every admitted frame's capture and within :data:`BATCH_SHARE` of the target overall (the
next batch's frames wait for this one). Cameras searched least
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
BATCH_SHARE = 0.2
"""A batch may take at most this share of the target: a frame read now waited for the batch before it,
and search work takes longer than its running cost at times (a busy machine). Measured with 8 live
cameras on 2 cores (benchmarks/pipeline.py): 0.15 gave p99 0.50 s, 0.25 p99 0.78 s with 30 % more
frames searched."""
FIRST_COST_S = 0.01
"""Seconds per unit of search work assumed before anything was measured (a 320 px region on a CPU, about)."""


@dataclass
class SearchBudget:
    """The running cost of search work and when each camera was last searched (this worker's view).

    Work is counted in units of one ``region_size`` square (:meth:`BatchInference.search_units`): a full
    720p frame is about nine, a frame with two small regions two, a frame that searches nothing zero."""

    latency_target_s: float
    """0: every frame is searched."""
    cost_s: float = FIRST_COST_S
    """Running seconds per unit of search work."""
    overhead_s: float = 0.0
    """Running time a batch spends outside the search (reads, decoding messages, writes, acks)."""
    clock: Callable[[], float] = time.time
    _searched_at: dict[str, float] = field(default_factory=dict)

    def admit(
        self, frames: Sequence[FrameMessage], units: Callable[[FrameMessage], float]
    ) -> tuple[list[FrameMessage], list[FrameMessage]]:
        """``(search, late)``: the frames to search now and the live frames left out (input order kept in
        each). ``units(frame)``: the search work of the frame's plan (0: no detector call)."""
        target = self.latency_target_s
        if target <= 0 or not frames:
            return list(frames), []
        now = self.clock()
        work = [units(f) for f in frames]
        chosen: set[int] = set()
        costly = []
        ends = now + self.overhead_s
        earliest = float("inf")  # capture time of the oldest live frame admitted
        for i, f in enumerate(frames):
            if f.live and work[i] > 0:
                costly.append(i)
                continue
            chosen.add(i)
            ends += work[i] * self.cost_s
            if f.live:
                earliest = min(earliest, f.capture_ts)
        costly.sort(key=lambda i: (self._searched_at.get(frames[i].camera, 0.0), frames[i].capture_ts))
        anything = any(work[i] > 0 for i in chosen)
        for i in costly:
            end, oldest = ends + work[i] * self.cost_s, min(earliest, frames[i].capture_ts)
            if anything and (end - oldest > target or end - now > target * BATCH_SHARE):
                continue
            chosen.add(i)
            ends, earliest, anything = end, oldest, True
        search = [f for i, f in enumerate(frames) if i in chosen]
        for f in search:
            if f.live:
                self._searched_at[f.camera] = now
        return search, [f for i, f in enumerate(frames) if i not in chosen]

    def observe(self, seconds: float, units: float, overhead_s: float | None = None) -> None:
        """A batch did ``units`` of search work in ``seconds`` and spent ``overhead_s`` on everything else."""
        if units > 0:
            self.cost_s += COST_SMOOTHING * (seconds / units - self.cost_s)
        if overhead_s is not None:
            self.overhead_s += COST_SMOOTHING * (max(0.0, overhead_s) - self.overhead_s)
