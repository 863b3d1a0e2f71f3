"""The ``image`` field of the SAM3 image endpoints: ``{"type": "base64" | "url", "value": ...}``.

Shaped as Roboflow's ``InferenceRequestImage`` so its clients send what they already send; what
comes back is the image's encoded bytes, which the model side decodes under its own caps
(``tracker.image.image_input``: ``MAX_IMAGE_BYTES`` encoded, 8K pixels).

- ``base64``: standard base64, with or without a ``data:image/...;base64,`` prefix.
- ``url``: http(s) only, fetched by the server under the same private-network policy as stream
  sources and webhooks (``network_policy``; ``serve --allow-private-network`` lifts it). The
  connection goes to the address that was checked (a second DNS answer cannot swap in a private
  one), each of at most ``MAX_REDIRECTS`` redirects is checked again, the body is capped at
  ``MAX_IMAGE_BYTES`` (declared length and while reading) and the whole fetch at
  ``FETCH_TOTAL_TIMEOUT_S``.
- ``numpy``, ``numpy_object``, ``pil``, ``file``, ``multipart``: refused. Roboflow's ``numpy`` is
  ``pickle.loads`` of the request, i.e. code execution for whoever can reach the port.

Every refusal is an ``ImageInputError`` naming the request field (``image.type``,
``image.value``) and the reason; a URL is never echoed (it may carry credentials).
"""

from __future__ import annotations

import base64
import binascii
import http.client
import re
import socket
import ssl
import time
from typing import Any
from urllib.parse import urljoin, urlsplit

from pydantic import BaseModel, ConfigDict

from pipeline.service.network_policy import ALLOW_FLAG, IPAddress, internal_address_kind, resolve
from tracker.image import MAX_IMAGE_BYTES

IMAGE_TYPES = ("base64", "url")
"""The ``image.type`` values served over HTTP (case-insensitive, as Roboflow's)."""

REFUSED_IMAGE_TYPES = ("numpy", "numpy_object", "pil", "file", "multipart")
"""Roboflow's other types: pickled or server-local, never accepted from a client."""

MAX_REDIRECTS = 3
FETCH_CONNECT_TIMEOUT_S = 5.0
FETCH_TOTAL_TIMEOUT_S = 15.0
"""A URL image must arrive within this many seconds, redirects included."""

