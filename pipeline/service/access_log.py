"""One log line per request, written by the service itself because uvicorn's would leak keys.

uvicorn's access log prints the query string, and ``?api_key=`` is how Roboflow clients send
their key; ``ServiceServer`` turns it off and this middleware logs method, path, status and time.
The path arrives percent-decoded (``%0a`` is a newline), so it is redacted and its control
characters escaped: a client cannot forge a log line.
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipeline.redact import redact
from pipeline.service.log_text import printable

logger = logging.getLogger(__name__)


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
                printable(scope["method"]),
                printable(redact(scope["path"])),
                status,
                (time.perf_counter() - started) * 1000,
            )
