"""``StreamWorker``: one device's streams, run where the device is.

A plain class: ``pipeline.cluster.connect.worker_actor_class`` turns it into a Ray actor at run
time, so importing ``pipeline`` never imports Ray. One worker loads the model once (the same
model and options as the front door's ``ModelEngine``; on a real cluster the model path or Hub
cache must exist on every node that runs a worker), keeps its own ``SessionRegistry`` (the same
limits: sessions, default object budget) and runs each stream placed on it with an
``InferencePipeline``, exactly as a single process would.

Everything a stream writes happens here: JSONL and video sinks write files on the worker's
machine (paths are the front door's, checked there: on several machines use a shared mount or
read them where the worker ran), webhooks and UDP are sent from here. Only the results the front
door's live clients need travel back, through a bounded buffer per stream that the front door
pulls with ``poll`` (``pipeline.cluster.results``).

Thread model: Ray runs the actor's methods on a thread pool (``max_concurrency``); ``poll``
blocks on a condition while pipelines push results, so one front-door poller per worker pulls
without a busy loop while other calls (a class change, a stop) go through meanwhile.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import supervision as sv

from pipeline.cluster.id_grants import GrantGate
from pipeline.cluster.results import CallOutcome, PollReply, ResultBuffer, StreamLaunch, WireFrame
from pipeline.errors import ConfigError, SourceError
from pipeline.loop.contracts import ManagedPipeline
from pipeline.loop.status_events import StatusUpdate
from pipeline.redact import redact
from pipeline.video_frame import VideoFrame
from sinks import Sink, SinkSpecError, parse_sink_spec
from tracker import SessionRegistry

logger = logging.getLogger(__name__)

STOP_TIMEOUT_S = 10.0
"""How long ``stop_stream`` waits for a pipeline (and its last frame in the model) to finish."""
RUNTIME_CALLS = frozenset(
    {
        "set_class_names",
        "set_threshold",
        "pause_stream",
        "resume_stream",
        "add_prompt",
        "remove_object",
    }
)
"""Pipeline methods the front door may forward to a running stream (``StreamWorker.call``)."""
STATUS_EVERY_S = 0.25
"""How stale a stream's status at the front door may get: a poll carries every stream's
``status()`` (percentiles over its latency windows) at most this often, and whenever a status
event comes with it (``PIPELINE_ENDED`` must find the final state)."""


class ResultTap(Sink):
    """The stream's front-door outputs as one of its sinks: packs results into its buffer."""

    def __init__(self, stream: _WorkerStream, wake: threading.Condition) -> None:
        super().__init__(name=f"frontdoor:{stream.launch.stream_id}")
        self._stream = stream
        self._wake = wake

    def _write(self, detections: sv.Detections, frame: VideoFrame) -> None:
        stream = self._stream
        wire = WireFrame.pack(
            stream.launch.stream_id, detections, frame, with_image=stream.want_images
        )
        stream.results.push(wire)
        with self._wake:
            self._wake.notify_all()


@dataclass
class _WorkerStream:
    launch: StreamLaunch
    results: ResultBuffer[WireFrame]
    updates: list[StatusUpdate] = field(default_factory=list)
    pipeline: ManagedPipeline | None = None
    want_images: bool = False


