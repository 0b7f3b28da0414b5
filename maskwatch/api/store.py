"""What the API reads and writes in Redis: violations (folded with their clip documents), reviews, cameras.

- Violations: the publisher's stream ``<prefix>violations`` (field ``event``), read newest first with
  XREVRANGE. A ``clip_ready`` / ``clip_failed`` document is published after its violation (after the
  post-roll), so a newest-first scan meets it *before* the violation and folds it in; for a page that
  starts below the top (a cursor) the clip documents newer than the cursor are looked up with one bounded
  forward XRANGE. Violation documents never change, so they are cached by id; a clip state is cached once
  final (``ready`` / ``failed``).
- Reviews: hash ``<prefix>reviews``, field = violation id, value = JSON ``{"status", "note", "ts"}``; it
  lives in Redis, so it survives a restart of the API (and of Redis, with Redis persistence).
- Cameras: set ``<prefix>cameras`` and hashes ``<prefix>camera:<id>`` (the ingest's state), plus rates and
  compliance computed from the frame events of ``<prefix>events`` (face observations, the
  ``basis="faces"`` of ``maskwatch_compliance_ratio``).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from maskwatch.core.keys import Keys

ID_PATTERN = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
"""Every document id is a uuid (uuid5 of camera and sequence), lower-case as ``str(uuid)`` writes it."""
CURSOR_PATTERN = re.compile(r"^\d{1,20}-\d{1,20}$")
"""A cursor is the stream entry id of the last violation of the previous page."""
REVIEW_STATUSES = ("reviewed", "false_alarm")
_SCAN_CHUNK = 500
_CACHE_SIZE = 5000
_CLIP_LOOKAHEAD_S = 600.0  # beyond the longest clip: how far past a violation its clip document may lie


def parse_time(value: str | None) -> float | None:
    """Unix seconds from ``1732464000.5`` or ISO 8601 (``2025-11-24T16:00:00Z``, naive = UTC); None stays."""
    if value is None or value == "":
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not a time: {value!r} (Unix seconds or ISO 8601)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _stream_ms(entry_id: bytes | str) -> int:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(text.split("-", 1)[0])


@dataclass
class Violation:
    """A violation document, the stream entry it came in, and its clip document when one has come."""

    entry_id: str
    doc: dict[str, Any]
    clip: dict[str, Any] | None = None

    @property
    def id(self) -> str:
        return str(self.doc["id"])

    @property
    def clip_state(self) -> str:
        """``ready``, ``failed``, ``pending`` (clip document still to come) or ``none`` (no clip recorded)."""
        if self.clip is not None:
            return "ready" if self.clip.get("type") == "clip_ready" else "failed"
        return "pending" if self.doc.get("clip") else "none"


@dataclass
class Page:
    items: list[Violation]
    next_cursor: str | None


@dataclass
class _Cache:
    """Violation documents by id (immutable) and final clip documents by violation id, LRU-bounded."""

    violations: OrderedDict[str, Violation] = field(default_factory=OrderedDict)
    clips: OrderedDict[str, dict[str, Any]] = field(default_factory=OrderedDict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def put(self, v: Violation) -> None:
        with self.lock:
            self.violations[v.id] = Violation(v.entry_id, v.doc)
            self.violations.move_to_end(v.id)
            if v.clip is not None:
                self.clips[v.id] = v.clip
                self.clips.move_to_end(v.id)
            for store in (self.violations, self.clips):
                while len(store) > _CACHE_SIZE:
                    store.popitem(last=False)

    def get(self, violation_id: str) -> Violation | None:
        with self.lock:
            v = self.violations.get(violation_id)
            if v is None:
                return None
            return Violation(v.entry_id, v.doc, self.clips.get(violation_id))


class ViolationStore:
    """Reads violations from the publisher's stream and keeps reviews; thread-safe (one Redis pool)."""

    def __init__(self, client: redis.Redis, keys: Keys, clips_dir: Path) -> None:
        self.client, self.keys = client, keys
        self.clips_dir = Path(clips_dir).resolve()
        self.reviews_key = f"{keys.prefix}reviews"
        self._cache = _Cache()

    # -- reading the stream ------------------------------------------------------------------------

    def _reverse(self, start: str = "+", stop: str = "-") -> Iterator[tuple[str, dict[str, Any]]]:
        """Every document from ``start`` down to ``stop``, newest first, in chunks."""
        upper = start
        while True:
            entries = self.client.xrevrange(self.keys.violations, max=upper, min=stop, count=_SCAN_CHUNK)
            if not entries:
                return
            for entry_id, fields in entries:
                doc = _decode(fields)
                if doc is not None:
                    yield entry_id.decode(), doc
            if len(entries) < _SCAN_CHUNK:
                return
            upper = "(" + entries[-1][0].decode()

    def _forward(self, start: str, stop: str) -> Iterator[dict[str, Any]]:
        lower = start
        while True:
            entries = self.client.xrange(self.keys.violations, min=lower, max=stop, count=_SCAN_CHUNK)
            for _entry_id, fields in entries:
                doc = _decode(fields)
                if doc is not None:
                    yield doc
            if len(entries) < _SCAN_CHUNK:
                return
            lower = "(" + entries[-1][0].decode()

    def page(
        self,
        *,
        camera: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        """Violations newest first (by publication), filtered by camera and ``decided_ts`` in
        ``[since, until]``; ``cursor`` continues after the last item of the previous page."""
        clips: dict[str, dict[str, Any]] = {}
        items: list[Violation] = []
        more = False
        for entry_id, doc in self._reverse("(" + cursor if cursor else "+"):
            kind = doc.get("type")
            if kind in ("clip_ready", "clip_failed"):
                clips.setdefault(str(doc.get("violation_id")), doc)
                continue
            if kind != "violation":
                continue
            if camera is not None and doc.get("camera") != camera:
                continue
            decided = float(doc.get("decided_ts") or 0.0)
            if until is not None and decided > until:
                continue
            if since is not None and decided < since:
                continue
            if len(items) == limit:
                more = True
                break
            items.append(Violation(entry_id, doc, clips.get(str(doc["id"]))))
        if cursor:
            self._fold_newer(items, cursor)
        for v in items:
            if v.clip is None:
                cached = self._cache.get(v.id)
                v.clip = cached.clip if cached else None
            self._cache.put(v)
        return Page(items, items[-1].entry_id if more and items else None)

    def _fold_newer(self, items: list[Violation], cursor: str) -> None:
        """Clip documents of ``items`` published after ``cursor`` (the page below it did not meet them)."""
        waiting = {
            v.id: v for v in items if v.clip is None and v.doc.get("clip") and not self._cached_clip(v)
        }
        if not waiting:
            return
        newest = max(_stream_ms(v.entry_id) for v in waiting.values())
        stop = str(newest + int(_CLIP_LOOKAHEAD_S * 1000))
        for doc in self._forward("(" + cursor, stop):
            target = waiting.get(str(doc.get("violation_id")))
            if (
                target is not None
                and doc.get("type") in ("clip_ready", "clip_failed")
                and target.clip is None
            ):
                target.clip = doc
                if all(v.clip is not None for v in waiting.values()):
                    return

    def _cached_clip(self, v: Violation) -> bool:
        cached = self._cache.get(v.id)
        if cached and cached.clip is not None:
            v.clip = cached.clip
            return True
        return False

    def get(self, violation_id: str) -> Violation | None:
        """The violation with this id, with its clip document when one has been published; None if unknown
        (or trimmed from the stream)."""
        cached = self._cache.get(violation_id)
        if cached is not None and cached.clip is not None:
            return cached
        clip: dict[str, Any] | None = None
        for entry_id, doc in self._reverse():
            kind = doc.get("type")
            if kind in ("clip_ready", "clip_failed") and doc.get("violation_id") == violation_id:
                clip = clip or doc
            elif kind == "violation" and doc.get("id") == violation_id:
                found = Violation(entry_id, doc, clip)
                self._cache.put(found)
                return found
        if cached is not None:  # trimmed from the stream since it was cached
            return Violation(cached.entry_id, cached.doc, clip)
        return None

    # -- files ------------------------------------------------------------------------------------------

    def media_path(self, value: object) -> Path | None:
        """``value`` (a document's path) resolved, if it is a regular file inside ``clips.dir``; else None."""
        if not isinstance(value, str) or not value:
            return None
        try:
            path = Path(value).resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        if not path.is_relative_to(self.clips_dir) or not path.is_file():
            return None
        return path

    # -- reviews --------------------------------------------------------------------------------------

    def review(self, violation_id: str) -> dict[str, Any] | None:
        raw = self.client.hget(self.reviews_key, violation_id)
        return json.loads(raw) if raw else None

    def reviews(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        ids = list(ids)
        if not ids:
            return {}
        values = self.client.hmget(self.reviews_key, ids)
        return {i: json.loads(v) for i, v in zip(ids, values, strict=True) if v}

    def set_review(self, violation_id: str, status: str, note: str | None) -> dict[str, Any]:
        review = {"status": status, "note": note, "ts": round(time.time(), 3)}
        self.client.hset(self.reviews_key, violation_id, json.dumps(review))
        return review


def _decode(fields: dict[bytes, bytes]) -> dict[str, Any] | None:
    raw = fields.get(b"event")
    if raw is None:
        return None
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) and "id" in doc else None


# -- cameras ---------------------------------------------------------------------------------------------


@dataclass
class _Window:
    faces: int = 0
    compliant: int = 0
    frames: int = 0
    first_ts: float | None = None
    last_ts: float | None = None
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, event: dict[str, Any]) -> None:
        self.frames += 1
        ts = float(event.get("capture_ts") or 0.0)
        self.first_ts = ts if self.first_ts is None else min(self.first_ts, ts)
        self.last_ts = ts if self.last_ts is None else max(self.last_ts, ts)
        for label, n in (event.get("counts") or {}).items():
            if not n:
                continue
            self.counts[label] = self.counts.get(label, 0) + int(n)
            self.faces += int(n)
            if label == "with_mask":
                self.compliant += int(n)

    def ratio(self) -> float | None:
        return round(self.compliant / self.faces, 4) if self.faces else None


