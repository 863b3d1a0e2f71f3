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

A stream whose source finished by itself (a file at its end) is recorded as ended in the store: the
next boot lists it (status ``ENDED``, its last status) and does not run it again; ``restart`` runs
a stream again from the start of its source. Every run of a video_identifier continues its epochs,
tracker ids and files where the earlier runs stopped (``pipeline.service.run_history``).
"""

from __future__ import annotations

import functools
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from aiortc.contrib.media import MediaRelay

from pipeline.cluster.settings import ClusterSettings
from pipeline.errors import ConfigError, SourceError
from pipeline.loop.contracts import ManagedPipeline, PipelineFactory
from pipeline.loop.status import PipelineState
from pipeline.loop.status_events import EventType, StatusUpdate, StatusUpdateHandler
from pipeline.redact import redact
from pipeline.service.api_access import ApiAccess, StreamTargets
from pipeline.service.api_errors import (
    InvalidStreamError,
    StreamConflictError,
    StreamLimitError,
    StreamNotFoundError,
    TrackedObjectNotFoundError,
)
from pipeline.service.engine import ModelEngine
from pipeline.service.log_text import printable
from pipeline.service.metrics import ServiceMetrics, SessionSnapshot, StreamSnapshot
from pipeline.service.models import (
    ConfiguredStream,
    PromptRequest,
    PromptResult,
    StreamInfo,
    StreamPatch,
    StreamSpec,
)
from pipeline.service.outputs import StreamOutputs
from pipeline.service.payloads import jsonable
from pipeline.service.run_history import RunHistory, RunWatcher, sinks_for_run
from pipeline.service.settings import DEFAULT_MAX_EVENTS, DEFAULT_MAX_STREAMS, IceSettings
from pipeline.service.sse import EventHub
from pipeline.service.store import StoredStream, StreamStore
from pipeline.service.stream_prompts import (
    check_frame_id,
    latest_frame_id,
    refused_after_check,
    visual_prompt,
)
from pipeline.service.viewer_slots import ViewerSlots
from pipeline.service.webrtc import WebRTCPublisher
from pipeline.sources import SourceState
from sinks import Sink, SinkSpecError, parse_sink_spec
from tracker import SessionStats

if TYPE_CHECKING:
    from pipeline.cluster.pool import StreamCluster

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
        access: what API streams may open (roots, network policy); the default lets them write
            no file, read no file and reach no internal address.
        viewer_slots: the WebRTC viewer caps every stream's viewers count against.
        cluster: run the streams on Ray workers (``pipeline.cluster``): placement, failover and
            per-worker limits; results come back to this process's SSE/WebRTC/metrics outputs.
            None runs them here and never imports Ray. ``start_cluster`` starts the workers.
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
        access: ApiAccess | None = None,
        viewer_slots: ViewerSlots | None = None,
        cluster: ClusterSettings | None = None,
    ) -> None:
        if max_streams < 1:
            raise ConfigError(f"max_streams must be >= 1, got {max_streams}")
        self.engine = engine
        self.store = store
        self.metrics = metrics or ServiceMetrics()
        self.max_streams = max_streams
        self.ice = ice or IceSettings()
        self.event_buffer = event_buffer
        self.access = access or ApiAccess()
        self.viewer_slots = viewer_slots or ViewerSlots()
        self._pipeline_factory = pipeline_factory
        self._relay = MediaRelay()
        self._lock = threading.Lock()
        self._streams: dict[str, ManagedStream] = {}
        # Stored streams that ended before this boot: listed, not running, until restarted.
        self._ended: dict[str, StoredStream] = {}
        self.history = RunHistory(store)
        self.cluster: StreamCluster | None = None
        if cluster is not None:
            from pipeline.cluster.pool import StreamCluster  # imports Ray

            self.cluster = StreamCluster(
                cluster, engine=engine, history=self.history, result_buffer=event_buffer
            )
        self.metrics.bind(self.snapshots, self._session_figures)

    # ---- queries -------------------------------------------------------------------------

    def __len__(self) -> int:
        with self._lock:
            return len(self._streams)

    def start_cluster(self) -> None:
        """Start the Ray workers (boot, after the model loaded); nothing without a cluster.

        Raises:
            Exception: Ray could not be reached or a worker failed to load its model.
        """
        if self.cluster is not None:
            self.cluster.start()

    def get(self, stream_id: str) -> ManagedStream:
        """The running stream ``stream_id``.

        Raises:
            StreamNotFoundError: no stream has that id (404).
            StreamConflictError: the stream ended before this boot and runs nothing (409).
        """
        with self._lock:
            stream = self._streams.get(stream_id)
            ended = stream_id in self._ended
        if ended:
            raise StreamConflictError(
                f"stream {stream_id!r} has ended: POST /streams/{stream_id}/restart runs it again"
            )
        if stream is None:
            raise StreamNotFoundError(stream_id)
        return stream

    def streams(self) -> list[ManagedStream]:
        with self._lock:
            return list(self._streams.values())

    def info(self, stream_id: str) -> StreamInfo:
        with self._lock:
            ended = self._ended.get(stream_id)
        if ended is not None:
            return _ended_info(ended)
        return self._info(self.get(stream_id))

    def list(self) -> list[StreamInfo]:
        """Running streams (in start order), then those that ended before this boot."""
        with self._lock:
            ended = list(self._ended.values())
        return [self._info(stream) for stream in self.streams()] + [
            _ended_info(row) for row in ended
        ]

    def _info(self, stream: ManagedStream) -> StreamInfo:
        return _stream_info(
            stream.id,
            stream.spec,
            video_identifier=stream.video_identifier,
            origin=stream.origin,
            paused=stream.paused,
            created_at=stream.created_at,
            status=_status(stream.pipeline, stream.outputs, stream.events, stream.webrtc),
            worker=getattr(stream.pipeline, "worker", None),
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

        An API stream's source and sinks must pass ``self.access`` (roots, network policy), checked
        before the lock (DNS may be slow); its sink files are created new, except that an API
        stream started again (at boot or by ``restart``: not ``persist``) may reopen its own.

        Raises:
            ModelNotReadyError: the model is not loaded yet (503).
            StreamLimitError: ``max_streams`` streams already run (429).
            StreamConflictError: the id or video_identifier is taken (409).
            InvalidStreamError: the source or a sink can never work (422, naming the field).
        """
        self.engine.require_ready()
        self._check_class_texts(spec.classes)
        first_epoch = self._first_epoch(spec.video_identifier or stream_id)
        run_sinks = sinks_for_run(spec.sinks, first_epoch=first_epoch)
        checked = self.access.check(spec.source, run_sinks, from_api=origin == "api")
        with self._lock:
            stream_id = stream_id or new_stream_id()
            video_identifier = spec.video_identifier or stream_id
            self._check_room(stream_id, video_identifier)
            targets = self.access.open(checked, reopen=origin == "api" and not persist)
            try:
                stream = self._start(
                    stream_id,
                    spec,
                    targets,
                    origin=origin,
                    video_identifier=video_identifier,
                    created_at=created_at or datetime.now(UTC),
                    paused=paused,
                    first_epoch=first_epoch,
                )
            except BaseException:
                targets.discard()
                raise
            self._streams[stream_id] = stream
        if persist and origin == "api" and self.store is not None:
            self.store.put(
                StoredStream(id=stream_id, spec=spec, paused=paused, created_at=stream.created_at)
            )
            self._ended_by_itself(stream_id, stream.pipeline)  # a short file may be done already
        logger.info("stream %s started: %s", stream_id, printable(redact(spec.source)))
        return self._info(stream)

    def _check_class_texts(self, classes: Sequence[str]) -> None:
        """422 naming ``classes`` for a class text longer than the model reads, before any work."""
        check = getattr(self.engine.tracker, "check_class_texts", None)
        if check is None:  # a stand-in tracker without a tokenizer
            return
        try:
            check(classes, field="classes")
        except ValueError as error:
            raise InvalidStreamError("classes", redact(error)) from None

    def _first_epoch(self, video_identifier: str | None) -> int:
        """The epoch a run of ``video_identifier`` starts at (a new random id has no history)."""
        return self.history.of(video_identifier).next_epoch if video_identifier else 0

    def _check_room(self, stream_id: str, video_identifier: str) -> None:
        if stream_id in self._streams or stream_id in self._ended:
            raise StreamConflictError(f"a stream with id {stream_id!r} already exists")
        if len(self._streams) >= self.max_streams:
            raise StreamLimitError(
                f"this server runs at most {self.max_streams} streams and all are in use: "
                "delete one (DELETE /streams/{id}) or start the server with a higher --max-streams"
            )
        users = [(other.id, other.video_identifier) for other in self._streams.values()]
        # An ended stream keeps its identifier until it is deleted.
        users += [(row.id, _identifier_of(row)) for row in self._ended.values()]
        for other_id, other_identifier in users:
            if other_identifier == video_identifier:
                raise StreamConflictError(
                    f"video_identifier {video_identifier!r} is used by stream {other_id!r}: "
                    "choose another or leave it out"
                )
        if self.cluster is not None:
            self.cluster.check_room()  # 429 naming max_streams_per_worker

    def _start(
        self,
        stream_id: str,
        spec: StreamSpec,
        targets: StreamTargets,
        *,
        origin: Origin,
        video_identifier: str,
        created_at: datetime,
        paused: bool,
        first_epoch: int = 0,
    ) -> ManagedStream:
        """Launch the stream under its own object budget, set before its first frame.

        The run starts at ``first_epoch`` with tracker ids above every id its video_identifier
        ever emitted (``RunHistory.begin_run``).
        """
        # None clears whatever an earlier stream of this video_identifier left: the server's.
        local = self.cluster is None  # a remote stream's budget and ids live on its worker
        if local:
            self.engine.set_stream_budget(video_identifier, spec.max_objects)
        try:
            if local:
                self.history.begin_run(self.engine.registry, video_identifier, first_epoch)
            pipeline, outputs, events, webrtc = self._launch(
                stream_id,
                spec,
                targets,
                video_identifier=video_identifier,
                paused=paused,
                first_epoch=first_epoch,
            )
        except BaseException:
            if local:  # not started: leave no trace
                self.engine.set_stream_budget(video_identifier, None)
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
        self,
        stream_id: str,
        spec: StreamSpec,
        targets: StreamTargets,
        *,
        video_identifier: str,
        paused: bool,
        first_epoch: int = 0,
    ) -> tuple[ManagedPipeline, StreamOutputs, EventHub, WebRTCPublisher]:
        """Build the stream's outputs and pipeline and start it; nothing is left on failure.

        ``targets`` are what the source and sinks open (``spec``'s, once ``self.access`` passed
        them); ``spec`` is what the stream shows and stores.
        """
        # A remote stream's sinks are opened and run on its worker.
        user_sinks = _build_sinks(targets.sinks) if self.cluster is None else []
        events = EventHub(self.event_buffer)
        webrtc = WebRTCPublisher(stream_id, self._relay, self.ice, self.viewer_slots)
        outputs = StreamOutputs(
            stream_id,
            user_sinks,
            events=events,
            webrtc=webrtc,
            metrics=self.metrics,
        )
        options = spec.source_options.as_kwargs() if spec.source_options else {}
        run_options = {**options, "first_epoch": first_epoch} if first_epoch else options
        watcher = RunWatcher(self.history, video_identifier)
        handlers: list[StatusUpdateHandler] = [_status_forwarder(stream_id, events), watcher]
        try:
            pipeline: ManagedPipeline
            if self.cluster is not None:
                pipeline = self._launch_remote(
                    self.cluster,
                    stream_id,
                    spec,
                    targets,
                    outputs=outputs,
                    webrtc=webrtc,
                    handlers=handlers,
                    video_identifier=video_identifier,
                    paused=paused,
                    first_epoch=first_epoch,
                )
            else:
                pipeline = self._pipeline_factory(
                    targets.source,
                    spec.classes,
                    outputs,
                    threshold=spec.threshold,
                    max_fps=spec.max_fps,
                    video_identifiers=[video_identifier],
                    status_update_handlers=handlers,
                    registry=self.engine.registry,
                    **run_options,
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
        watcher.on_ended = functools.partial(self._ended_by_itself, stream_id, pipeline)
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

    def _launch_remote(
        self,
        cluster: StreamCluster,
        stream_id: str,
        spec: StreamSpec,
        targets: StreamTargets,
        *,
        outputs: StreamOutputs,
        webrtc: WebRTCPublisher,
        handlers: Sequence[StatusUpdateHandler],
        video_identifier: str,
        paused: bool,
        first_epoch: int,
    ) -> ManagedPipeline:
        """Place the stream on a Ray worker and start it there (``StreamCluster.launch``).

        Raises what ``InferencePipeline.init`` would (``SourceError``, ``ConfigError``,
        ``ValueError``), ``InvalidStreamError`` for a sink the worker refused, and
        ``StreamLimitError`` when every worker is full.
        """
        from pipeline.cluster.remote_pipeline import RemotePipeline
        from pipeline.cluster.results import StreamLaunch

        launch = StreamLaunch(
            stream_id=stream_id,
            video_identifier=video_identifier,
            source=targets.source,
            classes=tuple(spec.classes),
            threshold=spec.threshold,
            max_fps=spec.max_fps,
            sinks=tuple(targets.sinks),
            source_options=spec.source_options.as_kwargs() if spec.source_options else {},
            max_objects=spec.max_objects,
            paused=paused,
            epoch=first_epoch,
        )
        pipeline = RemotePipeline(
            cluster,
            launch,
            outputs,
            status_update_handlers=handlers,
            wants_images=lambda: webrtc.viewers > 0,
            model=self.engine.model_name,
        )
        cluster.launch(pipeline)
        return pipeline

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
                if field_name == "classes":
                    self._check_class_texts(value)
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

    def add_prompt(self, stream_id: str, request: PromptRequest) -> PromptResult:
        """Track what ``request`` points at in the stream, from its next frame on.

        Raises:
            StreamNotFoundError: no stream has that id (404).
            StreamConflictError: the stream is not running, or its object budget is full of
                prompted objects (409).
            InvalidStreamError: a field is refused (422, naming it); the stream runs on.
        """
        stream = self.get(stream_id)
        prompt = visual_prompt(request)
        latest = latest_frame_id(stream_id, stream.pipeline.status(), request.source_id)
        check_frame_id(request.frame_id, latest)
        try:
            tracker_ids = stream.pipeline.add_prompt(prompt, request.source_id)
        except ValueError as error:
            raise refused_after_check(stream_id, error, stream.pipeline) from None
        logger.info("stream %s: prompt for objects %s", stream_id, tracker_ids)
        frame_id = request.frame_id if request.frame_id is not None else latest
        return PromptResult(tracker_ids=[int(i) for i in tracker_ids], frame_id=frame_id)

    def remove_object(self, stream_id: str, tracker_id: int, source_id: int | None = None) -> None:
        """End one live object of the stream now (prompted or found by a class); its id retires.

        Raises:
            StreamNotFoundError: no stream has that id (404).
            TrackedObjectNotFoundError: the stream has no live object ``tracker_id`` (404).
            StreamConflictError: the stream is not running (409).
            InvalidStreamError: ``source_id`` is not a source of the stream (422).
        """
        stream = self.get(stream_id)
        latest_frame_id(stream_id, stream.pipeline.status(), source_id)
        try:
            stream.pipeline.remove_object(tracker_id, source_id)
        except KeyError:
            raise TrackedObjectNotFoundError(stream_id, tracker_id) from None
        except ValueError as error:
            raise refused_after_check(stream_id, error, stream.pipeline) from None
        logger.info("stream %s: object %d removed", stream_id, tracker_id)

    def _persist(self, stream: ManagedStream, **changes: Any) -> None:
        if stream.origin == "api" and self.store is not None:
            self.store.update(stream.id, **changes)

    def delete(self, stream_id: str) -> None:
        """Stop the stream, end its clients, free its tracker session and forget it."""
        with self._lock:
            stream = self._streams.pop(stream_id, None)
            ended = self._ended.pop(stream_id, None)
        if ended is not None and self.store is not None:
            self.store.delete(stream_id)
            logger.info("stream %s deleted", stream_id)
            return
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
        if self.engine.ready and self.cluster is None:
            # A terminated pipeline may still have one frame inside the model: free the session
            # once that frame is out, never from under it.
            registry = self.engine.registry
            idle = registry.wait_idle(STOP_TIMEOUT_S, stream.video_identifier)
            if idle:
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
                if idle:  # no frame can take an id any more: record the exact highest
                    self.history.end_run(registry, stream.video_identifier)

    def _ended_by_itself(self, stream_id: str, pipeline: ManagedPipeline) -> None:
        """If ``pipeline`` ended without ``terminate()``, store its API stream as ended.

        Only when every source ENDED: a source in ERROR (a camera that gave up, a file that
        cannot be read) did not finish, so the next boot tries it again. Called on the
        pipeline's thread when it ends, and by ``create`` once the row is stored (the end may
        come first); marking twice is harmless. Waits on the manager's lock, so a stream still
        being registered is seen once it is.
        """
        status = pipeline.status()
        if status.state is not PipelineState.ENDED or not all(
            source.stats.state is SourceState.ENDED for source in status.sources
        ):
            return
        with self._lock:
            stream = self._streams.get(stream_id)
        if stream is None or stream.pipeline is not pipeline or stream.origin != "api":
            return
        if self.store is not None:
            final_status = _status(pipeline, stream.outputs, stream.events, stream.webrtc)
            self.store.mark_ended(stream_id, final_status)
        logger.info("stream %s ended: its source finished", stream_id)

    def restart(self, stream_id: str) -> StreamInfo:
        """Run the stream again from the start of its source, as a new epoch.

        A running stream is stopped first; one that ended (before this boot or since) starts
        again. Its tracker ids continue above every id its video_identifier emitted, its JSONL
        sinks are appended to and its video sinks write a new file (``run_history``).

        Raises:
            ModelNotReadyError: the model is not loaded yet (503).
            StreamNotFoundError: no stream has that id (404).
            InvalidStreamError: its source or a sink cannot work any more (422); the stream
                is then listed as not running (state ``TERMINATED`` unless it had ended).
        """
        self.engine.require_ready()
        with self._lock:
            running = self._streams.pop(stream_id, None)
            ended = self._ended.pop(stream_id, None) if running is None else None
        if running is not None:
            self._stop(running)
            spec, origin, created_at = running.spec, running.origin, running.created_at
            last_status = _status(running.pipeline, running.outputs, running.events, running.webrtc)
            if last_status.get("state") != PipelineState.ENDED.value:
                last_status["state"] = PipelineState.TERMINATED.value
        elif ended is not None:
            spec, origin, created_at = ended.spec, "api", ended.created_at
            last_status = dict(ended.final_status or {})
        else:
            raise StreamNotFoundError(stream_id)
        store = self.store if origin == "api" else None
        if store is not None:  # before it starts: the new run may end (and be marked) at once
            store.clear_ended(stream_id)
            store.update(stream_id, paused=False)
        try:
            info = self.create(
                spec, stream_id=stream_id, origin=origin, created_at=created_at, persist=False
            )
        except BaseException:
            if origin == "api":  # keep it listed, not running; config streams come from the YAML
                with self._lock:
                    self._ended[stream_id] = StoredStream(
                        stream_id, spec, False, created_at, final_status=last_status
                    )
                if store is not None and ended is not None:
                    store.mark_ended(stream_id, last_status)
            raise
        logger.info("stream %s restarted", stream_id)
        return info

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
            if row.ended:
                with self._lock:
                    self._ended[row.id] = row
                logger.info(
                    "stream %s ended before this start: listed, not run (POST /streams/%s/restart)",
                    row.id,
                    row.id,
                )
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
        """Stop every stream, keeping stored definitions for the next start.

        Graceful, as ``sam3-stream run`` on SIGTERM: sources stop decoding, every frame already
        decoded still reaches the stream's sinks (JSONL lines, video frames), and all streams
        drain at once within one ``STOP_TIMEOUT_S``; what is still running then is cut short.
        """
        with self._lock:
            streams = list(self._streams.values())
            self._streams.clear()
            self._ended.clear()
        for stream in streams:
            try:
                stream.pipeline.terminate(drain=True)
            except Exception:
                logger.exception("stopping stream %s failed", stream.id)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for stream in streams:
            if not stream.pipeline.join(max(0.0, deadline - time.monotonic())):
                logger.warning("stream %s did not drain within %.0f s", stream.id, STOP_TIMEOUT_S)
        for stream in streams:
            try:
                self._stop(stream)
            except Exception:
                logger.exception("stopping stream %s failed", stream.id)
        if self.cluster is not None:
            self.cluster.close()


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


def _status(
    pipeline: ManagedPipeline, outputs: StreamOutputs, events: EventHub, webrtc: WebRTCPublisher
) -> dict[str, Any]:
    """What a stream's ``status`` shows: the pipeline's ``status()`` and its outputs' counters."""
    status: dict[str, Any] = jsonable(pipeline.status().to_dict())
    if getattr(pipeline, "waiting", False):  # a Ray stream whose worker died, until room appears
        status["state"] = "WAITING"
    status["worker"] = getattr(pipeline, "worker", None)
    status["outputs"] = jsonable(
        {
            "frames_dispatched": outputs.frames_dispatched,
            "sse_clients": events.subscriber_count,
            "sse_events_dropped": events.dropped,
            "webrtc_viewers": webrtc.viewers,
        }
    )
    if hasattr(pipeline, "failovers"):  # a Ray stream: its moves, results its worker discarded
        status["failovers"] = pipeline.failovers
        status["outputs"]["worker_results_dropped"] = getattr(pipeline, "dropped", 0)
    return status


def _identifier_of(row: StoredStream) -> str:
    return row.spec.video_identifier or row.id


def _ended_info(row: StoredStream) -> StreamInfo:
    """A stream that ended before this boot, as the API shows it: its last status, no pipeline."""
    spec = row.spec
    status = dict(row.final_status or {})
    status["state"] = status.get("state") or PipelineState.ENDED.value
    if row.ended_at is not None:
        status["ended_at"] = row.ended_at.isoformat()
    return _stream_info(
        row.id,
        spec,
        video_identifier=_identifier_of(row),
        origin="api",
        paused=row.paused,
        created_at=row.created_at,
        status=status,
    )


def _stream_info(
    stream_id: str,
    spec: StreamSpec,
    *,
    video_identifier: str,
    origin: Origin,
    paused: bool,
    created_at: datetime,
    status: dict[str, Any],
    worker: str | None = None,
) -> StreamInfo:
    """What the API shows of a stream, running or ended: its definition and ``status``."""
    return StreamInfo.redacted(
        id=stream_id,
        source=spec.source,
        classes=spec.classes,
        threshold=spec.threshold,
        max_fps=spec.max_fps,
        sinks=spec.sinks,
        video_identifier=video_identifier,
        source_options=spec.source_options.as_kwargs() if spec.source_options else {},
        max_objects=spec.max_objects,
        origin=origin,
        paused=paused,
        created_at=created_at,
        status=status,
        worker=worker,
    )


def _status_forwarder(stream_id: str, events: EventHub) -> StatusUpdateHandler:
    """A ``status_update_handler`` that sends the pipeline's status events to SSE clients.

    Severity goes out as its name, the timestamp in UTC with its offset (``to_dict``). The
    per-frame ``INFERENCE_COMPLETED`` is not forwarded: clients get every frame's detections.
    """

    def forward(update: StatusUpdate) -> None:
        if update.event_type == EventType.INFERENCE_COMPLETED:
            return
        event = update.to_dict()
        payload = {
            "stream_id": stream_id,
            "timestamp": event["timestamp"],
            "severity": event["severity"],
            "event_type": event["event_type"],
            "payload": event["payload"],
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
        prompted_objects=stats.visual_objects,
    )


def _request_field(error: ConfigError, source_options: Mapping[str, Any]) -> str:
    """The request field a pipeline ``ConfigError`` is about, from the option it names."""
    if error.field == "video_identifiers":
        return "video_identifier"
    if error.field is not None and error.field in source_options:
        return "source_options"
    return "source"