_DATA_URI = re.compile(r"^data:image/[A-Za-z0-9.+-]+;base64,")
_MAX_BASE64_CHARS = -(-MAX_IMAGE_BYTES * 4 // 3) + 4
_READ_CHUNK = 64 * 1024


class ImageInputError(ValueError):
    """An ``image`` the server will not use; ``loc`` is the request field at fault."""

    def __init__(self, loc: tuple[str, ...], message: str) -> None:
        super().__init__(f"{'.'.join(loc)}: {message}")
        self.loc = loc
        self.reason = message


class InferenceRequestImage(BaseModel):
    """An image in a request body, as Roboflow's clients send it.

    Examples:
        >>> InferenceRequestImage(type="base64", value="iVBORw0KGgo=").type
        'base64'
    """

    model_config = ConfigDict(extra="ignore")

    type: str
    value: Any = None


def request_image_bytes(
    image: InferenceRequestImage, *, allow_private_network: bool, field: str = "image"
) -> bytes:
    """The encoded image a request carries (decoding and pixel caps are the model side's).

    Blocking (DNS, the URL fetch): call it from a worker thread, never on the event loop.

    Raises:
        ImageInputError: naming ``image.type`` or ``image.value`` and why.
    """
    kind = str(image.type).strip().lower()
    if kind in REFUSED_IMAGE_TYPES:
        raise ImageInputError(
            (field, "type"),
            f"{kind!r} images are not accepted over HTTP: send type 'base64' or 'url'",
        )
    if kind not in IMAGE_TYPES:
        raise ImageInputError((field, "type"), "not a recognised image type: use 'base64' or 'url'")
    if not isinstance(image.value, str) or not image.value:
        raise ImageInputError((field, "value"), f"a {kind} image needs a non-empty string value")
    if kind == "base64":
        return decode_base64_image(image.value, field=field)
    return fetch_image_url(image.value, allow_private_network=allow_private_network, field=field)


def decode_base64_image(value: str, *, field: str = "image") -> bytes:
    """Standard base64 (a ``data:image/...;base64,`` prefix allowed) -> bytes, size-capped first.

    Raises:
        ImageInputError: naming ``image.value``: too long, or not base64.
    """
    payload = _DATA_URI.sub("", value, count=1)
    if len(payload) > _MAX_BASE64_CHARS:
        raise ImageInputError(
            (field, "value"), f"the image is over the {MAX_IMAGE_BYTES} byte limit"
        )
    try:
        data = base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ImageInputError((field, "value"), "malformed base64 image data") from None
    if not data:
        raise ImageInputError((field, "value"), "empty image data")
    return data


def fetch_image_url(url: str, *, allow_private_network: bool, field: str = "image") -> bytes:
    """GET an image over http(s) under the private-network policy, size and time limits.

    Raises:
        ImageInputError: naming ``image.value``: a refused or unresolvable host, a bad scheme,
            too many redirects, a non-2xx answer, a body over ``MAX_IMAGE_BYTES``, a timeout.
    """
    loc = (field, "value")
    deadline = time.monotonic() + FETCH_TOTAL_TIMEOUT_S
    for _ in range(MAX_REDIRECTS + 1):
        response, connection = _request(url, loc, allow_private_network, deadline)
        try:
            if response.status in (301, 302, 303, 307, 308):
                location = response.getheader("Location")
                if not location:
                    raise ImageInputError(loc, "the URL redirected without a Location")
                url = urljoin(url, location)
                continue
            if not 200 <= response.status < 300:
                raise ImageInputError(loc, f"the URL answered HTTP {response.status}")
            return _read_capped(response, connection, loc, deadline)
        finally:
            connection.close()
    raise ImageInputError(loc, f"the URL redirected more than {MAX_REDIRECTS} times")


def _request(
    url: str, loc: tuple[str, ...], allow_private_network: bool, deadline: float
) -> tuple[http.client.HTTPResponse, http.client.HTTPConnection]:
    """Connect to a checked address of the URL's host and send the GET."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        raise ImageInputError(loc, "the URL is malformed") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ImageInputError(loc, "the URL must be http or https")
    if not host:
        raise ImageInputError(loc, "the URL has no host")
    address = _checked_address(host, loc, allow_private_network)
    port = port or (443 if scheme == "https" else 80)  # explicit: an IPv6 host has colons
    timeout = min(FETCH_CONNECT_TIMEOUT_S, max(deadline - time.monotonic(), 0.01))
    connection: http.client.HTTPConnection
    if scheme == "https":
        connection = _PinnedHTTPSConnection(host, port, timeout=timeout, address=address)
    else:
        connection = _PinnedHTTPConnection(host, port, timeout=timeout, address=address)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection.request(
            "GET", target, headers={"User-Agent": "sam3-stream", "Accept": "image/*"}
        )
        return connection.getresponse(), connection
    except TimeoutError:
        connection.close()
        raise ImageInputError(loc, "the URL did not answer in time") from None
    except (OSError, http.client.HTTPException) as error:
        connection.close()
        raise ImageInputError(loc, f"fetching the URL failed ({type(error).__name__})") from None


def _checked_address(host: str, loc: tuple[str, ...], allow_private_network: bool) -> IPAddress:
    """The address to connect to; every address of ``host`` must pass the policy first."""
    try:
        addresses = resolve(host)
    except OSError:
        raise ImageInputError(loc, "the URL's host does not resolve") from None
    if not addresses:
        raise ImageInputError(loc, "the URL's host does not resolve")
    if not allow_private_network:
        for address in addresses:
            kind = internal_address_kind(address)
            if kind is not None:
                raise ImageInputError(
                    loc,
                    f"the URL's host is or resolves to a {kind} address, which image URLs may "
                    f"not reach: start serve with {ALLOW_FLAG} to allow it",
                )
    return addresses[0]


def _read_capped(
    response: http.client.HTTPResponse,
    connection: http.client.HTTPConnection,
    loc: tuple[str, ...],
    deadline: float,
) -> bytes:
    declared = response.getheader("Content-Length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_IMAGE_BYTES:
        raise ImageInputError(loc, f"the image is over the {MAX_IMAGE_BYTES} byte limit")
    chunks: list[bytes] = []
    size = 0
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ImageInputError(
                loc, f"the image did not arrive within {FETCH_TOTAL_TIMEOUT_S:.0f} s"
            )
        if connection.sock is not None:
            connection.sock.settimeout(remaining)
        try:
            chunk = response.read(_READ_CHUNK)
        except TimeoutError:
            raise ImageInputError(
                loc, f"the image did not arrive within {FETCH_TOTAL_TIMEOUT_S:.0f} s"
            ) from None
        except (OSError, http.client.HTTPException) as error:
            raise ImageInputError(loc, f"reading the URL failed ({type(error).__name__})") from None
        if not chunk:
            break
        size += len(chunk)
        if size > MAX_IMAGE_BYTES:
            raise ImageInputError(loc, f"the image is over the {MAX_IMAGE_BYTES} byte limit")
        chunks.append(chunk)
    if not size:
        raise ImageInputError(loc, "the URL answered an empty body")
    return b"".join(chunks)


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """HTTP to an address checked beforehand; ``Host`` stays the URL's name."""

    def __init__(self, host: str, port: int, *, timeout: float, address: IPAddress):
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((str(self._address), self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to an address checked beforehand; SNI and certificate checked against the name."""

    def __init__(self, host: str, port: int, *, timeout: float, address: IPAddress):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        raw = socket.create_connection((str(self._address), self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)  # type: ignore[attr-defined]
