"""The HTTP service: many streams on one SAM3 model, live events, a WebRTC viewer.

``create_app`` builds the FastAPI app; ``StreamManager`` does the work and can be used without
HTTP; ``sam3-stream serve`` (``pipeline.cli.serve``) runs it under uvicorn.

The names below are imported on first use: the CLI imports this package to register ``serve``
and must not pay for FastAPI, aiortc and torch on every ``sam3-stream --help``.

Examples:
    >>> from pipeline.service import ModelEngine, ServiceSettings, create_app  # doctest: +SKIP
    >>> engine = ModelEngine(lambda: Sam3VideoTracker.from_pretrained(), model_name="facebook/sam3")
    ... # doctest: +SKIP
    >>> app = create_app(ServiceSettings(state_dir=default_state_dir()), engine=engine)
    ... # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "create_app": "pipeline.service.app",
    "ServeConfig": "pipeline.config.serve_config",
    "load_serve_config": "pipeline.config.serve_config",
    "ModelEngine": "pipeline.service.engine",
    "InvalidStreamError": "pipeline.service.api_errors",
    "ModelNotReadyError": "pipeline.service.api_errors",
    "ServiceError": "pipeline.service.api_errors",
    "StreamConflictError": "pipeline.service.api_errors",
    "StreamLimitError": "pipeline.service.api_errors",
    "StreamNotFoundError": "pipeline.service.api_errors",
    "WebRTCOfferError": "pipeline.service.api_errors",
    "StreamManager": "pipeline.service.manager",
    "StreamInfo": "pipeline.service.models",
    "StreamPatch": "pipeline.service.models",
    "StreamSpec": "pipeline.service.models",
    "ServiceSettings": "pipeline.service.settings",
    "StreamStore": "pipeline.service.store",
    "default_state_dir": "pipeline.service.settings",
    "IceSettings": "pipeline.service.settings",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'pipeline.service' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
