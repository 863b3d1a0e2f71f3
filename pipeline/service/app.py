"""The FastAPI app: thin routes over ``StreamManager``, error mapping, auth, boot and shutdown.

Routes validate bodies (pydantic models in ``models``) and call one manager method each; the
manager's typed errors become status codes here and nowhere else. Synchronous routes run in the
threadpool because pipeline calls may block (opening a file, stopping a source); the SSE and WebRTC
routes are async because they live on the event loop.

Boot happens on a background thread after the server listens: load the model, then start the
config's streams and the stored ones. ``/healthz`` answers at once; ``/readyz`` only once both are
done, with the load error if there was one.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Literal

from fastapi import FastAPI, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipeline.config.serve_config import ServeConfig
from pipeline.redact import redact
from pipeline.service.api_errors import InvalidStreamError, ModelNotReadyError, ServiceError
from pipeline.service.auth import ApiKeyMiddleware
from pipeline.service.engine import ModelEngine
from pipeline.service.manager import PipelineFactory, StreamManager, default_pipeline_factory
from pipeline.service.metrics import ServiceMetrics
from pipeline.service.models import (
    ErrorBody,
    Health,
    Readiness,
    StreamInfo,
    StreamList,
    StreamPatch,
    StreamSpec,
    WebRTCAnswer,
    WebRTCOffer,
)
from pipeline.service.pages import index_page, viewer_page
from pipeline.service.settings import ServiceSettings
from pipeline.service.sse import sse_lines
from pipeline.service.store import StreamStore
from pipeline.service.webrtc import use_loopback_host_candidates

logger = logging.getLogger(__name__)

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "No stream with this id."},
    422: {"model": ErrorBody, "description": "A field is invalid; `detail` names it."},
}
_CREATE_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    409: {"model": ErrorBody, "description": "The id or video_identifier is taken."},
    429: {"model": ErrorBody, "description": "The server runs its maximum number of streams."},
    503: {"model": ErrorBody, "description": "The model is still loading."},
}


def _field_error(location: list[Any], message: str, kind: str) -> dict[str, Any]:
    return {"loc": location, "msg": redact(message), "type": kind}


async def _validation_error(request: Request, error: Exception) -> JSONResponse:
    """422 naming each bad field; the offending input is left out (it may hold credentials)."""
    assert isinstance(error, RequestValidationError)
    detail = [
        _field_error(list(item.get("loc", ())), str(item.get("msg", "")), str(item.get("type")))
        for item in error.errors()
    ]
    return JSONResponse(status_code=422, content={"detail": detail})


async def _service_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ServiceError)
    if isinstance(error, InvalidStreamError):
        content: dict[str, Any] = {
            "detail": [_field_error(["body", error.field], str(error), "value_error")]
        }
    else:
        content = {"detail": redact(error)}
    headers = {"Retry-After": "5"} if isinstance(error, ModelNotReadyError) else None
    return JSONResponse(status_code=error.status_code, content=content, headers=headers)


class AccessLogMiddleware:
    """One log line per request: method, path (never the query string: it may hold the key)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def send_logged(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_logged)
        finally:
            logger.info(
                "%s %s -> %d (%.0f ms)",
                scope["method"],
                redact(scope["path"]),
                status,
                (time.perf_counter() - started) * 1000,
            )


class ServiceState:
    """What the routes share: the manager, the engine, and whether boot finished."""

    def __init__(self, manager: StreamManager, engine: ModelEngine) -> None:
        self.manager = manager
        self.engine = engine
        self.booted = threading.Event()


def create_app(
    settings: ServiceSettings,
    *,
    engine: ModelEngine,
    config: ServeConfig | None = None,
    pipeline_factory: PipelineFactory = default_pipeline_factory,
    on_fatal: Callable[[str], None] | None = None,
) -> FastAPI:
    """Build the service.

    Args:
        settings: the server's settings.
        engine: the model holder; loaded on the boot thread if it is not yet.
        config: streams to start at boot (from ``--config``).
        pipeline_factory: ``InferencePipeline.init`` or a stand-in.
        on_fatal: called with the reason when the model fails to load (``serve`` exits then).
    """
    if settings.ice.loopback_only:
        use_loopback_host_candidates()
    store = StreamStore(settings.state_dir) if settings.state_dir is not None else None
    manager = StreamManager(
        engine,
        store=store,
        metrics=ServiceMetrics(),
        max_streams=settings.max_streams,
        pipeline_factory=pipeline_factory,
        ice=settings.ice,
        event_buffer=settings.event_buffer,
    )
    state = ServiceState(manager, engine)

    def boot() -> None:
        if engine.load():
            manager.start_boot_streams(config.streams if config else ())
            state.booted.set()
            logger.info("ready: %d streams running", len(manager))
        elif on_fatal is not None:
            on_fatal(engine.error or "model failed to load")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        threading.Thread(target=boot, name="service-boot", daemon=True).start()
        yield
        await manager.close_viewers()
        await run_in_threadpool(manager.close)
        await run_in_threadpool(engine.close)
        if store is not None:
            store.close()

    app = FastAPI(
        title="sam3-stream",
        summary="Streaming SAM3 video tracking: many streams on one model.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.service = state
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ServiceError, _service_error)
    _add_routes(app, state)
    app.add_middleware(ApiKeyMiddleware, api_key=settings.api_key)
    app.add_middleware(AccessLogMiddleware)
    return app


