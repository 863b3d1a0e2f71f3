"""Refuse requests a web page could send from another site: DNS rebinding and cross-site posts.

Two attacks reach a server on loopback through the operator's own browser, key or no key:

- **DNS rebinding**: a page on ``attacker.example`` re-points that name at 127.0.0.1 and then
  talks to the service as its own origin, reading and changing everything. Its requests carry
  ``Host: attacker.example``, so the ``Host`` header is checked: an IP literal is always allowed
  (a rebinding needs a name the attacker controls, and a browser sends the name it resolved), as
  are ``localhost`` and the names in ``allowed_hosts``; ``*`` in it turns the check off.
- **Cross-site requests**: a page on any site may POST a form or a ``no-cors`` fetch to
  ``http://127.0.0.1:9001/streams/x/pause`` without reading the answer. A state-changing request
  (POST, PUT, PATCH, DELETE) is refused when the browser says it comes from elsewhere
  (``Sec-Fetch-Site`` not ``same-origin`` or ``none``; an ``Origin`` other than the request's
  own host or an allowed name) or when its body is not JSON (the form encodings and
  ``text/plain`` are exactly what a page may send cross-site without asking; JSON needs a CORS
  preflight the service never grants). A request without a body needs no content type, so
  ``curl -X POST .../pause`` keeps working; non-browser clients send neither header.

An ASGI middleware, like ``auth``, so that every route (pages, SSE, WebRTC signalling) is behind
it. The refused value is never echoed: it is the attacker's text.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

ANY_HOST = "*"
"""In ``allowed_hosts``: serve any ``Host`` (no rebinding check; for a proxy that does its own)."""

ALWAYS_ALLOWED_NAMES = frozenset({"localhost"})
"""Names allowed whatever the settings: browsers resolve ``localhost`` to loopback themselves."""

STATE_CHANGING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SAME_ORIGIN_FETCH_SITES = frozenset({"same-origin", "none"})
"""``Sec-Fetch-Site`` values of a request from the service's own pages or typed by the user."""

BAD_HOST_MESSAGE = (
    "this server does not answer to that Host name; add it with `sam3-stream serve "
    "--allowed-hosts NAME` or use the server's address"
)
CROSS_SITE_MESSAGE = "cross-site request refused: state changes must come from this server's pages"
NOT_JSON_MESSAGE = "request bodies must be JSON: send 'Content-Type: application/json'"


def host_name(host_header: str) -> str:
    """The name in a ``Host`` header or URL netloc, lower case, without port or trailing dot.

    ``[::1]:9001`` -> ``::1``; ``Example.COM.:80`` -> ``example.com``.
    """
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    if host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".")


def is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def name_allowed(name: str, allowed_hosts: Iterable[str]) -> bool:
    """Whether ``name`` (from ``host_name``) is one the service answers to: an IP literal,
    ``localhost`` or a name ``allowed_hosts`` lists (see ``listed``)."""
    return is_ip_literal(name) or name in ALWAYS_ALLOWED_NAMES or listed(name, allowed_hosts)


def listed(name: str, allowed_hosts: Iterable[str]) -> bool:
    """Whether ``allowed_hosts`` names ``name``: an exact name (``cams.example.com``),
    ``*.example.com`` for any name under it, or ``*`` for any."""
    for allowed in allowed_hosts:
        allowed = allowed.lower().rstrip(".")
        if allowed in (ANY_HOST, name):
            return True
        if allowed.startswith("*.") and name.endswith(allowed[1:]):
            return True
    return False


def check_allowed_host(entry: str) -> str | None:
    """Why ``entry`` cannot be an ``allowed_hosts`` entry, or None when it can."""
    if not entry or any(character in entry for character in "/:@?# \t"):
        return f"{entry!r} is not a host name (give names only: no scheme, port or path)"
    if "*" in entry and entry != ANY_HOST and not (entry.startswith("*.") and "*" not in entry[1:]):
        return f"{entry!r}: '*' stands alone or starts '*.example.com'"
    return None


def _header(headers: Iterable[tuple[bytes, bytes]], wanted: bytes) -> str | None:
    for name, value in headers:
        if name.lower() == wanted:
            return value.decode("latin-1")
    return None


def _has_body(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    length = _header(headers, b"content-length")
    if length is not None:
        return length.strip() not in ("", "0")
    return _header(headers, b"transfer-encoding") is not None


def _is_json(content_type: str) -> bool:
    media_type = content_type.partition(";")[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def refusal(
    method: str, headers: list[tuple[bytes, bytes]], allowed_hosts: Iterable[str]
) -> tuple[int, str] | None:
    """The status and message to refuse a request with, or None to serve it."""
    host_header = _header(headers, b"host")
    if host_header is not None and not name_allowed(host_name(host_header), allowed_hosts):
        return 400, BAD_HOST_MESSAGE
    if method.upper() not in STATE_CHANGING_METHODS:
        return None
    fetch_site = _header(headers, b"sec-fetch-site")
    if fetch_site is not None and fetch_site.strip().lower() not in SAME_ORIGIN_FETCH_SITES:
        return 403, CROSS_SITE_MESSAGE
    origin = _header(headers, b"origin")
    if origin is not None and not _origin_allowed(origin, host_header, allowed_hosts):
        return 403, CROSS_SITE_MESSAGE
    content_type = _header(headers, b"content-type")
    if content_type is not None and not _is_json(content_type):
        return 415, NOT_JSON_MESSAGE
    if content_type is None and _has_body(headers):
        return 415, NOT_JSON_MESSAGE
    return None


def _origin_allowed(origin: str, host_header: str | None, allowed_hosts: Iterable[str]) -> bool:
    """The request's own origin, or a name the operator listed (a proxy may rewrite ``Host``).

    Only an explicit name counts here: ``*`` allows any ``Host``, never any site, and another
    port of ``localhost`` is another site.
    """
    netloc = urlsplit(origin.strip()).netloc.lower()
    if not netloc:  # "null": a sandboxed frame, a file:// page, a redirect across sites
        return False
    if host_header is not None and netloc == host_header.strip().lower():
        return True
    explicit = [allowed for allowed in allowed_hosts if allowed != ANY_HOST]
    return listed(host_name(netloc), explicit)


class HostCheckMiddleware:
    """Answer 400 to a ``Host`` the service does not answer to, 403/415 to cross-site changes.

    Args:
        app: the ASGI app to protect.
        allowed_hosts: names besides IP literals and ``localhost`` (see ``name_allowed``).
    """

    def __init__(self, app: ASGIApp, allowed_hosts: Iterable[str] = (ANY_HOST,)) -> None:
        self.app = app
        self.allowed_hosts = tuple(allowed_hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        method = scope.get("method", "GET") if scope["type"] == "http" else "GET"
        refused = refusal(method, list(scope.get("headers", [])), self.allowed_hosts)
        if refused is None:
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        status, message = refused
        await JSONResponse({"detail": message}, status_code=status)(scope, receive, send)
