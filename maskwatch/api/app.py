"""The FastAPI application: violations, their snapshots and clips, reviews, cameras, and the review page.

Routes (OpenAPI at ``/docs``, schema at ``/openapi.json``):

- ``GET /api/violations?camera=&since=&until=&limit=&cursor=`` newest first, each with its clip state
  and review; ``next_cursor`` continues the list.
- ``GET /api/violations/{id}``, ``GET /api/violations/{id}/snapshot.jpg``, ``GET /api/violations/{id}/clip.mp4``
  (HTTP Range: ``206 Partial Content``, so a browser can seek), ``POST /api/violations/{id}/review``.
- ``GET /api/cameras``: state, frame rate, compliance now and over the window.
- ``GET /healthz`` (never needs the token) and the review page at ``/`` (static files; the data it shows
  comes from the /api routes).

With ``api.token`` set every ``/api`` route needs ``Authorization: Bearer <token>`` (401 otherwise). Ids
must be uuids (400 otherwise) and every file served is resolved and must lie inside ``clips.dir``.
"""

from __future__ import annotations

import hmac
import logging
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import redis
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from maskwatch.api.store import (
    CURSOR_PATTERN,
    ID_PATTERN,
    REVIEW_STATUSES,
    CameraStats,
    ViolationStore,
    parse_time,
)
from maskwatch.config.settings import Settings
from maskwatch.core.documents import clip_url, snapshot_url
from maskwatch.core.keys import Keys

log = logging.getLogger(__name__)
STATIC_DIR = Path(str(resources.files("maskwatch.api") / "static"))


class ReviewIn(BaseModel):
    """A reviewer's verdict on a violation."""

    status: Literal["reviewed", "false_alarm"] = Field(description="reviewed or false_alarm")
    note: str | None = Field(None, max_length=2000, description="Free text, optional")


