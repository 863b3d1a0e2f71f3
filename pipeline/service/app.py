"""The FastAPI app: the routers of ``routes``, error mapping, auth, access log, boot and shutdown.

The work lives in plain objects (``StreamManager``, ``ModelEngine``) that ``ServiceState`` holds
and ``dependencies`` hands to the routes; this module only puts the app together.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from pipeline.config.serve_config import ServeConfig
from pipeline.service.access_log import AccessLogMiddleware
from pipeline.service.auth import ApiKeyMiddleware
from pipeline.service.body_limit import BodySizeLimitMiddleware
from pipeline.service.engine import ModelEngine
from pipeline.service.error_responses import add_error_handlers
from pipeline.service.host_check import HostCheckMiddleware
from pipeline.service.manager import PipelineFactory, default_pipeline_factory
from pipeline.service.routes import ROUTERS, sam3, workflows
from pipeline.service.settings import ServiceSettings
from pipeline.service.state import ServiceState


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
    state = ServiceState.from_settings(
        settings,
        engine=engine,
        config=config,
        pipeline_factory=pipeline_factory,
        on_fatal=on_fatal,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.start()
        yield
        await state.stop()

    app = FastAPI(
        title="sam3-stream",
        summary="Streaming SAM3 video tracking: many streams on one model.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.service = state
    add_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    app.include_router(sam3.router)
    app.include_router(workflows.router)
    app.add_middleware(ApiKeyMiddleware, api_key=settings.api_key)
    app.add_middleware(BodySizeLimitMiddleware)  # before auth and parsing: 413 unread
    app.add_middleware(HostCheckMiddleware, allowed_hosts=settings.allowed_hosts)  # rebinding, CSRF
    app.add_middleware(AccessLogMiddleware)
    return app