class StreamWorker:
    """Runs the streams placed on it (see the module docstring).

    Args:
        name: how the front door and the API name this worker (``worker-0``).
        loader: loads the tracker (``pipeline.cluster.loading.TrackerSpec``); called once here.
        max_sessions / max_objects: the registry's limits, as the front door's engine has them.
        result_buffer: results per stream kept for the front door (its SSE ``event_buffer``).
        pipeline_factory: ``InferencePipeline.init`` unless a test gives another.
    """

    def __init__(
        self,
        name: str,
        loader: Callable[[], Any],
        *,
        max_sessions: int = 64,
        max_objects: int | None = None,
        result_buffer: int = 32,
        pipeline_factory: Callable[..., ManagedPipeline] | None = None,
    ) -> None:
        started = time.monotonic()
        self.name = name
        tracker = loader()
        if max_objects is None:
            self.registry = SessionRegistry(tracker, max_sessions=max_sessions)
        else:
            self.registry = SessionRegistry(
                tracker, max_sessions=max_sessions, max_objects=max_objects
            )
        self.load_seconds = time.monotonic() - started
        self._result_buffer = result_buffer
        self._factory = pipeline_factory
        self._wake = threading.Condition()
        self._grants = GrantGate(self._wake)
        self._streams: dict[str, _WorkerStream] = {}
        self._status_sent_at = 0.0
        logger.info("worker %s: model loaded in %.1f s", name, self.load_seconds)

    # ---- about the worker ----------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """Who answers: the process id (a test kills it), the node, the model load time."""
        return {
            "name": self.name,
            "pid": os.getpid(),
            "host": os.uname().nodename,
            "load_seconds": round(self.load_seconds, 3),
            "streams": sorted(self._streams),
        }

    # ---- streams ---------------------------------------------------------------------------

    def start_stream(self, launch: StreamLaunch) -> CallOutcome:
        """Open the stream's sinks and source and start it; a user error comes back as one line."""
        try:
            self._start(launch)
        except SourceError as error:
            return CallOutcome(error_kind="SourceError", message=redact(error))
        except ConfigError as error:
            return CallOutcome(error_kind="ConfigError", message=redact(error), field=error.field)
        except SinkSpecError as error:
            return CallOutcome(error_kind="InvalidStream", message=redact(error), field="sinks")
        except ValueError as error:
            return CallOutcome(error_kind="ValueError", message=redact(error))
        return CallOutcome()

    def _start(self, launch: StreamLaunch) -> None:
        if launch.stream_id in self._streams:
            raise ValueError(f"stream {launch.stream_id!r} already runs on {self.name}")
        stream = _WorkerStream(launch, ResultBuffer(self._result_buffer))
        user_sinks = _open_sinks(launch.sinks)
        vid = launch.video_identifier
        self.registry.set_max_objects(vid, launch.max_objects)
        self.registry.set_id_floor(vid, launch.id_floor, reserve=self._grants.reserve_for(vid))

        def record(update: StatusUpdate) -> None:
            with self._wake:
                stream.updates.append(update)
                self._wake.notify_all()

        factory = self._factory or _default_factory
        options = dict(launch.source_options)
        if launch.epoch:
            options["first_epoch"] = launch.epoch
        try:
            pipeline = factory(
                launch.source,
                list(launch.classes),
                [*user_sinks, ResultTap(stream, self._wake)],
                threshold=launch.threshold,
                max_fps=launch.max_fps,
                video_identifiers=[vid],
                status_update_handlers=[record],
                registry=self.registry,
                **options,
            )
        except BaseException:
            for sink in user_sinks:
                sink.close()
            self._forget_identifier(vid)
            raise
        stream.pipeline = pipeline
        with self._wake:
            self._streams[launch.stream_id] = stream
        pipeline.start(use_main_thread=False)
        if launch.paused:
            pipeline.pause_stream()

    def call(self, stream_id: str, method: str, args: Sequence[Any]) -> CallOutcome:
        """Forward one runtime change to a stream's pipeline (``RUNTIME_CALLS``)."""
        if method not in RUNTIME_CALLS:
            raise ValueError(f"not a runtime call: {method}")
        stream = self._streams.get(stream_id)
        if stream is None or stream.pipeline is None:
            return CallOutcome(error_kind="ValueError", message=f"{stream_id}: not on {self.name}")
        try:
            value = getattr(stream.pipeline, method)(*args)
        except KeyError as error:
            detail = str(error.args[0]) if error.args else ""
            return CallOutcome(error_kind="KeyError", message=detail)
        except ConfigError as error:
            return CallOutcome(error_kind="ConfigError", message=redact(error), field=error.field)
        except ValueError as error:
            return CallOutcome(error_kind="ValueError", message=redact(error))
        if method == "add_prompt":
            value = [int(i) for i in value]
        return CallOutcome(value=value)

    def set_want_images(self, stream_id: str, wanted: bool) -> None:
        stream = self._streams.get(stream_id)
        if stream is not None:
            stream.want_images = wanted

    def stop_stream(self, stream_id: str, drain: bool = False) -> int:
        """Stop the stream, free its session; the exact highest tracker id it ever emitted.

        ``drain``: as ``InferencePipeline.terminate(drain=True)``: frames already decoded still
        reach the sinks. The returned id is exact once no frame is inside the model.
        """
        stream = self._streams.get(stream_id)
        if stream is None:
            return -1
        vid = stream.launch.video_identifier
        pipeline = stream.pipeline
        if not drain:  # a frame waiting for ids gives up at once: it emits nothing
            self._grants.close(vid)
        if pipeline is not None:
            if drain:
                pipeline.terminate(drain=True)
                if not pipeline.join(STOP_TIMEOUT_S):
                    pipeline.terminate()
            else:
                pipeline.terminate()
            pipeline.join(STOP_TIMEOUT_S)
        self._grants.close(vid)
        idle = self.registry.wait_idle(STOP_TIMEOUT_S, vid)
        highest = self.registry.highest_tracker_id(vid)
        self._forget_identifier(vid)
        with self._wake:
            self._streams.pop(stream_id, None)
            self._wake.notify_all()
        return highest if idle else -1

    def _forget_identifier(self, video_identifier: str) -> None:
        self.registry.close(video_identifier)
        self.registry.set_max_objects(video_identifier, None)
        self.registry.set_id_floor(video_identifier, 0)  # keeps the ids, stops reserving

    # ---- results ---------------------------------------------------------------------------

    def poll(self, grants: Mapping[str, int], timeout: float) -> PollReply:
        """Apply ``grants``, then wait up to ``timeout`` for anything new and return it all.

        Returns at once when results, status updates or id requests are waiting, so a stream's
        first new id costs one round trip, and an idle worker costs one call per ``timeout``.
        """
        self._grants.apply(grants)
        deadline = time.monotonic() + timeout
        with self._wake:
            while not self._has_news():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._wake.wait(remaining)
            streams = dict(self._streams)
            updates = [(sid, u) for sid, s in streams.items() for u in s.updates]
            for stream in streams.values():
                stream.updates = []
            reservations = self._grants.pending()
        frames = [frame for stream in streams.values() for frame in stream.results.take()]
        now = time.monotonic()
        statuses = {}
        if updates or now - self._status_sent_at >= STATUS_EVERY_S:
            self._status_sent_at = now
            statuses = {
                sid: s.pipeline.status() for sid, s in streams.items() if s.pipeline is not None
            }
        highest = {
            s.launch.video_identifier: self.registry.highest_tracker_id(s.launch.video_identifier)
            for s in streams.values()
        }
        dropped = {sid: s.results.dropped for sid, s in streams.items()}
        return PollReply(frames, updates, statuses, reservations, highest, dropped)

    def _has_news(self) -> bool:
        return bool(self._grants.pending()) or any(
            stream.updates or len(stream.results) for stream in self._streams.values()
        )

    def shutdown(self) -> None:
        """Stop every stream (the front door is going away); the actor is killed after this."""
        for stream_id in list(self._streams):
            self.stop_stream(stream_id)


def _default_factory(*args: Any, **kwargs: Any) -> ManagedPipeline:
    from pipeline.loop.inference_pipeline import InferencePipeline

    return InferencePipeline.init(*args, **kwargs)


def _open_sinks(specs: Sequence[str]) -> list[Sink]:
    """Open the stream's sinks on this worker; on failure close those already open.

    Raises:
        SinkSpecError: a spec that cannot work here (``screen``: a worker has no display).
    """
    opened: list[Sink] = []
    try:
        for spec in specs:
            if spec.strip().partition(":")[0].lower() == "screen":
                raise SinkSpecError(
                    "the 'screen' sink needs a display; a worker has none: watch the stream at "
                    "GET /streams/{id}/view instead"
                )
            opened.append(parse_sink_spec(spec))
    except BaseException:
        for sink in opened:
            sink.close()
        raise
    return opened
