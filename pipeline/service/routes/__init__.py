"""The HTTP API, one ``APIRouter`` per resource; each route validates and calls one method.

``ROUTERS`` is the order ``create_app`` includes them in, which is the order the OpenAPI
document lists the paths: health and metrics, streams, visual prompts, live events, WebRTC
signalling, pages.
"""

from __future__ import annotations

from fastapi import APIRouter

from pipeline.service.routes import events, health, pages, prompts, signalling, streams

ROUTERS: tuple[APIRouter, ...] = (
    health.router,
    streams.router,
    prompts.router,
    events.router,
    signalling.router,
    pages.router,
)
