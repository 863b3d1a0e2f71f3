"""How one server is set up: what ``sam3-stream serve`` flags turn into, in one frozen object."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pipeline.service.defaults import DEFAULT_MAX_STREAMS
from pipeline.service.sse import DEFAULT_MAX_EVENTS
from pipeline.service.webrtc import IceSettings


@dataclass(frozen=True)
class ServiceSettings:
    """Settings of one service instance.

    Attributes:
        api_key: required on every endpoint but ``/healthz`` when set (see ``auth``).
        state_dir: where the SQLite store lives; None keeps API streams in memory only.
        max_streams: streams at once; one more is answered 429.
        event_buffer: events an SSE client may lag behind before the oldest are dropped.
        ice: WebRTC ICE settings (loopback only in tests).
    """

    api_key: str | None = None
    state_dir: Path | None = None
    max_streams: int = DEFAULT_MAX_STREAMS
    event_buffer: int = DEFAULT_MAX_EVENTS
    ice: IceSettings = field(default_factory=IceSettings)