class CameraStats:
    """Per-camera state, frame rate and compliance; the events stream scan is cached ``cache_s`` seconds."""

    FPS_WINDOW_S = 10.0

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        *,
        window_s: float,
        now_s: float,
        cache_s: float,
    ) -> None:
        self.client, self.keys = client, keys
        self.window_s, self.now_s, self.cache_s = window_s, now_s, cache_s
        self._lock = threading.Lock()
        self._cached: tuple[float, list[dict[str, Any]]] | None = None

    def cameras(self) -> list[dict[str, Any]]:
        with self._lock:
            if self._cached is not None and time.monotonic() - self._cached[0] < self.cache_s:
                return self._cached[1]
            result = self._compute()
            self._cached = (time.monotonic(), result)
            return result

    def _compute(self) -> list[dict[str, Any]]:
        now = time.time()
        ids = sorted(m.decode() for m in self.client.smembers(self.keys.cameras))
        hour: dict[str, _Window] = {}
        recent: dict[str, _Window] = {}
        rate: dict[str, int] = {}
        lower_ms = int((now - self.window_s) * 1000)
        upper = "+"
        while True:
            entries = self.client.xrevrange(self.keys.events, max=upper, min=str(lower_ms), count=_SCAN_CHUNK)
            for entry_id, fields in entries:
                ms = _stream_ms(entry_id)
                event = _decode(fields)
                if event is None or event.get("type") != "frame":
                    continue
                cam = str(event.get("camera"))
                hour.setdefault(cam, _Window()).add(event)
                if ms >= (now - self.now_s) * 1000:
                    recent.setdefault(cam, _Window()).add(event)
                if ms >= (now - self.FPS_WINDOW_S) * 1000:
                    rate[cam] = rate.get(cam, 0) + 1
            if len(entries) < _SCAN_CHUNK:
                break
            upper = "(" + entries[-1][0].decode()
        # The window is complete unless the stream was trimmed inside it (events_max_len): Redis 7 says
        # up to which entry it deleted; the events after it are all there.
        covered_s = self.window_s
        deleted_ms = self._max_deleted_ms()
        if deleted_ms is not None and deleted_ms >= lower_ms:
            covered_s = round(max(0.0, now - deleted_ms / 1000), 1)
        violations = self._violations_since(now - self.window_s)
        pipe = self.client.pipeline(transaction=False)
        for cam in ids:
            pipe.hgetall(self.keys.camera_state(cam))
        states = pipe.execute() if ids else []
        out = []
        for cam, state in zip(ids, states, strict=True):
            fields = {k.decode(): v.decode() for k, v in state.items()}
            h, r = hour.get(cam, _Window()), recent.get(cam, _Window())
            out.append(
                {
                    "id": cam,
                    "state": fields.get("state"),
                    "state_since": _float(fields.get("since")),
                    "reconnects": _int(fields.get("reconnects")),
                    "last_seq": _int(fields.get("last_seq")),
                    "fps": round(rate.get(cam, 0) / self.FPS_WINDOW_S, 2),
                    "last_frame_ts": h.last_ts,
                    "compliance_now": r.ratio(),
                    "faces_now": r.faces,
                    "compliance_window": h.ratio(),
                    "faces_window": h.faces,
                    "counts_window": h.counts,
                    "frames_window": h.frames,
                    "violations_window": violations.get(cam, 0),
                    "window_s": self.window_s,
                    "window_covered_s": covered_s,
                }
            )
        return out

    def _max_deleted_ms(self) -> int | None:
        try:
            info = self.client.xinfo_stream(self.keys.events)
        except redis.ResponseError:  # no events stream yet
            return None
        deleted = info.get("max-deleted-entry-id")  # absent before Redis 7
        ms = _stream_ms(deleted) if deleted else 0
        return ms or None

    def _violations_since(self, since: float) -> dict[str, int]:
        counts: dict[str, int] = {}
        upper = "+"
        lower = str(int(since * 1000))
        while True:
            entries = self.client.xrevrange(self.keys.violations, max=upper, min=lower, count=_SCAN_CHUNK)
            for _entry_id, fields in entries:
                doc = _decode(fields)
                if doc is not None and doc.get("type") == "violation":
                    counts[str(doc.get("camera"))] = counts.get(str(doc.get("camera")), 0) + 1
            if len(entries) < _SCAN_CHUNK:
                return counts
            upper = "(" + entries[-1][0].decode()


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
