"""``StreamManager``: the service's work in plain Python; the HTTP routes only call it.

One manager per server. It owns the streams (one ``InferencePipeline`` each, all on the engine's
one tracker and one session registry), enforces the stream limit, persists API-created streams in
the store, and starts the config and stored streams at boot. Every method a route calls is
synchronous and thread-safe (routes run them in the threadpool); user mistakes raise the typed
errors of ``pipeline.service.api_errors``.

Stream lifecycle: ``create`` builds sinks, SSE hub, WebRTC publisher and pipeline, starts it, then
stores the definition; ``delete`` stops the pipeline, closes every client and sink, frees the
tracker session and removes the row. ``close`` (shutdown) stops everything but keeps the rows, so
the same streams come back at the next start.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from aiortc.contrib.media import MediaRelay

from pipeline.errors import ConfigError, SourceError
from pipeline.loop.contracts import ManagedPipeline, PipelineFactory
from pipeline.loop.status_events import StatusUpdate, StatusUpdateHandler
from pipeline.redact import redact
from pipeline.service.api_errors import (
    InvalidStreamError,
    StreamConflictError,
    StreamLimitError,
    StreamNotFoundError,
)
from pipeline.service.engine import ModelEngine
from pipeline.service.log_text import printable
from pipeline.service.metrics import ServiceMetrics, SessionSnapshot, StreamSnapshot
from pipeline.service.models import ConfiguredStream, StreamInfo, StreamPatch, StreamSpec
from pipeline.service.outputs import StreamOutputs
from pipeline.service.payloads import jsonable
from pipeline.service.settings import DEFAULT_MAX_EVENTS, DEFAULT_MAX_STREAMS, IceSettings
from pipeline.service.sse import EventHub
from pipeline.service.store import StoredStream, StreamStore
from pipeline.service.webrtc import WebRTCPublisher
from sinks import Sink, SinkSpecError, parse_sink_spec
from tracker import SessionStats

logger = logging.getLogger(__name__)

Origin = Literal["api", "config"]

STOP_TIMEOUT_S = 10.0
"""How long ``delete`` waits for a terminated pipeline to wind down before moving on."""


def default_pipeline_factory(*args: Any, **kwargs: Any) -> ManagedPipeline:
    """``pipeline.InferencePipeline.init``, imported on first use (it pulls in the sources)."""
    from pipeline.loop.inference_pipeline import InferencePipeline

    return InferencePipeline.init(*args, **kwargs)


def new_stream_id() -> str:
    """12 hex digits: unguessable enough that ids in URLs leak nothing, short enough to type."""
    return secrets.token_hex(6)


@dataclass
class ManagedStream:
    """One running stream and everything attached to it."""

    id: str
    spec: StreamSpec
    origin: Origin
    created_at: datetime
    video_identifier: str
    pipeline: ManagedPipeline
    outputs: StreamOutputs
    events: EventHub
    webrtc: WebRTCPublisher
    paused: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


class StreamManager:
    """Creates, changes, reports and removes streams (see the module docstring).

    Args:
        engine: the shared model; streams cannot start until it is ready.
        store: where API-created streams persist; None keeps them in memory only.
        metrics: the service metrics (frame ages are observed per stream).
        max_streams: streams allowed at once; one more is a 429.
        pipeline_factory: builds a pipeline (``InferencePipeline.init``; tests pass a stand-in).
        ice: WebRTC ICE settings for viewers.
        event_buffer: events each SSE client may lag behind.
    """

    def __init__(
        self,
        engine: ModelEngine,
        *,
        store: StreamStore | None = None,
        metrics: ServiceMetrics | None = None,
        max_streams: int = DEFAULT_MAX_STREAMS,
        pipeline_factory: PipelineFactory = default_pipeline_factory,
        ice: IceSettings | None = None,
        event_buffer: int = DEFAULT_MAX_EVENTS,
    ) -> None:
        if max_streams < 1:
            raise ConfigError(f"max_streams must be >= 1, got {max_streams}")
        self.engine = engine
        self.store = store
        self.metrics = metrics or ServiceMetrics()
        self.max_streams = max_streams
        self.ice = ice or IceSettings()
        self.event_buffer = event_buffer
        self._pipeline_factory = pipeline_factory
        self._relay = MediaRelay()
        self._lock = threading.Lock()
        self._streams: dict[str, ManagedStream] = {}
        self.metrics.bind(self.snapshots, self._session_figures)

    # ---- queries -------------------------------------------------------------------------

    def __len__(self) -> int:
        with self._lock:
            return len(self._streams)

    def get(self, stream_id: str) -> ManagedStream:
        with self._lock:
            stream = self._streams.get(stream_id)
        if stream is None:
            raise StreamNotFoundError(stream_id)
        return stream

    def streams(self) -> list[ManagedStream]:
        with self._lock:
            return list(self._streams.values())

    def info(self, stream_id: str) -> StreamInfo:
        return self._info(self.get(stream_id))

    def list(self) -> list[StreamInfo]:
        return [self._info(stream) for stream in self.streams()]

    def _info(self, stream: ManagedStream) -> StreamInfo:
        status = jsonable(stream.pipeline.status().to_dict())
        status["outputs"] = jsonable(
            {
                "frames_dispatched": stream.outputs.frames_dispatched,
                "sse_clients": stream.events.subscriber_count,
                "sse_events_dropped": stream.events.dropped,
                "webrtc_viewers": stream.webrtc.viewers,
            }
        )
        spec = stream.spec
        return StreamInfo.redacted(
            id=stream.id,
            source=spec.source,
            classes=spec.classes,
            threshold=spec.threshold,
            max_fps=spec.max_fps,
            sinks=spec.sinks,
            video_identifier=stream.video_identifier,
            source_options=spec.source_options.as_kwargs() if spec.source_options else {},
            max_objects=spec.max_objects,
            origin=stream.origin,
            paused=stream.paused,
            created_at=stream.created_at,
            status=status,
        )

    def snapshots(self) -> Sequence[StreamSnapshot]:
        """What ``/metrics`` reads about every stream."""
        sessions = self.engine.session_stats()
        return [
            StreamSnapshot(
                stream_id=stream.id,
                sources=stream.pipeline.status().sources,
                sse_clients=stream.events.subscriber_count,
                sse_dropped=stream.events.dropped,
                webrtc_viewers=stream.webrtc.viewers,
                session=_session_snapshot(sessions.get(stream.video_identifier)),
            )
            for stream in self.streams()
        ]

    def _session_figures(self) -> tuple[int, dict[str, int]]:
        return self.engine.live_sessions(), self.engine.session_bytes()

    # ---- changes -------------------------------------------------------------------------

    def create(
        self,
        spec: StreamSpec,
        *,
        stream_id: str | None = None,
        origin: Origin = "api",
        created_at: datetime | None = None,
        paused: bool = False,
        persist: bool = True,
    ) -> StreamInfo:
        """Start a stream and (for API streams, with ``persist``) store it.

        Raises:
            ModelNotReadyError: the model is not loaded yet (503).
            StreamLimitError: ``max_streams`` streams already run (429).
            StreamConflictError: the id or video_identifier is taken (409).
            InvalidStreamError: the source or a sink can never work (422, naming the field).
        """
        self.engine.require_ready()
        with self._lock:
            stream_id = stream_id or new_stream_id()
            video_identifier = spec.video_identifier or stream_id
            self._check_room(stream_id, video_identifier)
            stream = self._start(
                stream_id,
                spec,
                origin=origin,
                video_identifier=video_identifier,
                created_at=created_at or datetime.now(UTC),
                paused=paused,
            )
            self._streams[stream_id] = stream
        if persist and origin == "api" and self.store is not None:
            self.store.put(
                StoredStream(id=stream_id, spec=spec, paused=paused, created_at=stream.created_at)
            )
        logger.info("stream %s started: %s", stream_id, printable(redact(spec.source)))
        return self._info(stream)

    def _check_room(self, stream_id: str, video_identifier: str) -> None:
        if stream_id in self._streams:
            raise StreamConflictError(f"a stream with id {stream_id!r} already exists")
        if len(self._streams) >= self.max_streams:
            raise StreamLimitError(
                f"this server runs at most {self.max_streams} streams and all are in use: "
                "delete one (DELETE /streams/{id}) or start the server with a higher --max-streams"
            )
        for other in self._streams.values():
            if other.video_identifier == video_identifier:
                raise StreamConflictError(
                    f"video_identifier {video_identifier!r} is used by stream {other.id!r}: "
                    "choose another or leave it out"
                )

    def _start(
        self,
        stream_id: str,
        spec: StreamSpec,
        *,
        origin: Origin,
        video_identifier: str,
        created_at: datetime,
        paused: bool,
    ) -> ManagedStream:
        """Launch the stream under its own object budget, set before its first frame."""
        # None clears whatever an earlier stream of this video_identifier left: the server's.
        self.engine.set_stream_budget(video_identifier, spec.max_objects)
        try:
            pipeline, outputs, events, webrtc = self._launch(
                stream_id, spec, video_identifier=video_identifier, paused=paused
            )
        except BaseException:
            self.engine.set_stream_budget(video_identifier, None)  # not started: leave no trace
            raise
        return ManagedStream(
            id=stream_id,
            spec=spec,
            origin=origin,
            created_at=created_at,
            video_identifier=video_identifier,
            pipeline=pipeline,
            outputs=outputs,
            events=events,
            webrtc=webrtc,
            paused=paused,
        )

    def _launch(
        self, stream_id: str, spec: StreamSpec, *, video_identifier: str, paused: bool
    ) -> tuple[ManagedPipeline, StreamOutputs, EventHub, WebRTCPublisher]:
        """Build the stream's outputs and pipeline and start it; nothing is left on failure."""
        user_sinks = _build_sinks(spec.sinks)
        events = EventHub(self.event_buffer)
        webrtc = WebRTCPublisher(stream_id, self._relay, self.ice)
        outputs = StreamOutputs(
            stream_id,
            user_sinks,
            events=events,
            webrtc=webrtc,
            metrics=self.metrics,
        )
        options = spec.source_options.as_kwargs() if spec.source_options else {}
        try:
            pipeline = self._pipeline_factory(
                spec.source,
                spec.classes,
                outputs,
                threshold=spec.threshold,
                max_fps=spec.max_fps,
                video_identifiers=[video_identifier],
                status_update_handlers=[_status_forwarder(stream_id, events)],
                registry=self.engine.registry,
                **options,
            )
        except SourceError as error:
            outputs.close()
            raise InvalidStreamError("source", redact(error)) from None
        except ConfigError as error:
            outputs.close()
            raise InvalidStreamError(_request_field(error, options), redact(error)) from None
        except ValueError as error:
            outputs.close()
            raise InvalidStreamError("source", redact(error)) from None
        except BaseException:
            outputs.close()
            raise
        outputs.attach(pipeline.report_sink_error)
        try:
            pipeline.start(use_main_thread=False)
            if paused:
                pipeline.pause_stream()
        except BaseException:
            pipeline.terminate()
            outputs.close()
            raise
        return pipeline, outputs, events, webrtc

    def update(self, stream_id: str, patch: StreamPatch) -> StreamInfo:
        """Change classes and/or threshold from the next frame on, without reseeding.

        A class change edits the running tracker session: added classes are detected, removed
        classes' tracks end, every other track keeps its tracker id.
        """
        stream = self.get(stream_id)
        with stream.lock:
            setters: dict[str, Callable[[Any], None]] = {
                "classes": stream.pipeline.set_class_names,
                "threshold": stream.pipeline.set_threshold,
            }
            changes: dict[str, Any] = {}
            for field_name, set_value in setters.items():
                value = getattr(patch, field_name)
                if value is None or value == getattr(stream.spec, field_name):
                    continue
                try:
                    set_value(value)
                except (ConfigError, ValueError) as error:
                    raise InvalidStreamError(field_name, redact(error)) from None
                changes[field_name] = value
            if changes:
                stream.spec = stream.spec.model_copy(update=changes)
                self._persist(stream, spec=stream.spec)
                logger.info("stream %s changed: %s", stream_id, sorted(changes))
        return self._info(stream)

    def pause(self, stream_id: str) -> StreamInfo:
        """Stop decoding (a live camera is disconnected, a file waits where it is)."""
        return self._set_paused(stream_id, True)

    def resume(self, stream_id: str) -> StreamInfo:
        """Decode again (a live camera reconnects with a new epoch; ids continue)."""
        return self._set_paused(stream_id, False)

    def _set_paused(self, stream_id: str, paused: bool) -> StreamInfo:
        stream = self.get(stream_id)
        with stream.lock:
            if stream.paused != paused:
                if paused:
                    stream.pipeline.pause_stream()
                else:
                    stream.pipeline.resume_stream()
                stream.paused = paused
                self._persist(stream, paused=paused)
        return self._info(stream)

    def _persist(self, stream: ManagedStream, **changes: Any) -> None:
        if stream.origin == "api" and self.store is not None:
            self.store.update(stream.id, **changes)

    def delete(self, stream_id: str) -> None:
        """Stop the stream, end its clients, free its tracker session and forget it."""
        with self._lock:
            stream = self._streams.pop(stream_id, None)
        if stream is None:
            raise StreamNotFoundError(stream_id)
        if stream.origin == "api" and self.store is not None:
            self.store.delete(stream_id)
        self._stop(stream)
        logger.info("stream %s deleted", stream_id)

    def _stop(self, stream: ManagedStream) -> None:
        stream.webrtc.close_soon()
        stream.events.close()
        try:
            stream.pipeline.terminate()
            if not stream.pipeline.join(STOP_TIMEOUT_S):
                logger.warning("stream %s did not stop within %.0f s", stream.id, STOP_TIMEOUT_S)
        finally:
            stream.outputs.close()
            self.metrics.forget(stream.id)
        if self.engine.ready:
            # A terminated pipeline may still have one frame inside the model: free the session
            # once that frame is out, never from under it.
            registry = self.engine.registry
            if registry.wait_idle(STOP_TIMEOUT_S, stream.video_identifier):
                registry.close(stream.video_identifier)
            else:
                logger.warning("stream %s: its last frame is still inside the model", stream.id)
            with self._lock:  # a stream created meanwhile under this identifier keeps its own
                reused = any(
                    other.video_identifier == stream.video_identifier
                    for other in self._streams.values()
                )
            if not reused:
                self.engine.set_stream_budget(stream.video_identifier, None)

    # ---- boot and shutdown ---------------------------------------------------------------

    def start_boot_streams(self, configured: Iterable[ConfiguredStream] = ()) -> None:
        """Start the config's streams, then the stored ones; a stream that fails is logged, skipped.

        One camera with a typo must not keep the other cameras of a site from starting. A stored
        stream whose id a config stream now uses is skipped (the config wins).
        """
        configured_ids = set()
        for entry in configured:
            configured_ids.add(entry.id)
            spec = StreamSpec.model_validate(entry.model_dump(exclude={"id"}))
            self._boot_one(entry.id, spec, origin="config")
        if self.store is None:
            return
        for row in self.store.load():
            if row.id in configured_ids:
                logger.warning("stored stream %s skipped: the config defines that id", row.id)
                continue
            self._boot_one(
                row.id, row.spec, origin="api", created_at=row.created_at, paused=row.paused
            )

    def _boot_one(self, stream_id: str, spec: StreamSpec, **kwargs: Any) -> None:
        try:
            self.create(spec, stream_id=stream_id, persist=False, **kwargs)
        except InvalidStreamError as error:
            logger.error(
                "stream %s not started: %s: %s", stream_id, error.field, printable(redact(error))
            )
        except Exception as error:
            logger.error("stream %s not started: %s", stream_id, printable(redact(error)))

    def end_event_streams(self) -> None:
        """End every SSE response now (shutdown): they never finish on their own."""
        for stream in self.streams():
            stream.events.close()

    async def close_viewers(self) -> None:
        """Close every WebRTC peer (on the event loop, before it stops)."""
        for stream in self.streams():
            await stream.webrtc.close()

    def close(self) -> None:
        """Stop every stream, keeping stored definitions for the next start."""
        with self._lock:
            streams = list(self._streams.values())
            self._streams.clear()
        for stream in streams:
            try:
                self._stop(stream)
            except Exception:
                logger.exception("stopping stream %s failed", stream.id)


