"""Retention of clips and snapshots: delete files past a maximum age or beyond a total size, oldest first."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

MEDIA_SUFFIXES = (".mp4", ".jpg")


@dataclass
class RetentionReport:
    """What one sweep did: files deleted (with the reason) and the bytes left."""

    deleted: list[tuple[Path, str]] = field(default_factory=list)
    freed_bytes: int = 0
    total_bytes: int = 0


class Retention:
    """Keeps ``root`` (recursively, ``*.mp4`` and ``*.jpg`` only) below ``max_age_s`` and ``max_total_bytes``.

    Files being written carry a ``.part`` suffix and are never touched; they still count
    towards the total so that a sweep reflects what is really on disk.
    """

    def __init__(
        self, root: Path, max_age_s: float, max_total_bytes: int, clock: Callable[[], float] = time.time
    ):
        self.root = Path(root)
        self.max_age_s = max_age_s
        self.max_total_bytes = max_total_bytes
        self.clock = clock

    def _files(self) -> tuple[list[tuple[float, int, Path]], int]:
        media: list[tuple[float, int, Path]] = []
        in_progress = 0
        if not self.root.is_dir():
            return media, 0
        for dirpath, _dirs, names in os.walk(self.root):
            for name in names:
                path = Path(dirpath, name)
                try:
                    st = path.stat()
                except OSError:
                    continue  # deleted meanwhile
                if name.endswith(MEDIA_SUFFIXES):
                    media.append((st.st_mtime, st.st_size, path))
                elif name.endswith(".part"):
                    in_progress += st.st_size
        media.sort()
        return media, in_progress

    def sweep(self, protect: set[Path] | None = None) -> RetentionReport:
        """Delete expired files, then the oldest until the total fits; ``protect`` is never deleted."""
        protect = protect or set()
        media, in_progress = self._files()
        report = RetentionReport()
        total = in_progress + sum(size for _, size, _ in media)
        cutoff = self.clock() - self.max_age_s
        for mtime, size, path in media:
            reason = "age" if mtime < cutoff else "size" if total > self.max_total_bytes else None
            if reason is None or path in protect:
                continue
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError as e:
                log.error("retention: cannot delete %s: %s", path, e)
                continue
            total -= size
            report.freed_bytes += size
            report.deleted.append((path, reason))
        report.total_bytes = total
        if report.deleted:
            log.info(
                "retention: deleted %d file(s), %.1f MB freed, %.1f MB kept in %s",
                len(report.deleted),
                report.freed_bytes / 1e6,
                total / 1e6,
                self.root,
            )
        return report
