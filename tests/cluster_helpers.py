"""Helpers for the Ray cluster tests: a local cluster, a cluster-backed app, an SSE recorder.

The local cluster is started by ``ray.init(num_cpus=...)`` in the test process, not by
``ray start``: ``ray stop`` stops every Ray process on the machine (another session's cluster
too), while a cluster owned by this process ends with ``ray.shutdown()`` and nothing else. The
workers are still separate processes (SIGKILL-able); the front door joins the cluster the process
already has (``connect.join_cluster`` keeps an existing connection).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from pipeline.cluster.loading import TrackerSpec
from pipeline.cluster.settings import ClusterSettings
from pipeline.service import ModelEngine, ServiceSettings, create_app
from tests.service_helpers import RunningServer, SseEvent, iter_sse, start_server
from tests.waiting import CallRecorder

MAX_OBJECTS = 3


def tiny_engine(model_dir: Path) -> ModelEngine:
    """The front door's engine on the tiny checkpoint, with the same recipe for the workers."""
    spec = TrackerSpec(str(model_dir), device="cpu")
    return ModelEngine(spec, model_name="tiny", max_objects=MAX_OBJECTS, worker_loader=spec)


def cluster_server(
    model_dir: Path,
    *,
    state_dir: Path,
    media_root: Path,
    workers: int = 2,
    max_streams_per_worker: int = 2,
    failover_timeout_s: float = 30.0,
) -> RunningServer:
    """A served app whose streams run on ``workers`` CPU workers of the process's cluster."""
    settings = ServiceSettings(
        state_dir=state_dir,
        media_root=media_root,
        allow_private_network=True,  # the RTSP camera is on 127.0.0.1
        cluster=ClusterSettings(
            workers=workers,
            gpus_per_worker=0,
            cpus_per_worker=1,
            max_streams_per_worker=max_streams_per_worker,
            failover_timeout_s=failover_timeout_s,
        ),
    )
    server = start_server(create_app(settings, engine=tiny_engine(model_dir)))
    server.wait_booted(120)
    return server


class EventRecorder(CallRecorder[SseEvent]):
    """Every SSE event of one stream, read on a thread until the stream or the server ends."""

    def __init__(self, server: RunningServer, stream_id: str) -> None:
        super().__init__()
        self._client = httpx.Client(
            base_url=server.url, headers=server.headers, timeout=httpx.Timeout(30.0, read=None)
        )
        self._subscribed = threading.Event()
        self._thread = threading.Thread(
            target=self._read, args=(stream_id,), name=f"sse-{stream_id}", daemon=True
        )
        self._thread.start()
        assert self._subscribed.wait(30), "the SSE subscription did not start"

    def _read(self, stream_id: str) -> None:
        try:
            with self._client.stream("GET", f"/streams/{stream_id}/events") as response:
                for event in iter_sse(response):
                    if event == "subscribed":
                        self._subscribed.set()
                    elif isinstance(event, SseEvent):
                        self.record(event)
        except httpx.HTTPError:
            pass  # the server went away: the recorder keeps what it got
        finally:
            self._subscribed.set()

    def close(self) -> None:
        self._client.close()

    def detections(self, after: int = 0) -> list[dict[str, Any]]:
        with self._condition:
            return [e.data for e in self.received[after:] if e.kind == "message"]

    def statuses(self) -> list[dict[str, Any]]:
        with self._condition:
            return [e.data for e in self.received if e.kind == "status"]

    def wait_frames(self, count: int, *, after: int = 0, epoch: int | None = None) -> None:
        """Until ``count`` detection records (of ``epoch``, if given) came after event ``after``."""

        def enough(received: list[SseEvent]) -> bool:
            records = [e.data for e in received[after:] if e.kind == "message"]
            if epoch is not None:
                records = [r for r in records if r["epoch"] == epoch]
            return len(records) >= count

        self.wait_for(enough, timeout=120)

    def describe(self, item: SseEvent) -> Any:
        if item.kind == "message":
            return (item.data["frame_id"], item.data["epoch"])
        return item.data


def tracker_ids(records: list[dict[str, Any]]) -> set[int]:
    """Every tracker id in some detection records."""
    return {obj["tracker_id"] for record in records for obj in record["objects"]}


def epochs(records: list[dict[str, Any]]) -> set[int]:
    return {record["epoch"] for record in records}


def recorders(server: RunningServer, stream_ids: list[str]) -> Iterator[EventRecorder]:
    for stream_id in stream_ids:
        yield EventRecorder(server, stream_id)
