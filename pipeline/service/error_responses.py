"""How errors become JSON responses, and how the OpenAPI document describes them, in one place.

Two shapes a client can get: a 422 whose ``detail`` lists ``{"loc", "msg", "type"}`` per bad field
(pydantic's shape, also used for ``InvalidStreamError`` so a client parses one format), and any
other ``ServiceError`` as ``{"detail": message}`` with its ``status_code``. Messages are redacted
and the offending input is never echoed: it may be a source URL with credentials.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from pipeline.redact import redact
from pipeline.service.api_errors import InvalidStreamError, ModelNotReadyError, ServiceError
from pipeline.service.models import ErrorBody

STREAM_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "No stream with this id."},
    422: {"model": ErrorBody, "description": "A field is invalid; `detail` names it."},
}
"""``responses=`` of a route on one stream (OpenAPI only; the handlers below answer)."""

CREATE_STREAM_ERRORS: dict[int | str, dict[str, Any]] = {
    **STREAM_ERRORS,
    409: {"model": ErrorBody, "description": "The id or video_identifier is taken."},
    429: {"model": ErrorBody, "description": "The server runs its maximum number of streams."},
    503: {"model": ErrorBody, "description": "The model is still loading."},
}
"""``responses=`` of ``POST /streams``."""

MODEL_LOADING_RETRY_AFTER_S = "5"
"""``Retry-After`` sent with a 503 while the model loads."""


def _field_error(location: list[Any], message: str, kind: str) -> dict[str, Any]:
    return {"loc": location, "msg": redact(message), "type": kind}


async def validation_error_response(request: Request, error: Exception) -> JSONResponse:
    """422 naming each bad field; the offending input is left out (it may hold credentials)."""
    assert isinstance(error, RequestValidationError)
    detail = [
        _field_error(list(item.get("loc", ())), str(item.get("msg", "")), str(item.get("type")))
        for item in error.errors()
    ]
    return JSONResponse(status_code=422, content={"detail": detail})


async def service_error_response(request: Request, error: Exception) -> JSONResponse:
    """The error's ``status_code``; ``InvalidStreamError`` in the 422 shape, naming its field."""
    assert isinstance(error, ServiceError)
    if isinstance(error, InvalidStreamError):
        content: dict[str, Any] = {
            "detail": [_field_error(["body", error.field], str(error), "value_error")]
        }
    else:
        content = {"detail": redact(error)}
    headers = (
        {"Retry-After": MODEL_LOADING_RETRY_AFTER_S}
        if isinstance(error, ModelNotReadyError)
        else None
    )
    return JSONResponse(status_code=error.status_code, content=content, headers=headers)


def add_error_handlers(app: FastAPI) -> None:
    """Route every validation and service error of ``app`` through the two handlers above."""
    app.add_exception_handler(RequestValidationError, validation_error_response)
    app.add_exception_handler(ServiceError, service_error_response)