def _bearer(token: str | None):  # noqa: ANN202 - a FastAPI dependency
    expected = token.encode() if token else None

    def check(request: Request) -> None:
        if expected is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
            raise HTTPException(
                status_code=401,
                detail="missing or wrong bearer token (Authorization: Bearer <api.token>)",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return check


def _valid_id(violation_id: str) -> str:
    if not ID_PATTERN.fullmatch(violation_id):
        raise HTTPException(status_code=400, detail="invalid violation id: expected a uuid")
    return violation_id


ViolationId = Annotated[str, PathParam(description="The violation's id (a uuid)")]


def create_app(settings: Settings, client: redis.Redis) -> FastAPI:
    """The application over ``client``, reading the names and folders of ``settings``."""
    keys = Keys(settings.key_prefix)
    store = ViolationStore(client, keys, settings.clips.dir)
    stats = CameraStats(
        client,
        keys,
        window_s=settings.api.compliance_window_s,
        now_s=settings.api.compliance_now_s,
        cache_s=settings.api.stats_cache_s,
    )
    api_settings = settings.api
    token = api_settings.token.get_secret_value() if api_settings.token else None

    app = FastAPI(
        title="maskwatch API",
        description="Violations, snapshots, clips, reviews and cameras of maskwatch (docs/integrations.md).",
        version="1",
    )
    app.state.store, app.state.stats = store, stats
    api = APIRouter(prefix="/api", dependencies=[Depends(_bearer(token))])

    def view(v: Any, review: dict[str, Any] | None) -> dict[str, Any]:
        doc = dict(v.doc)
        doc.setdefault("snapshot_url", snapshot_url(v.id) if doc.get("snapshot") else None)
        doc.setdefault("clip_url", clip_url(v.id) if doc.get("clip") else None)
        clip: dict[str, Any] = {"state": v.clip_state}
        if v.clip is not None:
            clip |= {
                k: v.clip[k]
                for k in ("id", "path", "duration_s", "frames", "size_bytes", "error", "reason")
                if k in v.clip
            }
        doc["clip_state"] = clip
        doc["review"] = review
        doc["stream_id"] = v.entry_id
        return doc

    @api.get("/violations", summary="Violations, newest first")
    def list_violations(
        camera: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_.-]{1,128}$")] = None,
        since: Annotated[str | None, Query(description="Unix seconds or ISO 8601; on decided_ts")] = None,
        until: Annotated[str | None, Query(description="Unix seconds or ISO 8601; on decided_ts")] = None,
        limit: Annotated[int | None, Query(ge=1)] = None,
        cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    ) -> dict[str, Any]:
        try:
            t0, t1 = parse_time(since), parse_time(until)
        except ValueError as e:
            raise HTTPException(status_code=400, detail=str(e)) from None
        if cursor is not None and not CURSOR_PATTERN.fullmatch(cursor):
            raise HTTPException(status_code=400, detail="invalid cursor")
        size = min(limit or api_settings.page_size, api_settings.max_page_size)
        page = store.page(camera=camera, since=t0, until=t1, limit=size, cursor=cursor)
        reviews = store.reviews(v.id for v in page.items)
        return {
            "items": [view(v, reviews.get(v.id)) for v in page.items],
            "count": len(page.items),
            "next_cursor": page.next_cursor,
        }

    def find(violation_id: str) -> Any:
        v = store.get(_valid_id(violation_id))
        if v is None:
            raise HTTPException(
                status_code=404, detail="no such violation (unknown, or trimmed from the stream)"
            )
        return v

    @api.get("/violations/{violation_id}", summary="One violation")
    def get_violation(violation_id: ViolationId) -> dict[str, Any]:
        v = find(violation_id)
        return view(v, store.review(v.id))

    @api.get(
        "/violations/{violation_id}/snapshot.jpg",
        summary="The violation's JPEG snapshot",
        response_class=FileResponse,
    )
    def get_snapshot(violation_id: ViolationId) -> FileResponse:
        v = find(violation_id)
        path = store.media_path((v.clip or {}).get("snapshot") or v.doc.get("snapshot"))
        if path is None:
            raise HTTPException(status_code=404, detail="no snapshot for this violation")
        return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "no-cache"})

    @api.get(
        "/violations/{violation_id}/clip.mp4",
        summary="The violation's H.264 MP4 clip (HTTP Range supported: 206)",
        response_class=FileResponse,
    )
    def get_clip(violation_id: ViolationId) -> FileResponse:
        v = find(violation_id)
        state = v.clip_state
        if state != "ready":
            detail = {
                "pending": "the clip is not written yet (pending)",
                "failed": f"the clip was not written: {(v.clip or {}).get('error')}",
                "none": "no clip was recorded for this violation",
            }[state]
            raise HTTPException(status_code=404, detail=detail)
        path = store.media_path((v.clip or {}).get("path"))
        if path is None:
            raise HTTPException(status_code=404, detail="the clip file is gone (retention)")
        return FileResponse(path, media_type="video/mp4")

    @api.post("/violations/{violation_id}/review", summary="Mark a violation reviewed or a false alarm")
    def post_review(violation_id: ViolationId, body: ReviewIn) -> dict[str, Any]:
        v = find(violation_id)
        assert body.status in REVIEW_STATUSES
        return {"id": v.id, "review": store.set_review(v.id, body.status, body.note)}

    @api.get("/cameras", summary="Cameras: state, fps, compliance")
    def get_cameras() -> dict[str, Any]:
        return {
            "cameras": stats.cameras(),
            "compliance_basis": "faces: share of face observations classified with_mask in the frame events "
            "(maskwatch:events); compliance_now over compliance_now_s, compliance_window over "
            "compliance_window_s; window_covered_s < window_s when the events stream was trimmed",
            "window_s": api_settings.compliance_window_s,
            "now_s": api_settings.compliance_now_s,
        }

    app.include_router(api)

    @app.get("/healthz", summary="Liveness and Redis reachability")
    def healthz() -> JSONResponse:
        try:
            client.ping()
        except redis.RedisError as e:
            return JSONResponse({"status": "degraded", "redis": f"unreachable: {type(e).__name__}"}, 503)
        return JSONResponse({"status": "ok", "redis": "ok"})

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(
            STATIC_DIR / "index.html", media_type="text/html", headers={"Cache-Control": "no-cache"}
        )

    @app.exception_handler(redis.RedisError)
    def redis_down(_request: Request, exc: redis.RedisError) -> JSONResponse:
        log.warning("api: Redis error: %s", exc)
        return JSONResponse({"detail": f"Redis is unreachable ({type(exc).__name__})"}, 503)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
