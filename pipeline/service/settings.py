"""How one server is set up: the defaults ``sam3-stream serve`` shows and the settings it builds.

Standard library only, on purpose: the CLI reads the defaults here to print ``--help`` and must
not pay for FastAPI, aiortc and torch to do it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.cluster.settings import ClusterSettings

DEFAULT_PORT = 9001
DEFAULT_MAX_STREAMS = 16
"""Streams one server runs at once unless told otherwise; one more is answered 429."""
DEFAULT_MAX_EVENTS = 32
"""Events an SSE client may lag behind before the oldest are dropped (~1-3 s of a live camera)."""
OUTPUTS_SUBDIR = "outputs"
"""The output root under the state directory when ``--output-dir`` is not given."""
DEFAULT_MAX_VIEWERS_PER_STREAM = 4
"""WebRTC viewers of one stream; each costs a software VP8 encode of every frame it is sent."""
DEFAULT_MAX_VIEWERS = 32
"""WebRTC viewers of the whole server; one more is answered 429 (see ``ViewerSettings``)."""
DEFAULT_VIEWER_CONNECT_TIMEOUT_S = 20.0
"""A viewer not connected this long after its offer was answered is closed and forgotten."""
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
class ViewerSettings:
    """How many WebRTC viewers a server takes, and how long one may take to connect.

    An answered offer holds UDP sockets and an ICE agent whether or not it ever connects, so
    viewers are capped before a peer connection is made (``pipeline.service.viewer_slots``).
    The defaults leave room for a wall of screens (4 per stream) while 32 software VP8 encodes
    are already more than a CPU serving a model should do; ICE on a LAN or through STUN connects
    in a few seconds, so 20 s only ends offers that were never going to.

    Attributes:
        max_per_stream: viewers of one stream at once; one more offer is answered 429.
        max_total: viewers of every stream together; one more offer is answered 429.
        connect_timeout_s: a viewer not connected this long after its answer is closed.
    """

    max_per_stream: int = DEFAULT_MAX_VIEWERS_PER_STREAM
    max_total: int = DEFAULT_MAX_VIEWERS
    connect_timeout_s: float = DEFAULT_VIEWER_CONNECT_TIMEOUT_S


@dataclass(frozen=True)
class ServiceSettings:
    """Settings of one service instance: what ``sam3-stream serve`` flags turn into.

    Attributes:
        api_key: required on every endpoint but ``/healthz`` when set (see ``auth``).
        state_dir: where the SQLite store lives; None keeps API streams in memory only.
        max_streams: streams at once; one more is answered 429.
        event_buffer: events an SSE client may lag behind before the oldest are dropped.
        ice: WebRTC ICE settings (loopback only in tests).
        viewers: WebRTC viewer caps and connect timeout.
        allowed_hosts: ``Host`` names served besides IP literals and ``localhost`` (a DNS-rebinding
            page sends its own name); ``*.example.com`` for a domain, ``*`` for any. Cross-site
            state changes are refused whatever this says.
        output_dir: the output root: ``jsonl:NAME`` / ``video:NAME`` sinks given over the API
            write ``output_dir/NAME`` (created 0700 if missing). None: ``state_dir/outputs``, and
            with no ``state_dir`` either such sinks are refused (see ``api_output_dir``).
        media_root: file sources given over the API are names under it; None refuses them.
        allow_private_network: webhook, UDP and source URLs given over the API may reach
            loopback, private, link-local, CGNAT and multicast addresses (refused by default).
        cluster: run streams on Ray workers (``serve --ray``); None runs them in this process and
            never imports Ray.

    The defaults are the safe ones: an app built with ``ServiceSettings()`` lets API callers write
    no file, read no file and reach no internal address (``pipeline.service.api_access``).
    """

    api_key: str | None = None
    state_dir: Path | None = None
    max_streams: int = DEFAULT_MAX_STREAMS
    event_buffer: int = DEFAULT_MAX_EVENTS
    ice: IceSettings = field(default_factory=IceSettings)
    viewers: ViewerSettings = field(default_factory=ViewerSettings)
    allowed_hosts: tuple[str, ...] = NO_HOST_CHECK
    output_dir: Path | None = None
    media_root: Path | None = None
    allow_private_network: bool = False
    cluster: ClusterSettings | None = None

    @property
    def api_output_dir(self) -> Path | None:
        """The output root API sinks write under: ``output_dir``, else ``state_dir/outputs``."""
        if self.output_dir is not None:
            return self.output_dir
        return self.state_dir / OUTPUTS_SUBDIR if self.state_dir is not None else None
