"""``InferencePipeline``: Roboflow's video loop, drop-in, on SAM3 with bounded latency.

Threads, and why each exists:

- one decode thread per source (``pipeline.sources``) fills a small bounded buffer, so a slow
  or dead camera never holds up another source or the model;
- one inference thread takes frames from the sources in turn (``RoundRobinReader``: fair, capped
  at ``max_fps`` per source) and runs them through the one shared model (``registry.process``);
- one dispatcher hands results to ``on_prediction`` through a small ``DispatchQueue``, so the
  model never waits for a sink. It runs on the thread that called ``start()`` by default
  (``use_main_thread=True``, as in Roboflow's pipeline: OpenCV windows want the main thread),
  which then blocks until the pipeline ends.

With several sources, ``sink_mode`` (Roboflow's ``SinkMode``) decides how ``on_prediction`` is
called: ``ADAPTIVE`` (default) hands one source's results one by one and several sources' results
as rounds, lists with one entry per source (``None`` where a source had no frame); ``BATCH`` always
hands rounds, ``SEQUENTIAL`` never.

Faults stay local: an inference error on one frame is counted and reported and the loop goes on;
an exception from ``on_prediction`` is counted, reported (``INFERENCE_RESULTS_DISPATCHING_ERROR``)
and logged with its traceback once per distinct error, and the loop goes on likewise. Everything is
reported to ``status_update_handlers`` as ``StatusUpdate`` events and summarised by ``status()``.

A pipeline that ended (or was terminated) can be started again, as Roboflow's can: its sources run
again from the start (a file is read again), frame ids continue above the previous run's and the
epoch goes up by one, so the tracker reseeds and tracker ids continue.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, cast, runtime_checkable

import supervision as sv

import sinks
from pipeline.compat.image_workflow import (
    ImageWorkflowPlan,
    Segmenters,
    compile_image_workflow,
    is_image_workflow,
)
from pipeline.compat.roboflow_fields import add_roboflow_fields
from pipeline.compat.roboflow_options import refuse_roboflow_only
from pipeline.compat.workflow import compile_workflow
from pipeline.errors import ConfigError, InferenceError
from pipeline.loop.contracts import FrameProcessor, FramePrompter, PredictionSink
from pipeline.loop.dispatch import Dispatch, DispatchQueue
from pipeline.loop.identifiers import claim_identifiers, release_identifiers
from pipeline.loop.options import (
    PipelineOptions,
    SinkMode,
    check_class_names,
    check_threshold_option,
    mint_exec_session_id,
    tracker_of,
)
from pipeline.loop.progress import ProgressReporter
from pipeline.loop.status import PipelineState, PipelineStatus, SourceMetrics
from pipeline.loop.status_events import StatusEmitter, StatusUpdateHandler
from pipeline.redact import redact
from pipeline.sources import RoundRobinReader, VideoSource, make_source, make_sources
from pipeline.video_frame import VideoFrame
from sinks import SinkCounters
from sinks.base import sink_name
from sinks.errors import SinkError
from sinks.log_throttle import KeyedLogThrottle, LogThrottle
from tracker.detections import empty_detections
from tracker.visual_prompts import VisualPrompt
from tracker.weights import REAL_MODEL, resolve_model

logger = logging.getLogger(__name__)

_STOP_WAIT_S = 0.5  # terminate(): longest wait for busy threads before they are abandoned
_IDLE_WAKE_S = 0.5  # the inference loop re-checks pauses and drop counters at least this often
_DROPS_REPORT_EVERY_S = 1.0
_RERUN_JOIN_S = 10.0  # start() after the end: longest wait for the previous run's threads


_SET_BY_WORKFLOW = ("class_names", "threshold", "model")

ResultMapper = Callable[[sv.Detections], Any]
"""What ``on_prediction`` receives for the detections of a frame (the workflow's result dict)."""

FrameWorkflow = Callable[[Any], dict[str, Any]]
"""An image workflow run on one frame's (H, W, 3) BGR image: ``{output name: value}``."""


class InferencePipeline:
    """Frames from one or more sources through SAM3 to ``on_prediction``.

    Build it with ``InferencePipeline.init`` or ``InferencePipeline.init_with_workflow``; the
    constructor is internal.

    Examples:
        >>> from pipeline import InferencePipeline  # doctest: +SKIP
        >>> from sinks import render_boxes  # doctest: +SKIP
        >>> pipeline = InferencePipeline.init(  # doctest: +SKIP
        ...     video_reference="rtsp://user:pw@cam.local/stream1",
        ...     class_names=["person", "forklift"],
        ...     on_prediction=render_boxes,
        ... )
        >>> pipeline.start()  # blocks until the stream ends or terminate() # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        options: PipelineOptions,
        sources: Sequence[VideoSource],
        registry: FrameProcessor,
        model_name: str,
        result: ResultMapper | None,
        parent_id: str = "image",
        frame_workflow: FrameWorkflow | None = None,
        prompter: FramePrompter | None = None,
    ) -> None:
        self._options = options
        self._prompter = prompter
        # Frames without class names still reach the model once objects may have been prompted.
        self._prompted = bool(options.prompts) or prompter is not None
        self._prompt_log = KeyedLogThrottle()  # a workflow's refused prompts, once per stream
        self._frame_workflow = frame_workflow  # image blocks: each frame a new image, no tracking
        self._parent_id = parent_id  # Roboflow's data["parent_id"]: the workflow's image input
        self._sources = list(sources)
        self._registry = registry
        self._class_names = options.class_names
        self._threshold = options.threshold
        self._events = StatusEmitter(options.status_update_handlers)
        self._model_name = model_name
        self._result: ResultMapper = result or (lambda detections: detections)
        self._exec_session_id = options.exec_session_id or mint_exec_session_id()
        self._batch = options.sink_mode is SinkMode.BATCH or (
            options.sink_mode is SinkMode.ADAPTIVE and len(self._sources) > 1
        )
        self._fan_out: sinks.MultiSink | None = None
        on_prediction = options.on_prediction
        if isinstance(on_prediction, tuple):
            self._fan_out = sinks.MultiSink(list(on_prediction), on_error=self.report_sink_error)
            on_prediction = self._fan_out
        elif isinstance(on_prediction, sinks.MultiSink):
            # A fan-out built by the caller: its sink errors become status events too.
            on_prediction.add_error_listener(self.report_sink_error)
        self._on_prediction: PredictionSink = on_prediction
        self._metrics = {source.source_id: SourceMetrics() for source in self._sources}
        self._lock = threading.RLock()
        self._state = PipelineState.CREATED
        self._started_at: datetime | None = None
        self._sink_errors = 0
        self._error_log = LogThrottle(interval_s=10.0)
        self._dispatch_log = KeyedLogThrottle()  # on_prediction failures, once per distinct error
        self._control_log = KeyedLogThrottle()  # pause/mute/resume of a source that is not here
        self._new_run(self._sources)

    def _new_run(self, sources: list[VideoSource]) -> None:
        """Everything one run uses once: sources, reader, result queue, threads, stop flags."""
        self._sources = sources
        self._reader = RoundRobinReader(self._sources, max_fps=self._options.max_fps)
        for source in self._sources:
            source.add_state_listener(self._events.source_state_changed)
        self._dispatch = DispatchQueue()
        self._stop = threading.Event()
        self._drain_requested = False  # terminate(drain=True): ends as TERMINATED, not ENDED
        self._finished = threading.Event()
        self._finishing_thread: threading.Thread | None = None
        self._inference_thread: threading.Thread | None = None
        self._dispatch_thread: threading.Thread | None = None
        self._progress: ProgressReporter | None = None
        self._next_drops_report = 0.0
        self._round: dict[int, Dispatch] = {}  # BATCH: this round's result per source_id

    # ------------------------------------------------------------------ constructors

    @classmethod
    def init(
        cls,
        video_reference: Any,
        class_names: str | Sequence[str],
        on_prediction: Callable[..., Any] | Sequence[Callable[..., Any]] | None = None,
        *,
        model: str = REAL_MODEL,
        threshold: float = 0.5,
        max_fps: float | None = None,
        device: str = "auto",
        video_identifiers: Sequence[str | None] | None = None,
        status_update_handlers: Sequence[StatusUpdateHandler] | None = None,
        tracker: Any = None,
        registry: FrameProcessor | None = None,
        show_progress: bool = False,
        status_interval_s: float = 10.0,
        max_objects: int | None = None,
        model_options: Mapping[str, Any] | None = None,
        sink_mode: SinkMode | str = SinkMode.ADAPTIVE,
        exec_session_id: str | None = None,
        prompts: Any = None,
        **source_options: Any,
    ) -> InferencePipeline:
        """A pipeline that tracks ``class_names`` in every source and calls ``on_prediction``.

        Args:
            video_reference: a file path, ``rtsp(s)://``, ``rtmp(s)://``, ``http(s)://`` (HLS
                too) URL, a webcam index or ``/dev/videoN``, ``testpattern[?fps=..&size=WxH]``,
                or a list of these.
            class_names: concepts to find, ``["person", "forklift"]`` or ``"person, forklift"``.
            on_prediction: ``sink(detections: sv.Detections, frame: VideoFrame)``; or a list of
                sinks, which the pipeline fans out to with ``sinks.multi_sink``, reports their
                errors as ``SINK_ERROR`` events, and closes when it ends; or None: results are
                discarded (Roboflow's default).
            model: Hub id or local directory; ``facebook/sam3`` loads from
                ``$SAM3_STREAM_MODEL`` when that is set.
            threshold: minimum detection score in [0, 1].
            max_fps: most frames per second processed per source (files wait, live sources
                drop); None for no cap.
            device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
            video_identifiers: one name per source (None entries are derived from the
                reference); unique in the process.
            status_update_handlers: each called with every ``StatusUpdate``.
            tracker: an already loaded ``Sam3VideoTracker`` to share between pipelines.
            registry: a ``tracker.SessionRegistry`` to share (its tracker is used); anything
                with its ``process(...)`` signature works, e.g. a stand-in model in tests.
            show_progress: a progress bar on stderr for files, a status line for live sources.
            status_interval_s: seconds between live status lines (``show_progress``).
            max_objects: live tracks per stream at most, an int >= 1: when a new object needs
                room the stalest track is evicted. None: the registry's default
                (``tracker.session_rules.DEFAULT_MAX_OBJECTS``). With ``registry=``, set for this
                pipeline's identifiers only (``registry.set_max_objects``) until it ends.
            model_options: ``Sam3VideoConfig`` overrides used when the pipeline loads the model
                (e.g. ``{"new_det_thresh": 0.6}``).
            sink_mode: ``SinkMode`` or its value (``"adaptive"``, ``"batch"``,
                ``"sequential"``): with several sources, ``ADAPTIVE`` and ``BATCH`` call
                ``on_prediction(list_of_predictions, list_of_frames)`` once per round, one entry
                per source in ``source_id`` order, ``None`` where a source had no frame;
                ``SEQUENTIAL`` calls it once per frame. One source: single objects, except in
                ``BATCH`` (lists of one).
            exec_session_id: Roboflow's execution session id, kept as given (``exec_session_id``
                property); None or empty mints one in Roboflow's format. Nothing here tracks
                usage: it only names the run.
            prompts: what to track by pointing at it: a ``tracker.VisualPrompt`` (boxes and
                labelled points in the frame's pixels), a list of them for every source, or
                ``{source_id: [prompts]}``; each is placed on the source's first frame of every
                run (``add_prompt`` adds more later). With prompts, ``class_names`` may be
                empty: the pipeline then tracks only what was pointed at.
            **source_options: ``SourceOptions`` fields (``stall_timeout_s``, ``realtime``...).
                Roboflow's own arguments are accepted or refused by name as
                ``pipeline.compat.roboflow_options`` lists them: ``api_key=`` is accepted and
                unused (nothing here talks to Roboflow's platform).

        Raises:
            ConfigError: a bad argument (the message names it).
            SourceError: a reference that can never work (missing file, unknown scheme...).
            ModelLoadError: the model cannot be loaded.
        """
        options = PipelineOptions.from_keywords(
            video_reference,
            class_names,
            on_prediction,
            model=model,
            threshold=threshold,
            max_fps=max_fps,
            device=device,
            video_identifiers=video_identifiers,
            status_update_handlers=status_update_handlers,
            tracker=tracker,
            registry=registry,
            show_progress=show_progress,
            status_interval_s=status_interval_s,
            max_objects=max_objects,
            model_options=model_options,
            sink_mode=sink_mode,
            exec_session_id=exec_session_id,
            prompts=prompts,
            **source_options,
        )
        return cls._build(options, result=None)

    @classmethod
    def init_with_workflow(
        cls,
        video_reference: Any,
        workflow_specification: Mapping[str, Any] | str,
        on_prediction: Callable[..., Any] | Sequence[Callable[..., Any]] | None = None,
        api_key: str | None = None,
        *,
        image_input_name: str = "image",
        workflows_parameters: Mapping[str, Any] | None = None,
        exec_session_id: str | None = None,
        **options: Any,
    ) -> InferencePipeline:
        """A pipeline running a Roboflow workflow with one video step (``sam3_video@v1`` with
        text concepts or, ``tracking_mode: "visual"``, boxes and points; or
        ``segment_anything_2_video@v1`` run by ``sam3trackervideo``), or of SAM3's image blocks
        (``roboflow_core/sam3@v1``, ``sam3_interactive@v1``, ``polygon_visualization@v1``), which
        run on every frame as a new image (no tracking).

        ``on_prediction(result, frame)`` receives ``{output name: sv.Detections}`` (an image
        block's visualisation: a ``WorkflowImage`` whose ``numpy_image`` is BGR). What a workflow
        may contain is described in ``pipeline.compat.workflow`` and
        ``pipeline.compat.image_workflow``; anything else is refused with an error naming it.

        Args:
            video_reference: as for ``init``.
            workflow_specification: the workflow dict (or JSON text).
            on_prediction: as for ``init``.
            api_key: accepted so Roboflow code runs unchanged, and unused: nothing here talks
                to Roboflow's platform.
            image_input_name: the workflow input the frames are bound to.
            workflows_parameters: values for the workflow's parameter inputs.
            exec_session_id: as for ``init``.
            **options: the keyword arguments of ``init`` except ``class_names``, ``threshold``
                and ``model``, which the workflow's step sets. ``sink_mode`` is among them (Roboflow
                always runs workflows ``ADAPTIVE``, the default here too).
        """
        del api_key  # see the docstring: accepted for compatibility, deliberately unused
        refuse_roboflow_only(options)
        for name in _SET_BY_WORKFLOW:
            if name in options:
                raise ConfigError(
                    f"{name}= is set by the workflow's sam3_video step: change it there", field=name
                )
        if is_image_workflow(workflow_specification):
            image_plan = compile_image_workflow(
                workflow_specification,
                image_input_name=image_input_name,
                parameters=workflows_parameters,
            )
            checked = PipelineOptions.from_workflow_keywords(
                video_reference,
                image_plan.class_names,
                on_prediction,
                model=image_plan.model,
                exec_session_id=exec_session_id,
                **options,
            )
            return cls._build(
                checked, result=None, parent_id=image_input_name, image_workflow=image_plan
            )
        plan = compile_workflow(
            workflow_specification,
            image_input_name=image_input_name,
            parameters=workflows_parameters,
        )
        checked = PipelineOptions.from_workflow_keywords(
            video_reference,
            plan.class_names,
            on_prediction,
            model=plan.model,
            threshold=plan.threshold,
            exec_session_id=exec_session_id,
            **options,
        )
        return cls._build(
            checked, result=plan.result, parent_id=image_input_name, prompter=plan.prompter
        )

    @classmethod
    def init_with_yolo_world(cls, *args: Any, **kwargs: Any) -> InferencePipeline:
        """Roboflow's YOLO-World factory: refused, naming what to call instead.

        Raises:
            ConfigError: always; ``init(video_reference, class_names=classes, ...)`` tracks the
                same open-vocabulary concepts with SAM3.
        """
        raise ConfigError(
            "init_with_yolo_world() is not supported: sam3-stream runs SAM3, which finds text "
            "concepts itself; use init(video_reference, class_names=classes, on_prediction=...)",
            field="init_with_yolo_world",
        )

    @classmethod
    def init_with_custom_logic(cls, *args: Any, **kwargs: Any) -> InferencePipeline:
        """Roboflow's custom-logic factory: refused, naming what to do instead.

        Raises:
            ConfigError: always; a custom ``on_video_frame`` is not run here.
        """
        raise ConfigError(
            "init_with_custom_logic() is not supported: a custom on_video_frame is not run, "
            "sam3-stream runs SAM3; use init(...) and put your logic in on_prediction",
            field="init_with_custom_logic",
        )

    @classmethod
    def _build(
        cls,
        options: PipelineOptions,
        *,
        result: ResultMapper | None,
        parent_id: str = "image",
        image_workflow: ImageWorkflowPlan | None = None,
        prompter: FramePrompter | None = None,
    ) -> InferencePipeline:
        """Options are checked: claim the identifiers, make the sources, then load the model."""
        identifiers = claim_identifiers(options.references, options.video_identifiers)
        try:
            sources = make_sources(
                list(options.references),
                video_identifiers=identifiers,
                options=options.source_options,
            )
            if options.registry is None:
                registry = _load(options)
            else:
                registry = options.registry
                if options.max_objects is not None:
                    _set_object_budget(registry, identifiers, options.max_objects)
            loaded = tracker_of(registry)
            _check_class_texts(loaded, options.class_names)
            return cls(
                options=options,
                sources=sources,
                registry=registry,
                model_name=str(getattr(loaded, "name", None) or type(registry).__name__),
                result=result,
                parent_id=parent_id,
                frame_workflow=_frame_workflow(image_workflow, loaded),
                prompter=prompter,
            )
        except BaseException:
            release_identifiers(identifiers)
            raise

    # ------------------------------------------------------------------ lifecycle

    @property
    def state(self) -> PipelineState:
        with self._lock:
            return self._state

    @property
    def video_identifiers(self) -> list[str]:
        """The identifier of each source, in ``source_id`` order."""
        return [source.video_identifier for source in self._sources]

    @property
    def exec_session_id(self) -> str:
        """Roboflow's execution session id: as given to the factory, else minted at build."""
        return self._exec_session_id

    def start(self, use_main_thread: bool = True) -> None:
        """Start the sources and the loop; again after the end, as Roboflow's pipeline does.

        A pipeline that ENDED or was TERMINATED runs its sources again from the start (a file
        is read again, a camera reconnects): frame ids continue above the previous run's, the
        epoch goes up by one (the tracker reseeds, tracker ids continue), metrics add up.

        Args:
            use_main_thread: call ``on_prediction`` on this thread, blocking until the pipeline
                ends or ``terminate()`` is called (Roboflow's default). False returns at once
                and dispatches on a background thread; ``join()`` then waits for the end.

        Raises:
            RuntimeError: the pipeline is running; or it closed the sinks it owned when it
                ended (a list given as ``on_prediction``), which cannot take frames again.
        """
        with self._lock:
            state = self._state
            if state is PipelineState.RUNNING:
                raise RuntimeError("the pipeline is already running: join() it before start()")
        if state is not PipelineState.CREATED:
            self._prepare_rerun()
        self._place_initial_prompts()
        with self._lock:
            self._state = PipelineState.RUNNING
            self._started_at = datetime.now(UTC)
            self._events.started(self.video_identifiers, self._model_name, self._exec_session_id)
            for source in self._sources:
                source.start()
            if self._options.show_progress:
                self._progress = ProgressReporter(
                    lambda: self.status().sources, live_every_s=self._options.status_interval_s
                )
                self._progress.start()
            self._inference_thread = threading.Thread(
                target=self._inference_loop, name="inference", daemon=True
            )
            self._inference_thread.start()
            if not use_main_thread:
                self._dispatch_thread = threading.Thread(
                    target=self._dispatch_loop, name="dispatch", daemon=True
                )
                self._dispatch_thread.start()
        if use_main_thread:
            self._dispatch_loop()

    def _place_initial_prompts(self) -> None:
        """``prompts=`` for each source's first frame of this run (the last run's ended with it).

        Raises:
            ConfigError: the registry refused one (``field`` "prompts"; the message names the
                prompt's own field).
        """
        for source in self._sources:
            prompts = self._options.prompts.get(None, ()) + self._options.prompts.get(
                source.source_id, ()
            )
            for index, prompt in enumerate(prompts):
                try:
                    self._registry.add_prompt(source.video_identifier, prompt)
                except ValueError as error:
                    raise ConfigError(
                        f"prompts[{index}] of source {source.source_id}: {error}", field="prompts"
                    ) from None

    def _prepare_rerun(self) -> None:
        """Make new sources where the previous run's left off, and fresh run state."""
        if not self.join(timeout=_RERUN_JOIN_S):
            raise RuntimeError(
                "the previous run is still stopping (a frame inside the model or a decoder "
                "blocked in I/O): join() it before start()"
            )
        fan_out = self._reopened_fan_out()
        identifiers = claim_identifiers(self._options.references, self.video_identifiers)
        try:
            sources = [
                make_source(
                    reference,
                    source_id=old.source_id,
                    video_identifier=identifier,
                    options=dataclasses.replace(
                        self._options.source_options, first_epoch=old.epoch + 1
                    ),
                    first_frame_id=old.next_frame_id,
                )
                for reference, identifier, old in zip(
                    self._options.references, identifiers, self._sources, strict=True
                )
            ]
            if self._options.registry is not None and self._options.max_objects is not None:
                _set_object_budget(self._registry, identifiers, self._options.max_objects)
        except BaseException:
            release_identifiers(identifiers)
            raise
        if fan_out is not None:
            self._fan_out = self._on_prediction = fan_out
        for metrics in self._metrics.values():
            # The new sources count their drops from zero; the loop's own drops add up.
            metrics.drops_reported = metrics.dispatch_dropped
        with self._lock:
            self._new_run(sources)

    def _reopened_fan_out(self) -> sinks.MultiSink | None:
        """A new fan-out over the sinks the pipeline owns, which its first run closed.

        Sinks with nothing to close (plain functions) take frames again; a sink that was closed
        cannot, and a rerun would silently write nothing, so it is refused naming the fix.
        """
        if self._fan_out is None:
            return None
        owned = self._options.on_prediction
        assert isinstance(owned, tuple)
        for sink in owned:
            if _closable(sink):
                raise RuntimeError(
                    f"cannot start again: the pipeline closed the sinks it owned when it "
                    f"ended ({redact(sink_name(sink))}); pass on_prediction="
                    f"sinks.multi_sink([...]) and close it yourself to run a pipeline again"
                )
        return sinks.MultiSink(list(owned), on_error=self.report_sink_error)

    def join(self, timeout: float | None = None) -> bool:
        """Wait until the pipeline has ended (every source finished) or was terminated, and its
        threads have exited.

        After ``terminate()`` this waits for what terminate left behind: a frame that was inside
        the model, a decoder blocked in network I/O. Wait for them before the interpreter exits:
        a thread killed inside a torch kernel at exit aborts the process.

        Returns True when all is done, False when ``timeout`` passed first. A pipeline never
        started has nothing to wait for.
        """
        with self._lock:
            if self._state is PipelineState.CREATED and not self._stop.is_set():
                return True
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._finished.wait(timeout):
            return False
        for thread in (self._inference_thread, self._dispatch_thread):
            if thread is not None and thread is not threading.current_thread():
                thread.join(_remaining(deadline))
                if thread.is_alive():
                    return False
        return all(source.join(_remaining(deadline)) for source in self._sources)

    def terminate(self, *, drain: bool = False) -> None:
        """Stop everything and return promptly, in every state (also while connecting).

        Sources are stopped, results not yet dispatched are dropped, a frame inside the model is
        left to finish on its own (its result is discarded), and sinks the pipeline owns (a list
        given as ``on_prediction``) are flushed and closed. Idempotent.

        Args:
            drain: stop gracefully instead (``sam3-stream run`` on SIGTERM): sources stop
                decoding, but every frame already decoded still goes through the model and
                reaches ``on_prediction``, and owned sinks finish their queues, as when files
                end by themselves; the state is TERMINATED. Returns at once: ``join()`` waits
                for the drain, and a plain ``terminate()`` cuts it short.
        """
        with self._lock:
            # Before start() there is nothing to drain; after a plain terminate() nothing left.
            drain = drain and self._state is PipelineState.RUNNING and not self._stop.is_set()
            self._drain_requested |= drain
        if drain:
            for source in self._sources:
                source.stop(timeout=0, keep_buffered=True)
            self._reader.notifier.notify()
            return
        with self._lock:
            self._stop.set()
        self._dispatch.stop()
        for source in self._sources:
            source.stop(timeout=0)
        self._reader.notifier.notify()
        deadline = time.monotonic() + _STOP_WAIT_S
        for source in self._sources:
            source.join(max(0.0, deadline - time.monotonic()))
        for thread in (self._inference_thread, self._dispatch_thread):
            if thread is not None and thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
        self._finish()

    # ------------------------------------------------------------------ controls

    def pause_stream(self, source_id: int | None = None) -> None:
        """Stop decoding (all sources, or one); live sources release their camera meanwhile.

        A ``source_id`` this pipeline does not have is ignored (with a warning), as in Roboflow;
        the same holds for ``mute_stream`` and ``resume_stream``.
        """
        for source in self._select("pause_stream", source_id):
            source.pause()

    def mute_stream(self, source_id: int | None = None) -> None:
        """Keep decoding but discard frames (all sources, or one); live sources stay connected."""
        for source in self._select("mute_stream", source_id):
            source.mute()

    def resume_stream(self, source_id: int | None = None) -> None:
        """Undo ``pause_stream`` / ``mute_stream``."""
        for source in self._select("resume_stream", source_id):
            source.resume()

    def set_class_names(self, class_names: str | Sequence[str]) -> None:
        """Track other concepts from the next frame on, without reseeding.

        On each source's next frame the tracker applies the change to the running session: an
        added concept is detected from then on, a removed concept's tracks end (their ids are
        never reused), and every other track keeps its memory and its tracker id. ``class_id``
        indexes the new list, so a reorder changes class ids and nothing else.
        """
        names = check_class_names(class_names)
        _check_class_texts(tracker_of(self._registry), names)
        with self._lock:
            old, self._class_names = self._class_names, names
        if names != old:
            self._events.settings_changed({"class_names": list(names), "previous": list(old)})

    def set_threshold(self, threshold: float) -> None:
        """Filter detections at ``threshold`` from the next frame on (no reseed)."""
        value = check_threshold_option(threshold)
        with self._lock:
            old, self._threshold = self._threshold, value
        if value != old:
            self._events.settings_changed({"threshold": value, "previous": old})

    def add_prompt(self, prompt: VisualPrompt, source_id: int | None = None) -> list[int]:
        """Track what ``prompt`` points at in one source, from its next frame (or ``frame_id``).

        Boxes and points are pixels of that source's frames; a prompt with a ``tracker_id``
        refines that object, one without makes new objects. They run beside the concepts, ids
        unique across both, and count towards ``max_objects``. Before ``start()`` the prompt
        waits for the first frame.

        Args:
            prompt: a ``tracker.VisualPrompt``.
            source_id: the source; None with a single source.

        Returns:
            The tracker ids of the new objects, or ``[prompt.tracker_id]``.

        Raises:
            ValueError: the message names the field: ``source_id`` missing or unknown,
                ``state`` when the pipeline has ended, or the prompt's own (``boxes[0]``,
                ``tracker_id``, ``frame_id``, ``max_objects``...).
        """
        source = self._prompt_target(source_id)
        ids = self._registry.add_prompt(source.video_identifier, prompt)
        self._prompted = True
        return ids

    def remove_object(self, tracker_id: int, source_id: int | None = None) -> None:
        """End one live object of a source now, prompted or found by a concept; id retired.

        A concept's object may be found again by the detector, under a new id.

        Raises:
            ValueError: ``source_id`` missing or unknown, or the pipeline has ended.
            KeyError: the source has no live object with ``tracker_id``.
        """
        source = self._prompt_target(source_id)
        self._registry.remove_object(source.video_identifier, tracker_id)

    def _prompt_target(self, source_id: int | None) -> VideoSource:
        """The source a prompt or removal is for, while the pipeline can still run it."""
        with self._lock:
            state = self._state
        if state in (PipelineState.ENDED, PipelineState.TERMINATED):
            raise ValueError(
                f"state: the pipeline is not running ({state.value}); start() it again first"
            )
        if not callable(getattr(self._registry, "add_prompt", None)):
            raise ValueError(
                f"prompts: {type(self._registry).__name__} cannot track box/point prompts"
            )
        if source_id is None:
            if len(self._sources) != 1:
                raise ValueError(
                    f"source_id: this pipeline has {len(self._sources)} sources "
                    f"(0..{len(self._sources) - 1}); say which"
                )
            return self._sources[0]
        for source in self._sources:
            if source.source_id == source_id and not isinstance(source_id, bool):
                return source
        raise ValueError(
            f"source_id: no source {source_id!r} (this pipeline has 0..{len(self._sources) - 1})"
        )

    def report_sink_error(self, sink_name: str, error: BaseException) -> None:
        """Count a sink failure and emit ``SINK_ERROR``.

        The pipeline calls it for sinks it fans out to and for every sink of a ``MultiSink``
        given as ``on_prediction``; an exception from ``on_prediction`` itself is
        ``INFERENCE_RESULTS_DISPATCHING_ERROR`` (Roboflow's event), counted in the same total.
        """
        with self._lock:
            self._sink_errors += 1
            total = self._sink_errors
        self._events.sink_error(sink_name, error, total)

    # ------------------------------------------------------------------ status

    def status(self) -> PipelineStatus:
        """A snapshot: the pipeline, then each source (state, epoch, fps, counters, latency
        p50/p95/max per stage in seconds), then each sink's counters when known.
        ``to_dict()`` gives it as JSON."""
        now = time.monotonic()
        with self._lock:
            state, names, threshold = self._state, self._class_names, self._threshold
            sink_errors = self._sink_errors
        return PipelineStatus(
            state=state,
            model=redact(self._model_name),
            class_names=names,
            threshold=threshold,
            max_fps=self._options.max_fps,
            started_at=self._started_at,
            sink_errors=sink_errors,
            exec_session_id=self._exec_session_id,
            sources=tuple(
                self._metrics[source.source_id].snapshot(
                    source.stats(),
                    getattr(source, "total_frames", None),  # files know their length
                    now,
                )
                for source in self._sources
            ),
            sinks=self._sink_counters(),
        )

    def _sink_counters(self) -> dict[str, SinkCounters] | None:
        """Counters per sink when ``on_prediction`` reports them with a ``stats()`` method, as
        ``MultiSink`` and the service's stream outputs do; any callable may be a sink, so this
        is a question, not a contract."""
        stats = getattr(self._on_prediction, "stats", None)
        if not callable(stats):
            return None
        try:
            counters: Mapping[str, object] = stats()
        except Exception:
            logger.debug("sink stats unavailable", exc_info=True)
            return None
        return {
            redact(name): value
            for name, value in counters.items()
            if isinstance(value, SinkCounters)
        }

    # ------------------------------------------------------------------ internals

    def _select(self, method: str, source_id: object) -> list[VideoSource]:
        """The sources a control applies to, matched by ``==`` as Roboflow does; none for an id
        that is not here (Roboflow ignores it: its own examples pass ids as strings, which
        match nothing), said once per method and id."""
        if source_id is None:
            return list(self._sources)
        selected = [source for source in self._sources if source.source_id == source_id]
        if selected:
            return selected
        self._control_log.log(
            logger,
            logging.WARNING,
            (method, repr(source_id)),
            "%s(source_id=%r): no such source (this pipeline has 0..%d); ignored",
            method,
            source_id,
            len(self._sources) - 1,
        )
        return []

    def _inference_loop(self) -> None:
        self._events.inference_thread_started(self.video_identifiers, self._exec_session_id)
        try:
            while not self._stop.is_set():
                frame = self._reader.read(timeout=_IDLE_WAKE_S)
                if frame is None:
                    self._flush_round()  # idle: a round never waits for a slow source
                    if self._reader.exhausted:
                        break
                elif not self._stop.is_set():
                    dispatch = self._infer(frame)
                    if dispatch is not None:
                        self._hand_over(dispatch)
                self._report_drops()
            if not self._stop.is_set():
                self._flush_round()
            self._report_drops(force=True)
        except Exception:  # a bug here must end the pipeline visibly, not hang it
            logger.exception("the inference loop crashed")
        finally:
            self._close_sessions()
            release_identifiers(self.video_identifiers)
            self._dispatch.close()
            self._events.inference_thread_finished(self.video_identifiers)

    def _infer(self, frame: VideoFrame) -> Dispatch | None:
        """The frame through the model: its result on the way to ``on_prediction``, or None
        when the model failed on it (counted and reported)."""
        source = self._sources[frame.source_id]
        metrics = self._metrics[frame.source_id]
        timing = source.frame_timing(frame.frame_id)
        grabbed_at = timing.grabbed_at if timing is not None else time.monotonic()
        if timing is not None and timing.decode_s is not None:
            metrics.latency["decode"].add(timing.decode_s)
        with self._lock:
            names, threshold = self._class_names, self._threshold
        started = time.perf_counter()
        outputs: dict[str, Any] | None = None
        try:
            if self._frame_workflow is not None:
                outputs = self._frame_workflow(frame.image)  # (H, W, 3) uint8 BGR
            elif names or self._prompted:
                self._before_frame(frame)
                detections = self._registry.process(
                    frame.image,  # (H, W, 3) uint8 BGR
                    video_identifier=frame.video_identifier,
                    frame_id=frame.frame_id,
                    class_names=names,
                    threshold=threshold,
                    epoch=frame.epoch,
                )
                if self._prompter is not None:
                    self._prompter.after_frame(frame, detections)
            else:  # a workflow's empty class_names: nothing to find, the model is not run
                detections = empty_detections()
        except Exception as error:
            self._inference_failed(frame, metrics, error)
            return None
        metrics.latency["inference"].add(time.perf_counter() - started)
        metrics.processed(frame.frame_id, time.monotonic())
        if outputs is not None:
            result = {
                name: add_roboflow_fields(value, frame, parent_id=self._parent_id)
                if isinstance(value, sv.Detections)
                else value
                for name, value in outputs.items()
            }
            return Dispatch(result, frame, grabbed_at, live=source.is_live)
        detections = add_roboflow_fields(detections, frame, parent_id=self._parent_id)
        return Dispatch(self._result(detections), frame, grabbed_at, live=source.is_live)

    def _before_frame(self, frame: VideoFrame) -> None:
        """The workflow's prompts for this frame; one it refuses is said once per stream and
        error, and the frame runs without it."""
        if self._prompter is None:
            return
        try:
            self._prompter.before_frame(frame, self._registry)
        except ValueError as error:
            self._prompt_log.log(
                logger,
                logging.ERROR,
                (frame.video_identifier, str(error)),
                "%s: workflow prompt refused on frame %d: %s",
                frame.video_identifier,
                frame.frame_id,
                error,
            )

    def _hand_over(self, dispatch: Dispatch) -> None:
        """Queue a result for ``on_prediction`` now, or (batch mode) add it to the round.

        A round holds at most one frame per source. It is handed over once every source with
        frames coming has its entry (``RoundRobinReader.may_deliver``), when a source comes round
        again before that, when no frame came (idle) and at the end: never waiting for a slow,
        paused or reconnecting source.
        """
        if not self._batch:
            self._put(dispatch)
            return
        source_id = dispatch.single_frame.source_id
        if source_id in self._round:
            self._flush_round()  # the reader went round: this frame opens the next round
        self._round[source_id] = dispatch
        if all(
            index in self._round or not self._reader.may_deliver(index)
            for index in range(len(self._sources))
        ):
            self._flush_round()

    def _flush_round(self) -> None:
        if not self._round:
            return
        slots = [self._round.get(index) for index in range(len(self._sources))]
        self._round = {}
        self._put(Dispatch.batch(slots))

    def _put(self, dispatch: Dispatch) -> None:
        frames = dispatch.frame if isinstance(dispatch.frame, list) else [dispatch.frame]
        self._events.inference_completed(frames)
        dropped = self._dispatch.put(dispatch)
        if dropped is not None and not self._stop.is_set():
            for frame, _ in dropped.frames():
                self._metrics[frame.source_id].dispatch_dropped += 1

    def _inference_failed(
        self, frame: VideoFrame, metrics: SourceMetrics, error: Exception
    ) -> None:
        metrics.inference_errors += 1
        suppressed = self._error_log.allow()
        if suppressed is not None:
            # A model failure is expected to happen now and then; anything else is a bug.
            logger.error(
                "inference failed on frame %d of %s (%d similar errors suppressed): %s",
                frame.frame_id,
                frame.video_identifier,
                suppressed,
                redact(error),
                exc_info=None if isinstance(error, InferenceError | ValueError) else error,
            )
        self._events.inference_error(frame, error, metrics.inference_errors)

    def _report_drops(self, force: bool = False) -> None:
        """One ``FRAMES_DROPPED`` event per source and second at most: a 30 fps camera on a
        5 fps model drops 25 frames a second, which must not become 25 events."""
        now = time.monotonic()
        if not force and now < self._next_drops_report:
            return
        self._next_drops_report = now + _DROPS_REPORT_EVERY_S
        for source in self._sources:
            metrics = self._metrics[source.source_id]
            total = source.stats().frames_dropped + metrics.dispatch_dropped
            if total > metrics.drops_reported:
                delta, metrics.drops_reported = total - metrics.drops_reported, total
                self._events.frames_dropped(source.source_id, source.video_identifier, delta, total)

    def _dispatch_loop(self) -> None:
        try:
            while (item := self._dispatch.get()) is not None:
                self._deliver(item)
        except BaseException:  # Ctrl-C in a script blocked in start(): stop, as terminate would
            self._stop.set()
            self._dispatch.stop()
            raise
        finally:
            self._finish()

    def _deliver(self, item: Dispatch) -> None:
        started = time.perf_counter()
        try:
            # A round hands lists (SinkMode.BATCH), which Roboflow's sink signature allows.
            self._on_prediction(item.result, cast(Any, item.frame))
        except Exception as error:
            self._dispatching_failed(error)
        elapsed, now = time.perf_counter() - started, time.monotonic()
        for frame, grabbed_at in item.frames():
            metrics = self._metrics[frame.source_id]
            metrics.latency["sinks"].add(elapsed)
            metrics.latency["end_to_end"].add(now - grabbed_at)

    def _dispatching_failed(self, error: Exception) -> None:
        """``on_prediction`` raised: count it, emit Roboflow's event, log it once per error.

        Roboflow logs every occurrence with its traceback; a sink failing on every frame of a
        camera that runs for weeks must not, so each distinct error is logged the first time
        with its traceback and then summarised (``KeyedLogThrottle``). A ``SinkError`` is a
        message for the user (no display, a full disk), logged as that one line.
        """
        name = redact(sink_name(self._on_prediction))
        with self._lock:
            self._sink_errors += 1
            total = self._sink_errors
        self._events.dispatching_error(name, error, total)
        error_type, message = type(error).__name__, redact(error)
        key = (name, error_type, message)
        if isinstance(error, SinkError):
            self._dispatch_log.log(logger, logging.ERROR, key, "%s: %s", name, message)
        else:
            self._dispatch_log.log(
                logger,
                logging.ERROR,
                key,
                "on_prediction %s raised %s: %s",
                name,
                error_type,
                message,
                exc_info=error,
            )

    def _close_sessions(self) -> None:
        """Free the model memory of this pipeline's streams (the registry may be shared)."""
        # A shared registry outlives this pipeline: the next user of these identifiers gets the
        # registry's default budget back, not ours.
        restore_budget = (
            self._options.registry is not None and self._options.max_objects is not None
        )
        for video_identifier in self.video_identifiers:
            try:
                self._registry.close(video_identifier)
                if restore_budget:
                    _set_object_budget(self._registry, [video_identifier], None)
            except Exception:
                logger.exception("closing the session of %s failed", video_identifier)

    def _finish(self) -> None:
        """Wind down once, whoever gets here first: the dispatcher at the end, or terminate()."""
        with self._lock:
            if self._finishing_thread is not None:
                waiter = self._finishing_thread is not threading.current_thread()
            else:
                self._finishing_thread = threading.current_thread()
                waiter = None
        if waiter is not None:
            if waiter:
                self._finished.wait(timeout=30.0)
            return
        try:
            self._wind_down()
        finally:
            self._finished.set()

    def _wind_down(self) -> None:
        inference = self._inference_thread
        if inference is not None and inference is not threading.current_thread():
            inference.join(_STOP_WAIT_S)
        for source in self._sources:
            source.stop(timeout=0)
        deadline = time.monotonic() + _STOP_WAIT_S
        for source in self._sources:
            source.join(max(0.0, deadline - time.monotonic()))
        if inference is None:  # never started: the loop that releases them never ran
            release_identifiers(self.video_identifiers)
        if self._fan_out is not None:
            self._fan_out.close()
        if self._progress is not None:
            self._progress.stop()
        with self._lock:
            terminated = self._stop.is_set() or self._drain_requested
            self._state = PipelineState.TERMINATED if terminated else PipelineState.ENDED
        self._events.finished(terminated, self.status())


def _closable(sink: Any) -> bool:
    """``sinks.close_sink`` closes it: it, or the object of a bound method, has close/release."""
    return any(
        callable(getattr(candidate, "close", None) or getattr(candidate, "release", None))
        for candidate in (sink, getattr(sink, "__self__", None))
    )


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


@runtime_checkable
class ObjectBudget(Protocol):
    """A registry whose object budget can be set per identifier (``SessionRegistry`` can)."""

    def set_max_objects(self, video_identifier: str, max_objects: int | None) -> None: ...


def _set_object_budget(
    registry: FrameProcessor, identifiers: Sequence[str], max_objects: int | None
) -> None:
    """Set (None: clear) a caller's registry's budget for this pipeline's identifiers.

    A registry that cannot take a budget is refused rather than the option silently ignored.
    """
    if not isinstance(registry, ObjectBudget):
        if max_objects is None:
            return
        raise ConfigError(
            f"max_objects={max_objects} needs a registry with set_max_objects(...); "
            f"{type(registry).__name__} has none",
            field="max_objects",
        )
    for video_identifier in identifiers:
        registry.set_max_objects(video_identifier, max_objects)


def _check_class_texts(tracker: Any, class_names: tuple[str, ...]) -> None:
    """Refuse class texts longer than the model reads, before any frame fails on them.

    Only a tracker that can count tokens (``Sam3VideoTracker.check_class_texts``) is asked; a
    stand-in registry without one has no text limit to tell.
    """
    check = getattr(tracker, "check_class_texts", None)
    if check is None:
        return
    try:
        check(class_names)
    except ValueError as error:
        raise ConfigError(str(error), field="class_names") from None


def _frame_workflow(plan: ImageWorkflowPlan | None, tracker: Any) -> FrameWorkflow | None:
    """The image workflow bound to the loaded model, or None for the tracking loop."""
    if plan is None:
        return None
    if tracker is None:
        raise ConfigError(
            "an image workflow needs the SAM3 model itself: pass tracker= (or a registry that "
            "holds one), not a stand-in registry",
            field="registry",
        )
    segmenters = Segmenters.from_tracker(tracker)
    return lambda image: plan.run(image, segmenters)


def _load(options: PipelineOptions) -> FrameProcessor:
    """A session registry on ``options.tracker``, or on the model loaded now (slow)."""
    from tracker import SessionRegistry

    tracker = options.tracker
    if tracker is None:
        from tracker import Sam3VideoTracker

        tracker = Sam3VideoTracker.from_pretrained(
            resolve_model(options.model),
            device=options.device,
            **dict(options.model_options or {}),
        )
    if options.max_objects is None:
        return SessionRegistry(tracker)
    return SessionRegistry(tracker, max_objects=options.max_objects)
