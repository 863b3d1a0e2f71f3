"""What a client of the service sees: streams created over HTTP, detections read over SSE.

``bench cluster`` measures the front door only through its public API, so the figures mean the
same whether a stream runs in this process or on a Ray worker: aggregate frames per second is
detection events received per second, and a frame's age is the wall clock when its event arrived
here minus the frame's grab time (the event's ``timestamp``). Streams are files played in real
time (``source_options.realtime``), i.e. cameras: a model slower than the clip drops frames
instead of falling behind, so the age stays bounded and the event rate is the capacity.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

logger = logging.getLogger(__name__)

READY_POLL_S = 0.2


@dataclass
class StreamEvents:
    """Detection events one stream delivered: arrival here and the frame's grab time.

    Attributes:
        stream_id: the stream's id in the API.
        arrivals: wall clock (epoch seconds) when each event arrived, in order.
        grabbed: each event's frame timestamp (epoch seconds).
        epochs: each event's ``epoch`` (a failover would show as a change).
        worker: the stream's ``worker`` status field (None when it runs in-process).
        error: why reading stopped early, if it did.
    """

    stream_id: str
    arrivals: list[float] = field(default_factory=list)
    grabbed: list[float] = field(default_factory=list)
    epochs: list[int] = field(default_factory=list)
    worker: str | None = None
    error: str | None = None


@dataclass
class RunningService:
    """A service app on a uvicorn server in a thread, at ``url``."""

    url: str
    server: Any
    thread: threading.Thread

    def stop(self, timeout: float = 30.0) -> None:
        self.server.stop()
        self.thread.join(timeout)


@contextlib.contextmanager
def serve_in_thread(app: Any) -> Iterator[RunningService]:
    """Serve ``app`` on 127.0.0.1 and a free port for the ``with`` block, then stop it."""
    from pipeline.service.server import ServiceServer, bind_socket

    sock = bind_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = ServiceServer(app, log_level="warning")
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="bench-uvicorn", daemon=True
    )
    thread.start()
    running = RunningService(f"http://127.0.0.1:{port}", server, thread)
    try:
        yield running
    finally:
        running.stop()
        sock.close()


def wait_ready(client: httpx.Client, timeout: float) -> None:
    """Until ``/readyz`` answers 200 (the model, or the cluster's workers, loaded)."""
    from pipeline.errors import ConfigError

    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            response = client.get("/readyz")
            if response.status_code == 200:
                return
            last = response.text[:300]
            error = response.json().get("error")
            if error:  # the model or the workers failed to load: waiting will not help
                raise ConfigError(f"the service cannot start: {error}")
        time.sleep(READY_POLL_S)
    raise ConfigError(f"the service was not ready within {timeout:.0f} s: {last or 'no answer'}")


def create_stream(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    """``POST /streams``; a refusal is an error naming the status and the service's reason."""
    from pipeline.errors import ConfigError

    response = client.post("/streams", json=body)
    if response.status_code != 201:
        raise ConfigError(f"POST /streams answered {response.status_code}: {response.text[:300]}")
    created: dict[str, Any] = response.json()
    return created


class EventReader:
    """Reads one stream's SSE detections on a thread until the stream ends or ``close``."""

    def __init__(self, url: str, stream_id: str) -> None:
        self.events = StreamEvents(stream_id)
        self.first_event = threading.Event()
        self._lock = threading.Lock()
        self._client = httpx.Client(base_url=url, timeout=httpx.Timeout(30.0, read=None))
        self._thread = threading.Thread(
            target=self._read, name=f"bench-sse-{stream_id}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def snapshot(self) -> tuple[list[float], list[float]]:
        """Copies of (arrivals, grab times) so far."""
        with self._lock:
            return list(self.events.arrivals), list(self.events.grabbed)

    def close(self, timeout: float = 10.0) -> None:
        """Stop reading (the stream's deletion ends the response; this is the fallback)."""
        self._thread.join(timeout)
        self._client.close()
        self._thread.join(timeout)

    def _read(self) -> None:
        path = f"/streams/{self.events.stream_id}/events"
        try:
            with self._client.stream("GET", path) as response:
                if response.status_code != 200:
                    self.events.error = f"GET {path} answered {response.status_code}"
                    return
                kind = "message"
                for line in response.iter_lines():
                    if line.startswith("event:"):
                        kind = line[6:].strip()
                        if kind == "end":
                            return
                    elif line.startswith("data:") and kind == "message":
                        self._record(time.time(), json.loads(line[5:]))
                    elif line == "":
                        kind = "message"
        except (httpx.HTTPError, RuntimeError) as error:  # closed under us at the end
            if not self.first_event.is_set():
                self.events.error = f"reading {path} failed: {error}"

    def _record(self, arrived: float, record: dict[str, Any]) -> None:
        timestamp = record.get("timestamp")
        if timestamp is None:
            return
        grabbed = datetime.fromisoformat(timestamp).timestamp()
        with self._lock:
            self.events.arrivals.append(arrived)
            self.events.grabbed.append(grabbed)
            self.events.epochs.append(int(record.get("epoch", 0)))
        self.first_event.set()
