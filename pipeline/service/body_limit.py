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

IMAGE_BODY_PATHS = ("/sam3/", "/workflows/run")
"""Path prefixes that take an image inline (base64 JSON): they get ``MAX_IMAGE_BODY_BYTES``."""

MAX_IMAGE_BODY_BYTES = -(-64 * 1024 * 1024 * 4 // 3) + 64 * 1024
"""About 85.4 MiB: a ``MAX_IMAGE_BYTES`` (64 MiB) image in base64 plus 64 KiB of prompts.
A 1080p JPEG is 0.5-2 MB in base64, a PNG several MB: the 1 MiB cap would refuse them."""


class BodySizeLimitMiddleware:
    """Answer 413 to any HTTP request whose body is larger than ``max_bytes``.

    Args:
        app: the ASGI app to protect.
        max_bytes: the largest body accepted, in bytes.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int = MAX_BODY_BYTES,
        max_image_bytes: int = MAX_IMAGE_BODY_BYTES,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_image_bytes = max_image_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cap = (
            self.max_image_bytes
            if str(scope.get("path", "")).startswith(IMAGE_BODY_PATHS)
            else self.max_bytes
        )
        declared = _content_length(scope)
        if declared is not None and declared > cap:
            await self._refuse(scope, receive, send, cap)
            return
        received: list[Message] = []
        size = 0
        while True:
            message = await receive()
            received.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > cap:
                await self._refuse(scope, receive, send, cap)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            """The body already read, then whatever the client sends next (a disconnect)."""
            if received:
                return received.pop(0)
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, cap: int) -> None:
        refusal = JSONResponse(
            {"detail": f"request body too large: at most {cap} bytes"},
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
