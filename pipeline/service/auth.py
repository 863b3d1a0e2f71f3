"""API key check on all endpoints but ``/healthz``: ``Authorization: Bearer KEY`` or ``?api_key=``.

``?api_key=`` is how Roboflow's API takes a key, so clients written for it work unchanged; a header
is better (query strings end up in proxy logs), and the service itself never logs query strings.
On the Roboflow-shaped POST endpoints (``BODY_KEY_PATHS``) a top-level ``"api_key"`` of the JSON
body is accepted too: ``inference-sdk`` talking to a server that is not Roboflow's sends it there
and nowhere else. That body is already capped (``body_limit``); it is parsed off the event loop.
The comparison is constant-time (``hmac.compare_digest``) so response timing leaks nothing about
the key. It is an ASGI middleware rather than a FastAPI dependency so that nothing is missed: the
OpenAPI document, the pages, SSE and WebRTC signalling all sit behind it.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Iterable
from urllib.parse import parse_qsl

import anyio.to_thread
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/healthz"})
"""Paths served without a key: liveness probes (Docker, Kubernetes) carry no credentials."""

BODY_KEY_PATHS = ("/sam3/", "/workflows/run")
"""Path prefixes whose JSON POST bodies may carry the key as ``api_key`` (Roboflow's clients)."""

UNAUTHORIZED_MESSAGE = (
    "missing or wrong API key: send 'Authorization: Bearer KEY' or add '?api_key=KEY' to the URL"
)


def supplied_key(headers: Iterable[tuple[bytes, bytes]], query_string: bytes) -> str | None:
    """The key a request carries: the Bearer token first, else the ``api_key`` query parameter."""
    for name, value in headers:
        if name.lower() == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    for parameter, argument in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if parameter == "api_key" and argument:
            return argument
    return None


def takes_body_key(scope: Scope) -> bool:
    """A POST to a path whose body may carry ``api_key`` (``BODY_KEY_PATHS``)."""
    path = str(scope.get("path", ""))
    return scope.get("method") == "POST" and path.startswith(BODY_KEY_PATHS)


def body_key(body: bytes) -> str | None:
    """The top-level ``api_key`` string of a JSON object body; None otherwise (or ``null``)."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    key = document.get("api_key") if isinstance(document, dict) else None
    return key if isinstance(key, str) and key else None


def key_matches(supplied: str | None, expected: str) -> bool:
    """Constant-time comparison; a missing key never matches."""
    if supplied is None:
        return False
    return hmac.compare_digest(supplied.encode("utf-8"), expected.encode("utf-8"))


class ApiKeyMiddleware:
    """Answer 401 to any HTTP request without the right key, except ``OPEN_PATHS``.

    Args:
        app: the ASGI app to protect.
        api_key: the key; None or empty turns the check off.
    """

    def __init__(self, app: ASGIApp, api_key: str | None) -> None:
        self.app = app
        self.api_key = api_key or None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.api_key is None
            or scope["type"] != "http"
            or scope.get("path") in OPEN_PATHS
            or key_matches(
                supplied_key(scope.get("headers", []), scope.get("query_string", b"")),
                self.api_key,
            )
        ):
            await self.app(scope, receive, send)
            return
        if takes_body_key(scope):
            received = await _read_body(receive)
            body = b"".join(m.get("body", b"") for m in received if m["type"] == "http.request")
            supplied = await anyio.to_thread.run_sync(body_key, body)
            if key_matches(supplied, self.api_key):

                async def replay() -> Message:
                    """The body already read, then whatever the client sends next."""
                    return received.pop(0) if received else await receive()

                await self.app(scope, replay, send)
                return
        refusal = JSONResponse(
            {"detail": UNAUTHORIZED_MESSAGE},
            status_code=401,
            headers={"www-authenticate": 'Bearer realm="sam3-stream"'},
        )
        await refusal(scope, receive, send)


async def _read_body(receive: Receive) -> list[Message]:
    """Every message of the request body (already capped by ``BodySizeLimitMiddleware``)."""
    received: list[Message] = []
    while True:
        message = await receive()
        received.append(message)
        if message["type"] != "http.request" or not message.get("more_body", False):
            return received
