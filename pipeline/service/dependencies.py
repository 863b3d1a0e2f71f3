"""What a route needs, handed to it by FastAPI's ``Depends``: the objects behind the routes.

Everything comes from the app's ``ServiceState`` (``app.state.service``), so a router module holds
no objects of its own and one app's routes never see another app's manager. The lookups that only
read attributes are ``async`` (FastAPI would otherwise hop to the threadpool for each);
``managed_stream`` stays synchronous because the manager's lock can be held while a stream opens
its source, and the event loop must not wait for that.

Examples:
    >>> from fastapi import APIRouter
    >>> router = APIRouter()
    >>> @router.get("/count")
    ... def count(manager: ManagerDep) -> int:
    ...     return len(manager)
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from pipeline.service.engine import ModelEngine
from pipeline.service.manager import ManagedStream, StreamManager
from pipeline.service.metrics import ServiceMetrics
from pipeline.service.sse import EventHub
from pipeline.service.state import ServiceState
from pipeline.service.webrtc import WebRTCPublisher


async def service_state(request: Request) -> ServiceState:
    """The state ``create_app`` stored on the app."""
    state: ServiceState = request.app.state.service
    return state


StateDep = Annotated[ServiceState, Depends(service_state)]


async def stream_manager(state: StateDep) -> StreamManager:
    return state.manager


ManagerDep = Annotated[StreamManager, Depends(stream_manager)]


async def model_engine(state: StateDep) -> ModelEngine:
    return state.engine


EngineDep = Annotated[ModelEngine, Depends(model_engine)]


async def service_metrics(manager: ManagerDep) -> ServiceMetrics:
    return manager.metrics


MetricsDep = Annotated[ServiceMetrics, Depends(service_metrics)]


def managed_stream(stream_id: str, manager: ManagerDep) -> ManagedStream:
    """The stream the path names; ``StreamNotFoundError`` (404) when there is none."""
    return manager.get(stream_id)


StreamDep = Annotated[ManagedStream, Depends(managed_stream)]


async def stream_event_hub(stream: StreamDep) -> EventHub:
    return stream.events


EventHubDep = Annotated[EventHub, Depends(stream_event_hub)]


async def stream_viewer_publisher(stream: StreamDep) -> WebRTCPublisher:
    return stream.webrtc


ViewerPublisherDep = Annotated[WebRTCPublisher, Depends(stream_viewer_publisher)]
