"""How one server is set up: the defaults ``sam3-stream serve`` shows and the settings it builds.

Standard library only, on purpose: the CLI reads the defaults here to print ``--help`` and must
not pay for FastAPI, aiortc and torch to do it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_PORT = 9001
DEFAULT_MAX_STREAMS = 16
"""Streams one server runs at once unless told otherwise; one more is answered 429."""
DEFAULT_MAX_EVENTS = 32
"""Events an SSE client may lag behind before the oldest are dropped (~1-3 s of a live camera)."""
NO_HOST_CHECK = ("*",)
"""``allowed_hosts`` that checks no ``Host``: what an embedding app gets unless it says otherwise;
``sam3-stream serve`` always checks (see ``pipeline.service.host_check``)."""


def default_state_dir() -> Path:
    """``$XDG_DATA_HOME/sam3-stream``, else ``~/.local/share/sam3-stream`` (the XDG default)."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local/share")
    return Path(base) / "sam3-stream"


@dataclass(frozen=True)
class IceSettings:
    """How WebRTC peer connections gather candidates (see ``pipeline.service.webrtc``).

    Attributes:
        loopback_only: offer only 127.0.0.1 and accept only loopback remote candidates (a viewer on
            this machine, and the tests: all traffic stays on 127.0.0.1).
        ice_servers: STUN/TURN URLs (``stun:host:port``); empty: host candidates only.
    """

    loopback_only: bool = False
    ice_servers: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServiceSettings:
    """Settings of one service instance: what ``sam3-stream serve`` flags turn into.

    Attributes:
        api_key: required on every endpoint but ``/healthz`` when set (see ``auth``).
        state_dir: where the SQLite store lives; None keeps API streams in memory only.
        max_streams: streams at once; one more is answered 429.
        event_buffer: events an SSE client may lag behind before the oldest are dropped.
        ice: WebRTC ICE settings (loopback only in tests).
        allowed_hosts: ``Host`` names served besides IP literals and ``localhost`` (a DNS-rebinding
            page sends its own name); ``*.example.com`` for a domain, ``*`` for any. Cross-site
            state changes are refused whatever this says.
    """

    api_key: str | None = None
    state_dir: Path | None = None
    max_streams: int = DEFAULT_MAX_STREAMS
    event_buffer: int = DEFAULT_MAX_EVENTS
    ice: IceSettings = field(default_factory=IceSettings)
    allowed_hosts: tuple[str, ...] = NO_HOST_CHECK