def _add_routes(app: FastAPI, state: ServiceState) -> None:
    manager = state.manager

    @app.get("/healthz", response_model=Health, tags=["health"])
    def healthz() -> Health:
        """The process is alive (no API key needed)."""
        return Health()

    @app.get(
        "/readyz",
        response_model=Readiness,
        tags=["health"],
        responses={503: {"model": Readiness, "description": "Not ready (yet)."}},
    )
    def readyz(response: Response) -> Readiness:
        """The model is loaded and the boot streams were started."""
        ready = state.engine.ready and state.booted.is_set()
        if not ready:
            response.status_code = 503
        return Readiness(
            ready=ready,
            model=state.engine.model_name,
            error=state.engine.error,
            streams=len(manager),
        )

    @app.get("/metrics", tags=["health"], response_class=Response)
    def metrics() -> Response:
        """Prometheus text: per-stream frame counters, latency, sessions, clients."""
        return Response(manager.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.post(
        "/streams",
        status_code=201,
        response_model=StreamInfo,
        tags=["streams"],
        responses=_CREATE_ERRORS,
    )
    def create_stream(spec: StreamSpec, response: Response) -> StreamInfo:
        """Start a stream; it is stored and comes back after a restart."""
        info = manager.create(spec)
        response.headers["Location"] = f"/streams/{info.id}"
        return info

    @app.get("/streams", response_model=StreamList, tags=["streams"])
    def list_streams() -> StreamList:
        return StreamList(streams=manager.list())

    @app.get("/streams/{stream_id}", response_model=StreamInfo, tags=["streams"], responses=_ERRORS)
    def get_stream(stream_id: str) -> StreamInfo:
        """The stream's definition and its pipeline's ``status()``."""
        return manager.info(stream_id)

    @app.patch(
        "/streams/{stream_id}", response_model=StreamInfo, tags=["streams"], responses=_ERRORS
    )
    def patch_stream(stream_id: str, patch: StreamPatch) -> StreamInfo:
        """Change classes and/or threshold; a class change reseeds, tracker ids continue."""
        return manager.update(stream_id, patch)

    @app.post(
        "/streams/{stream_id}/pause",
        response_model=StreamInfo,
        tags=["streams"],
        responses=_ERRORS,
    )
    def pause_stream(stream_id: str) -> StreamInfo:
        return manager.pause(stream_id)

    @app.post(
        "/streams/{stream_id}/resume",
        response_model=StreamInfo,
        tags=["streams"],
        responses=_ERRORS,
    )
    def resume_stream(stream_id: str) -> StreamInfo:
        return manager.resume(stream_id)

    @app.delete(
        "/streams/{stream_id}",
        status_code=204,
        response_class=Response,
        tags=["streams"],
        responses=_ERRORS,
    )
    def delete_stream(stream_id: str) -> Response:
        """Stop the stream, end its clients, free its tracker session, forget it."""
        manager.delete(stream_id)
        return Response(status_code=204)

    @app.get(
        "/streams/{stream_id}/events",
        tags=["live"],
        response_class=StreamingResponse,
        responses={
            **_ERRORS,
            200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events."},
        },
    )
    async def stream_events(
        stream_id: str,
        masks: Literal["none", "rle", "polygon"] = Query(
            "none", description="Mask encoding in each event: none, rle (COCO) or polygon."
        ),
    ) -> StreamingResponse:
        """Live detections as Server-Sent Events, one JSONL record per frame.

        Each client has a bounded buffer: a slow client loses the oldest events (a gap in
        ``id:``), the stream never waits for it.
        """
        stream = manager.get(stream_id)
        subscription = stream.events.subscribe(masks, asyncio.get_running_loop())

        async def body() -> AsyncIterator[str]:
            try:
                async for chunk in sse_lines(subscription):
                    yield chunk
            finally:
                stream.events.unsubscribe(subscription)

        return StreamingResponse(
            body(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @app.post(
        "/streams/{stream_id}/webrtc",
        response_model=WebRTCAnswer,
        tags=["live"],
        responses=_ERRORS,
    )
    async def webrtc_offer(stream_id: str, offer: WebRTCOffer) -> WebRTCAnswer:
        """Take a browser's SDP offer, answer it: annotated video plus a detections channel."""
        stream = manager.get(stream_id)
        answer = await stream.webrtc.answer(offer)
        return WebRTCAnswer(sdp=answer.sdp)

    @app.get(
        "/streams/{stream_id}/view",
        response_class=HTMLResponse,
        tags=["pages"],
        responses={404: {"model": ErrorBody}},
    )
    def view_stream(stream_id: str) -> HTMLResponse:
        """A page that plays the stream over WebRTC and lists its detections."""
        manager.get(stream_id)
        return HTMLResponse(viewer_page())

    @app.get("/", response_class=HTMLResponse, tags=["pages"])
    def index() -> HTMLResponse:
        """Every stream with a link to its viewer."""
        return HTMLResponse(index_page(manager.list(), state.engine.model_name))
