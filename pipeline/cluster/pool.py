"""``StreamCluster``: the front door's view of its Ray workers, and where each stream runs.

It starts the worker actors, keeps one poller thread per worker (a long ``poll`` call, so no busy
loop), places streams (``placement.pick_worker``), forwards runtime calls, and moves streams when a
worker dies (``failover``).

Failover: a worker's death is what Ray says it is: the poller's pending call raises
``RayActorError``. Each of the worker's streams then starts again on a survivor with room, as a
reconnect: the next epoch of its video_identifier (``RunHistory``), a fresh session, and tracker
ids above the ceiling the front door granted (``id_grants``), so above every id it ever emitted.
A stream that finds no room waits (status ``WAITING``) and starts as soon as room appears: a
stream deleted, or a worker back (Ray restarts a dead worker's process, ``connect``). Each move
is a status event of the stream (``STREAM_FAILOVER`` / ``STREAM_WAITING``) on its SSE feed.

A worker that hangs instead of dying (a frozen process, a partitioned node Ray has not declared
dead yet) is caught by the poll itself: a poll unanswered for ``failover_timeout_s`` counts as a
death, the worker is killed (Ray starts a fresh one) and its streams move as above, so their
downtime is bounded by that setting either way.

Slots: a stream holds its worker's slot from placement until it is deleted or stopped, also once
its file ended by itself (as it counts against ``max_streams`` until then): ``DELETE`` or
``restart`` frees or reuses it.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from pipeline.cluster import connect
from pipeline.cluster.id_grants import IdLedger
from pipeline.cluster.placement import pick_worker
from pipeline.cluster.remote_pipeline import RemotePipeline
from pipeline.cluster.results import CallOutcome, PollReply
from pipeline.cluster.settings import ClusterSettings
from pipeline.errors import ConfigError, SourceError
from pipeline.loop.status_events import UpdateSeverity
from pipeline.service.api_errors import InvalidStreamError, ModelNotReadyError, StreamLimitError

if TYPE_CHECKING:
    from pipeline.service.engine import ModelEngine
    from pipeline.service.run_history import RunHistory

logger = logging.getLogger(__name__)

POLL_WAIT_S = 0.5
"""How long one ``poll`` waits on the worker for news: an idle worker costs 2 calls a second."""
CALL_MARGIN_S = 30.0
"""Beyond a call's own wait: how long a runtime call may take before it counts as lost."""
START_TIMEOUT_S = 60.0
"""How long starting one stream on a worker may take (opening a file, a first camera connect)."""
REJOIN_RETRY_S = 1.0
"""How often a lost worker is asked whether Ray brought it back."""


@dataclass
class _Worker:
    """One worker actor as the front door sees it."""

    name: str
    handle: Any
    alive: bool = False
    pid: int | None = None
    load_seconds: float | None = None
    streams: dict[str, RemotePipeline] = field(default_factory=dict)
    grants: dict[str, int] = field(default_factory=dict)


