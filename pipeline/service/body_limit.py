"""Refuse request bodies over a size cap (413) before any of them is parsed.

Every body this API takes is a small JSON document (a stream definition, a class change, an SDP
offer of at most 100,000 characters), yet without a cap a client could send megabytes that are
read and parsed on the event loop while every other request, ``/healthz`` included, waits. A
declared ``Content-Length`` over the cap is answered at once without reading; a body without one
(chunked) is read only up to the cap, then answered 413, so at most ``max_bytes`` are ever held.
"""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 1024 * 1024
"""The largest request body served: ten times the largest valid one (an SDP offer)."""


class BodySizeLimitMiddleware:
    """Answer 413 to any HTTP request whose body is larger than ``max_bytes``.

    Args:
        app: the ASGI app to protect.
        max_bytes: the largest body accepted, in bytes.
    """

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        received: list[Message] = []
        size = 0
        while True:
            message = await receive()
            received.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            """The body already read, then whatever the client sends next (a disconnect)."""
            if received:
                return received.pop(0)
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal = JSONResponse(
            {"detail": f"request body too large: at most {self.max_bytes} bytes"},
            status_code=413,
            headers={"connection": "close"},
        )
        await refusal(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    """The declared body size; None when absent or unreadable (the body is counted instead)."""
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
