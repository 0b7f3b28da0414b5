"""The per-frame event document: built in :mod:`maskwatch.core.documents` (re-exported here)."""

from maskwatch.core.documents import frame_event

__all__ = ["frame_event"]