class StreamCluster:
    """The workers of one front door (see the module docstring).

    Args:
        settings: where the cluster is and how workers are shaped.
        engine: the front door's model holder: workers load ``engine.worker_loader`` and get its
            registry limits.
        history: the manager's ``RunHistory`` (epochs, the stored tracker-id ceilings).
        result_buffer: results per stream a worker keeps for the front door (``event_buffer``).
    """

    def __init__(
        self,
        settings: ClusterSettings,
        *,
        engine: ModelEngine,
        history: RunHistory,
        result_buffer: int,
    ) -> None:
        self.settings = settings
        self.history = history
        self.ledger = IdLedger(history)
        self._engine = engine
        self._result_buffer = result_buffer
        self._lock = threading.RLock()
        self._workers: dict[str, _Worker] = {}
        self._waiting: list[RemotePipeline] = []
        self._closed = threading.Event()
        self._threads: list[threading.Thread] = []
        self._connected_here = False
        self.started = threading.Event()

    # ---- boot and shutdown ---------------------------------------------------------------

    def start(self) -> None:
        """Join the cluster, start the workers, wait until each loaded its model.

        Raises:
            ConfigError: the engine has no ``worker_loader``.
            Exception: Ray could not connect or a worker failed to load (``serve`` exits).
        """
        loader = self._engine.worker_loader
        if loader is None:
            raise ConfigError("a Ray cluster needs a worker_loader on the ModelEngine")
        began = time.monotonic()
        self._connected_here = connect.join_cluster(self.settings)
        try:
            count = self._start_workers(loader)
        except BaseException as error:
            for worker in self._workers.values():  # leave no half-started worker behind
                connect.kill(worker.handle)
            self._workers.clear()
            if self._connected_here:
                connect.leave_cluster()
            if isinstance(error, connect.WorkerGone):  # Ray's text holds the whole traceback
                raise RuntimeError(
                    f"a worker failed to load the model: {_last_line(error)}"
                ) from None
            raise
        for worker in self._workers.values():
            thread = threading.Thread(
                target=self._poll_loop, args=(worker,), name=f"poll-{worker.name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        self.started.set()
        logger.info(
            "cluster: %d workers ready in %.1f s (%s)",
            count,
            time.monotonic() - began,
            ", ".join(f"{w.name} pid {w.pid}" for w in self._workers.values()),
        )

    def _start_workers(self, loader: Any) -> int:
        """Create the worker actors and wait until each answers (its model loaded)."""
        count = connect.worker_count(self.settings)
        for index in range(count):
            name = f"worker-{index}"
            handle = connect.start_worker(
                self.settings,
                name,
                loader=loader,
                max_sessions=self._engine.max_sessions,
                max_objects=self._engine.max_objects,
                result_buffer=self._result_buffer,
            )
            self._workers[name] = _Worker(name, handle)
        for worker in self._workers.values():
            self._rejoin(worker, timeout=None)
        return count

    def close(self) -> None:
        """Stop polling and kill the workers this front door started (streams stopped first)."""
        self._closed.set()
        for thread in self._threads:
            thread.join(POLL_WAIT_S + 5.0)
        for worker in self._workers.values():
            connect.kill(worker.handle)
        if self._connected_here:
            connect.leave_cluster()

    def require_started(self) -> None:
        if not self.started.is_set():
            raise ModelNotReadyError("the Ray workers are still starting: retry when /readyz is")

    def workers(self) -> dict[str, dict[str, Any]]:
        """Each worker: alive, pid, streams (tests and ``bench cluster`` read it)."""
        with self._lock:
            return {
                w.name: {
                    "alive": w.alive,
                    "pid": w.pid,
                    "load_seconds": w.load_seconds,
                    "streams": sorted(w.streams),
                }
                for w in self._workers.values()
            }

    # ---- placement -----------------------------------------------------------------------

    def check_room(self) -> None:
        """Refuse a new stream when no live worker has room (429 naming the limit)."""
        self.require_started()
        with self._lock:
            if self._pick() is None:
                raise self._full_error()

    def _full_error(self) -> StreamLimitError | ModelNotReadyError:
        if not any(w.alive for w in self._workers.values()):
            return ModelNotReadyError("no Ray worker is running now: retry when one is back")
        limit = self.settings.max_streams_per_worker
        return StreamLimitError(
            f"every Ray worker runs max_streams_per_worker={limit} streams: delete one "
            "(DELETE /streams/{id}), add workers or raise max_streams_per_worker"
        )

    def _pick(self) -> _Worker | None:
        loads = {w.name: len(w.streams) for w in self._workers.values() if w.alive}
        name = pick_worker(loads, capacity=self.settings.max_streams_per_worker)
        return self._workers[name] if name is not None else None

    def launch(self, pipeline: RemotePipeline) -> None:
        """Start a new stream on the least-loaded worker with room (its first run).

        Raises:
            StreamLimitError: every worker is full (429); ModelNotReadyError: none is running.
            SourceError / ConfigError / ValueError / InvalidStreamError: the worker refused the
                stream, as ``InferencePipeline.init`` or the sinks would in-process.
        """
        with self._lock:
            worker = self._pick()
            if worker is None:
                raise self._full_error()
            worker.streams[pipeline.stream_id] = pipeline  # hold the slot while it starts
        self._start_on(worker, pipeline, pipeline.launch.epoch)

    def _start_on(self, worker: _Worker, pipeline: RemotePipeline, epoch: int) -> None:
        vid = pipeline.video_identifier
        self.history.saw_epoch(vid, epoch)
        launch = replace(pipeline.launch, epoch=epoch, id_floor=self.ledger.floor(vid))
        try:
            outcome: CallOutcome = connect.call(
                worker.handle, "start_stream", launch, timeout=START_TIMEOUT_S
            )
        except BaseException:
            with self._lock:
                worker.streams.pop(pipeline.stream_id, None)
            raise
        if outcome.error_kind is not None:
            with self._lock:
                worker.streams.pop(pipeline.stream_id, None)
            _raise_start_error(outcome)
        pipeline.placed(worker.name, launch)

    # ---- calls and stops -----------------------------------------------------------------

    def call(self, pipeline: RemotePipeline, method: str, args: tuple[Any, ...]) -> CallOutcome:
        """Forward a runtime change to the stream's worker.

        Raises:
            ValueError: the stream waits for a worker, or its worker was lost meanwhile.
        """
        with self._lock:
            worker = self._workers.get(pipeline.worker or "")
        if worker is None or not worker.alive:
            raise ValueError(
                f"stream {pipeline.stream_id!r} is waiting for a Ray worker: try again once it runs"
            )
        try:
            result: CallOutcome = connect.call(
                worker.handle, "call", pipeline.stream_id, method, args, timeout=CALL_MARGIN_S
            )
        except connect.WorkerGone:
            raise ValueError(
                f"stream {pipeline.stream_id!r} lost its Ray worker and is moving: try again"
            ) from None
        return result

    def stop(self, pipeline: RemotePipeline, *, drain: bool) -> Any:
        """Free the stream's slot and ask its worker to stop it; a reference for ``finish_stop``."""
        with self._lock:
            if pipeline in self._waiting:
                self._waiting.remove(pipeline)
            worker = self._workers.get(pipeline.worker or "")
            if worker is not None:
                worker.streams.pop(pipeline.stream_id, None)
        if worker is None or not worker.alive:
            return None
        return connect.send(worker.handle, "stop_stream", pipeline.stream_id, drain)

    def finish_stop(self, pipeline: RemotePipeline, reference: Any, timeout: float | None) -> bool:
        """Wait for a stop; record the exact highest id; give the freed slot to a waiting stream."""
        done = True
        if reference is not None:
            try:
                highest = connect.wait(reference, timeout)
            except connect.NotYet:
                return False
            except connect.WorkerGone:
                highest = -1  # the granted ceiling stays: ids never reused either way
            if highest >= 0:
                self.ledger.settle(pipeline.video_identifier, highest)
        self._place_waiting()
        return done

    # ---- polling and failover --------------------------------------------------------------

    def _poll_loop(self, worker: _Worker) -> None:
        while not self._closed.is_set():
            if not worker.alive:
                self._rejoin(worker, timeout=REJOIN_RETRY_S)
                continue
            with self._lock:
                grants, worker.grants = worker.grants, {}
            self._update_image_wishes(worker)
            try:
                reply: PollReply = connect.call(
                    worker.handle,
                    "poll",
                    grants,
                    POLL_WAIT_S,
                    timeout=POLL_WAIT_S + self.settings.failover_timeout_s,
                )
            except connect.WorkerGone as error:
                self._worker_lost(worker, error)
                continue
            except connect.NotYet as error:  # hung: treat as dead, let Ray start a fresh one
                connect.kill(worker.handle, restart=True)
                self._worker_lost(worker, error)
                continue
            except Exception:
                if self._closed.is_set():
                    return
                logger.exception("cluster: polling %s failed", worker.name)
                self._closed.wait(REJOIN_RETRY_S)
                continue
            self._deliver(worker, reply)

    def _update_image_wishes(self, worker: _Worker) -> None:
        with self._lock:
            streams = list(worker.streams.values())
        for pipeline in streams:
            wanted = pipeline.wants_images()
            if wanted != pipeline.images_sent:
                pipeline.images_sent = wanted
                connect.send(worker.handle, "set_want_images", pipeline.stream_id, wanted)

    def _deliver(self, worker: _Worker, reply: PollReply) -> None:
        with self._lock:
            streams = dict(worker.streams)
            # Every request is granted, also for a stream being stopped (its draining frames
            # need ids): the ceiling is recorded where it survives before the worker may use it.
            for vid, ceiling in reply.reservations.items():
                worker.grants[vid] = self.ledger.grant(vid, ceiling)
        for stream_id, status in reply.statuses.items():
            pipeline = streams.get(stream_id)
            if pipeline is not None:
                pipeline.observe(status, reply.dropped.get(stream_id, 0))
        for frame in reply.frames:
            pipeline = streams.get(frame.stream_id)
            if pipeline is not None:
                pipeline.deliver(frame)
        for stream_id, update in reply.updates:
            pipeline = streams.get(stream_id)
            if pipeline is not None:
                pipeline.forward_update(update)

    def _rejoin(self, worker: _Worker, timeout: float | None) -> None:
        """Ask a worker who it is; once it answers (loaded, or back after Ray restarted it), it
        takes streams."""
        try:
            info = connect.call(worker.handle, "describe", timeout=timeout)
        except connect.NotYet:
            return
        except connect.WorkerGone:
            if timeout is None:
                raise
            self._closed.wait(REJOIN_RETRY_S)
            return
        with self._lock:
            worker.alive, worker.pid = True, int(info["pid"])
            worker.load_seconds = float(info["load_seconds"])
        if self.started.is_set():
            logger.warning("cluster: %s is back (pid %s)", worker.name, worker.pid)
            self._place_waiting()

    def _worker_lost(self, worker: _Worker, error: BaseException) -> None:
        """Ray says the worker died: move each of its streams (see the module docstring)."""
        with self._lock:
            worker.alive = False
            moved = list(worker.streams.values())
            worker.streams.clear()
            worker.grants.clear()
        if self._closed.is_set():
            return
        logger.warning(
            "cluster: %s (pid %s) died: moving %d streams (%s)",
            worker.name,
            worker.pid,
            len(moved),
            type(error).__name__,
        )
        for pipeline in moved:
            self._move(pipeline, from_worker=worker.name)

    def _move(self, pipeline: RemotePipeline, *, from_worker: str | None) -> None:
        """Start a stream again elsewhere (a reconnect: next epoch, ids above), or let it wait."""
        with self._lock:
            target = self._pick()
            if target is None:
                if pipeline not in self._waiting:
                    self._waiting.append(pipeline)
                pipeline.wait_for_room()
            else:
                target.streams[pipeline.stream_id] = pipeline
        if target is None:
            pipeline.announce("waiting", UpdateSeverity.WARNING, from_worker=from_worker)
            logger.warning("stream %s waits for room on a worker", pipeline.stream_id)
            return
        epoch = self.history.of(pipeline.video_identifier).next_epoch
        try:
            self._start_on(target, pipeline, epoch)
        except Exception as error:
            logger.error("stream %s could not start on %s: %s", pipeline.stream_id, target, error)
            with self._lock:
                if pipeline not in self._waiting:
                    self._waiting.append(pipeline)
            pipeline.wait_for_room()
            pipeline.announce("waiting", UpdateSeverity.ERROR, error=str(error))
            return
        pipeline.failovers += 1
        pipeline.announce(
            "failover",
            UpdateSeverity.WARNING,
            from_worker=from_worker,
            to_worker=target.name,
            epoch=epoch,
        )
        logger.warning(
            "stream %s moved %s -> %s (epoch %d)",
            pipeline.stream_id,
            from_worker,
            target.name,
            epoch,
        )

    def _place_waiting(self) -> None:
        """Give room that appeared to the streams waiting for it, oldest first.

        Each waiting stream gets one try per call: one whose start fails waits again, for the
        next time room appears, instead of being retried in a loop here.
        """
        with self._lock:
            tries = len(self._waiting)
        for _ in range(tries):
            with self._lock:
                if self._closed.is_set() or not self._waiting or self._pick() is None:
                    return
                pipeline = self._waiting.pop(0)
            self._move(pipeline, from_worker=pipeline.last_worker)


def _last_line(error: BaseException) -> str:
    """The worker's own exception line out of Ray's text (traceback and colour codes)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def _raise_start_error(outcome: CallOutcome) -> None:
    """The exception a refused start stands for, as ``StreamManager._launch`` maps them."""
    if outcome.error_kind == "SourceError":
        raise SourceError(outcome.message)
    if outcome.error_kind == "ConfigError":
        raise ConfigError(outcome.message, field=outcome.field)
    if outcome.error_kind == "InvalidStream":
        raise InvalidStreamError(outcome.field or "sinks", outcome.message)
    raise ValueError(outcome.message)
