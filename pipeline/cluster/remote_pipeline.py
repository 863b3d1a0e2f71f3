"""``RemotePipeline``: a stream that runs on a Ray worker, as the service's ``ManagedPipeline``.

The manager drives it exactly like an in-process ``InferencePipeline``: runtime changes are
forwarded to the stream's worker and answer with the same exceptions (``ValueError``,
``KeyError``, ``ConfigError`` with its field), ``status()`` is the worker pipeline's own status as
of the last poll, and results arrive on ``deliver`` from the worker's poller and go to the
stream's front-door outputs (SSE, WebRTC, metrics). The stream's definition now (``launch``)
follows every change, so a failover starts it again as it was.

Where the stream runs is the ``StreamCluster``'s business (``placement``, failover); this object
only remembers it: ``worker`` (None while it waits for room) and ``waiting``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import supervision as sv

from pipeline.cluster.results import CallOutcome, StreamLaunch, WireFrame
from pipeline.errors import ConfigError
from pipeline.loop.options import check_class_names
from pipeline.loop.status import PipelineState, PipelineStatus
from pipeline.loop.status_events import StatusUpdate, StatusUpdateHandler, UpdateSeverity
from pipeline.video_frame import VideoFrame

if TYPE_CHECKING:
    from pipeline.cluster.pool import StreamCluster
    from tracker.visual_prompts import VisualPrompt

logger = logging.getLogger(__name__)

CLUSTER_CONTEXT = "cluster"
"""The ``context`` of the status events the cluster itself emits (failover, waiting)."""


class RemotePipeline:
    """One remote stream (see the module docstring).

    Args:
        cluster: where it runs.
        launch: the stream's definition (epoch and id floor are set when it is placed).
        on_prediction: the stream's front-door outputs (``StreamOutputs``: SSE, WebRTC, metrics).
        status_update_handlers: as ``InferencePipeline``'s: each worker-side status event, and
            the cluster's own (``STREAM_FAILOVER``, ``STREAM_WAITING``), is passed to them.
        wants_images: whether the front door needs frame images now (a WebRTC viewer watches).
        model: how ``status()`` names the model before the worker's first report.
    """

    def __init__(
        self,
        cluster: StreamCluster,
        launch: StreamLaunch,
        on_prediction: Callable[[sv.Detections, VideoFrame], object],
        *,
        status_update_handlers: Sequence[StatusUpdateHandler] = (),
        wants_images: Callable[[], bool] = lambda: False,
        model: str = "sam3",
    ) -> None:
        self.cluster = cluster
        self.launch = launch
        self.worker: str | None = None
        self.last_worker: str | None = None  # where it ran before it had to wait
        self.waiting = False
        self.failovers = 0
        self.dropped = 0
        self.images_sent = False
        self.wants_images = wants_images
        self._on_prediction = on_prediction
        self._handlers = list(status_update_handlers)
        self._model = model
        self._status: PipelineStatus | None = None
        self._lock = threading.Lock()
        self._stop_reference: Any = None
        self._stopped = False

    @property
    def stream_id(self) -> str:
        return self.launch.stream_id

    @property
    def video_identifier(self) -> str:
        return self.launch.video_identifier

    # ---- ManagedPipeline: lifecycle -------------------------------------------------------

    def start(self, use_main_thread: bool = True) -> None:
        """Nothing to do: the cluster started the stream on its worker when it was placed."""

    def terminate(self, *, drain: bool = False) -> None:
        """Ask the worker to stop the stream (returns at once; ``join`` waits)."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self._stop_reference = self.cluster.stop(self, drain=drain)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the worker to have stopped the stream and record its exact highest id."""
        with self._lock:
            if not self._stopped:
                return True
        return self.cluster.finish_stop(self, self._stop_reference, timeout)

    def status(self) -> PipelineStatus:
        """The worker pipeline's status as of the last poll (a placeholder before the first)."""
        with self._lock:
            status = self._status
            stopped = self._stopped
        if status is None:
            launch = self.launch
            status = PipelineStatus(
                state=PipelineState.CREATED,
                model=self._model,
                class_names=launch.classes,
                threshold=launch.threshold,
                max_fps=launch.max_fps,
                started_at=None,
                sink_errors=0,
                sources=(),
            )
        if stopped and status.state is PipelineState.RUNNING:
            status = replace(status, state=PipelineState.TERMINATED)
        return status

    # ---- ManagedPipeline: runtime changes --------------------------------------------------

    def pause_stream(self, source_id: int | None = None) -> None:
        self._forward("pause_stream", source_id)
        self.launch = replace(self.launch, paused=True)

    def resume_stream(self, source_id: int | None = None) -> None:
        self._forward("resume_stream", source_id)
        self.launch = replace(self.launch, paused=False)

    def set_class_names(self, class_names: str | Sequence[str]) -> None:
        names = check_class_names(class_names)
        self._forward("set_class_names", list(names))
        self.launch = replace(self.launch, classes=tuple(names))

    def set_threshold(self, threshold: float) -> None:
        self._forward("set_threshold", threshold)
        self.launch = replace(self.launch, threshold=threshold)

    def add_prompt(self, prompt: VisualPrompt, source_id: int | None = None) -> list[int]:
        return list(self._forward("add_prompt", prompt, source_id))

    def remove_object(self, tracker_id: int, source_id: int | None = None) -> None:
        self._forward("remove_object", tracker_id, source_id)

    def report_sink_error(self, sink_name: str, error: BaseException) -> None:
        """A front-door output failed (the live tap): logged; worker sinks report their own."""
        logger.warning(
            "stream %s: front-door output %s failed: %s", self.stream_id, sink_name, error
        )

    def _forward(self, method: str, *args: Any) -> Any:
        outcome = self.cluster.call(self, method, args)
        return raise_outcome(outcome)

    # ---- what the cluster tells it ---------------------------------------------------------

    def placed(self, worker: str, launch: StreamLaunch) -> None:
        """The stream now runs on ``worker`` as ``launch`` says (a fresh status follows)."""
        with self._lock:
            self.worker, self.waiting, self.launch = worker, False, launch
            self._status = None
            self.images_sent = False

    def wait_for_room(self) -> None:
        with self._lock:
            self.last_worker = self.worker or self.last_worker
            self.worker, self.waiting = None, True
            self._status = None

    def observe(self, status: PipelineStatus, dropped: int) -> None:
        with self._lock:
            if not self._stopped or self._status is None:
                self._status = status
            self.dropped = dropped

    def deliver(self, frame: WireFrame) -> None:
        detections, video_frame = frame.unpack()
        self._on_prediction(detections, video_frame)

    def forward_update(self, update: StatusUpdate) -> None:
        for handler in self._handlers:
            try:
                handler(update)
            except Exception:
                logger.exception("stream %s: status handler failed", self.stream_id)

    def announce(self, event: str, severity: UpdateSeverity, **payload: Any) -> None:
        """A cluster event (``failover``, ``waiting``) as a status event of the stream."""
        update = StatusUpdate.now(
            severity,
            f"STREAM_{event.upper()}",
            {"event": event, "stream_id": self.stream_id, **payload},
            CLUSTER_CONTEXT,
        )
        self.forward_update(update)


def raise_outcome(outcome: CallOutcome) -> Any:
    """A worker call's value, or the exception it stood for (the type the API maps)."""
    if outcome.error_kind is None:
        return outcome.value
    if outcome.error_kind == "KeyError":
        raise KeyError(outcome.message)
    if outcome.error_kind == "ConfigError":
        raise ConfigError(outcome.message, field=outcome.field)
    raise ValueError(outcome.message)
