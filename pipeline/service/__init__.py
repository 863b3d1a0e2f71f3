"""The HTTP service: many streams on one SAM3 model, live events, a WebRTC viewer.

``create_app`` builds the FastAPI app; ``StreamManager`` does the work and can be used without
HTTP; ``sam3-stream serve`` (``pipeline.cli_serve``) runs it under uvicorn.

Examples:
    >>> from pipeline.service import ModelEngine, ServiceSettings, create_app  # doctest: +SKIP
    >>> engine = ModelEngine(lambda: Sam3VideoTracker.from_pretrained(), model_name="facebook/sam3")
    ... # doctest: +SKIP
    >>> app = create_app(ServiceSettings(state_dir=default_state_dir()), engine=engine)
    ... # doctest: +SKIP
"""

from __future__ import annotations

from pipeline.service.app import create_app
from pipeline.service.config import ServeConfig, load_serve_config
from pipeline.service.engine import ModelEngine
from pipeline.service.errors import (
    InvalidStreamError,
    ModelNotReadyError,
    ServiceError,
    StreamConflictError,
    StreamLimitError,
    StreamNotFoundError,
    WebRTCOfferError,
)
from pipeline.service.manager import StreamManager
from pipeline.service.models import StreamInfo, StreamPatch, StreamSpec
from pipeline.service.settings import ServiceSettings
from pipeline.service.store import StreamStore, default_state_dir
from pipeline.service.webrtc import IceSettings

__all__ = [
    "IceSettings",
    "InvalidStreamError",
    "ModelEngine",
    "ModelNotReadyError",
    "ServeConfig",
    "ServiceError",
    "ServiceSettings",
    "StreamConflictError",
    "StreamInfo",
    "StreamLimitError",
    "StreamManager",
    "StreamNotFoundError",
    "StreamPatch",
    "StreamSpec",
    "StreamStore",
    "WebRTCOfferError",
    "create_app",
    "default_state_dir",
    "load_serve_config",
]