def _build_sinks(specs: Iterable[str]) -> list[Sink]:
    """Open the stream's sinks; on any failure close those already open and name the field."""
    opened: list[Sink] = []
    try:
        for spec in specs:
            kind = spec.strip().partition(":")[0].lower()
            if kind == "screen":
                raise InvalidStreamError(
                    "sinks",
                    "the 'screen' sink needs a display; a server has none: watch the stream at "
                    "GET /streams/{id}/view instead",
                )
            try:
                opened.append(parse_sink_spec(spec))
            except SinkSpecError as error:
                raise InvalidStreamError("sinks", redact(error)) from None
    except BaseException:
        for sink in opened:
            sink.close()
        raise
    return opened


def _status_forwarder(stream_id: str, events: EventHub) -> StatusUpdateHandler:
    """A ``status_update_handler`` that sends the pipeline's status events to SSE clients."""

    def forward(update: StatusUpdate) -> None:
        payload = {
            "stream_id": stream_id,
            "timestamp": update.timestamp,
            "severity": update.severity,
            "event_type": update.event_type,
            "payload": update.payload,
        }
        events.publish_status(jsonable(payload))

    return forward


def _session_snapshot(stats: SessionStats | None) -> SessionSnapshot | None:
    """What ``/metrics`` shows of a stream's tracker session; None before its first frame."""
    if stats is None:
        return None
    return SessionSnapshot(
        objects_live=stats.objects_live,
        tentative_tracks=stats.tentative_tracks,
        evictions=dict(stats.evictions),
    )


def _request_field(error: ConfigError, source_options: Mapping[str, Any]) -> str:
    """The request field a pipeline ``ConfigError`` is about, from the option it names."""
    if error.field == "video_identifiers":
        return "video_identifier"
    if error.field is not None and error.field in source_options:
        return "source_options"
    return "source"
