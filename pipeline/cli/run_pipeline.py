"""What ``sam3-stream run`` does once its config is valid: build, run, stop cleanly on a signal.

Clean stop, the rule in one place: SIGINT and SIGTERM only set an event. The main thread sees it
within ``_POLL_S`` and drains (``terminate(drain=True)``): sources stop decoding, every frame
already decoded goes through the model and reaches every sink, and the sinks finish their queues
and finalise their files, within ``_DRAIN_S``. Nothing heavy runs inside the signal handler, so a
signal that lands while a lock is held cannot deadlock the shutdown. A second signal falls back
to the default action, for a user who really wants out now (video files are fragmented MP4s, so
even that leaves them playable up to their last fragment).

Exit codes: 0 when the sources ended or the run was stopped with nothing lost; 1 when output is
incomplete: a source gave up (ERROR), a file was truncated or damaged, or a sink lost output. A
sink that cannot write at all (``SinkWriteError``: disk full) ends the run at once, since every
later frame would be lost too. Each cause is one ``sam3-stream: error:`` line. (2, from
``pipeline.cli.main``, is a bad flag, config, reference or sink refused before any work.)

Prompts (``--box`` / ``--point`` / ``prompts:``) go to every source before its first frame. Whether
they fit its frames is known only once it decodes one; the registry then drops a prompt that does
not fit with an ERROR log. The user asked for that object, so a run tracking without it would be
a silent failure (on a camera, forever): ``PromptFit`` watches each source's first resolution and
stops the run, which exits 2 with one line naming the flag or field.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

from pipeline.config.run_config import PipelineConfig

logger = logging.getLogger(__name__)

_POLL_S = 0.2
_DRAIN_S = 60.0  # a graceful stop's bound: a few buffered frames through the model, sink queues
_STRAGGLERS_S = 60.0


def run_config(config: PipelineConfig, *, stop: threading.Event | None = None) -> int:
    """Run the pipeline ``config`` describes until its sources end or ``stop`` is set.

    Returns the exit code (see the module docstring): 0, or 1 when output is incomplete.

    Raises:
        Sam3StreamError: a bad reference, sink spec or model (the CLI prints it on one line).
    """
    import sinks
    from pipeline.loop.inference_pipeline import InferencePipeline

    stop = stop or threading.Event()
    write_failure = _FirstWriteFailure(stop)
    built: list[Any] = []
    fan_out: sinks.MultiSink | None = None
    try:
        for spec in config.sinks:
            built.append(sinks.parse_sink_spec(spec))
        if built:
            fan_out = sinks.MultiSink(built, on_error=write_failure.record)
        else:
            logger.warning("no sink given: detections are only counted (add --sink)")
        prompts = [prompt.to_visual_prompt() for prompt in config.prompts]
        pipeline = InferencePipeline.init(
            video_reference=config.references,
            class_names=config.classes,
            on_prediction=fan_out or _discard,
            model=config.model,
            threshold=config.threshold,
            max_fps=config.max_fps,
            device=config.device,
            video_identifiers=config.video_identifiers,
            show_progress=config.show_progress,
            status_interval_s=config.status_interval_s,
            max_objects=config.max_objects,
            model_options=config.model_options,
            prompts=prompts or None,
            **config.source_options.model_dump(),
        )
    except BaseException:
        if fan_out is not None:
            fan_out.close()
        else:
            for sink in built:
                sinks.close_sink(sink)
        raise
    fit = PromptFit(config)
    try:
        with _stop_on_signals(stop):
            pipeline.start(use_main_thread=False)
            while not pipeline.join(timeout=_POLL_S):
                if fit.pending and fit.check(pipeline.status()):
                    stop.set()
                if stop.is_set():
                    _drain(pipeline)
                    break
            pipeline.terminate()
            # A frame may still be inside the model: let it finish, or the interpreter's exit
            # would kill the thread inside torch and abort the process.
            if not pipeline.join(timeout=_STRAGGLERS_S):
                logger.warning(
                    "a pipeline thread is still busy after %.0f s; exiting anyway", _STRAGGLERS_S
                )
    finally:
        if fan_out is not None:
            fan_out.close(timeout=_DRAIN_S)  # each sink finishes its queue, files finalised
    status = pipeline.status()
    print(
        f"processed {status.frames_processed} frame(s) from {len(status.sources)} "
        f"source(s); {status.inference_errors} inference error(s), "
        f"{status.sink_errors} sink error(s)",
        file=sys.stderr,
    )
    misfits = fit.check(status) if fit.pending else fit.problems
    problems = _incomplete_output(status, write_failure.first)
    for problem in [*misfits, *problems]:
        print(f"sam3-stream: error: {problem}", file=sys.stderr)
    return 2 if misfits else 1 if problems else 0


class PromptFit:
    """Checks the run's prompts against each source's frame size, once, at its first frame.

    Examples:
        >>> from pipeline.config.run_config import parse_config
        >>> config = parse_config(
        ...     {"sources": ["a.mp4"], "prompts": [{"box": [0, 0, 90, 90]}]}, origin="run.yaml"
        ... )
        >>> PromptFit(config).pending
        True
    """

    def __init__(self, config: PipelineConfig) -> None:
        self._prompts = [(prompt.origin, prompt.to_visual_prompt()) for prompt in config.prompts]
        self._unchecked = set(range(len(config.sources))) if self._prompts else set()
        self.problems: list[str] = []

    @property
    def pending(self) -> bool:
        """True while some source with prompts has not shown its frame size yet."""
        return bool(self._unchecked)

    def check(self, status: Any) -> list[str]:
        """Check every source of ``status`` that has a resolution now; returns all problems."""
        for source in status.sources:
            stats = source.stats
            if stats.source_id not in self._unchecked or stats.resolution is None:
                continue
            self._unchecked.discard(stats.source_id)
            width, height = stats.resolution
            for origin, prompt in self._prompts:
                try:
                    prompt.check_frame(height=height, width=width)
                except ValueError as error:
                    detail = str(error).partition(": ")[2] or str(error)
                    self.problems.append(
                        f"{origin}: does not fit source {stats.source_id} ({stats.reference}): "
                        f"{detail}"
                    )
        return self.problems


def _drain(pipeline: Any) -> None:
    """Stop decoding, let every decoded frame reach the sinks; cut short after ``_DRAIN_S``."""
    logger.info("stopping: no more decoding; the frames already decoded go to the sinks")
    pipeline.terminate(drain=True)
    if not pipeline.join(timeout=_DRAIN_S):
        logger.warning("frames still in flight after %.0f s of draining; dropping them", _DRAIN_S)


class _FirstWriteFailure:
    """The sinks' ``on_error``: the first ``SinkWriteError`` is kept and stops the run."""

    def __init__(self, stop: threading.Event) -> None:
        self._stop = stop
        self._lock = threading.Lock()
        self.first: tuple[str, BaseException] | None = None

    def record(self, sink_name: str, error: BaseException) -> None:
        from sinks import SinkWriteError

        if not isinstance(error, SinkWriteError):
            return  # counted by the pipeline; reported at the end
        with self._lock:
            if self.first is not None:
                return
            self.first = (sink_name, error)
        self._stop.set()


def _incomplete_output(status: Any, write_failure: tuple[str, BaseException] | None) -> list[str]:
    """One line per reason the run's output is incomplete; empty when nothing was lost."""
    from pipeline.redact import redact

    problems = []
    for source in status.sources:
        stats = source.stats
        reason = stats.end_reason or ""
        if stats.state == "ERROR":
            problems.append(f"source {stats.source_id} {stats.reference} failed: {reason}")
        elif stats.kind == "file" and reason.startswith("truncated"):
            problems.append(f"source {stats.source_id} {stats.reference}: {reason}")
        elif stats.kind == "file" and stats.decode_errors:
            problems.append(
                f"source {stats.source_id} {stats.reference}: {stats.decode_errors} corrupt "
                "packet(s) skipped; frames are missing from the output"
            )
    if write_failure is not None:
        name, error = write_failure
        problems.append(f"sink {redact(name)} stopped the run: {redact(error)}")
    elif status.sink_errors:
        problems.append(
            f"{status.sink_errors} sink error(s): some output was not delivered (see the log)"
        )
    return problems


def _discard(predictions: Any, video_frame: Any) -> None:
    """The sink of a run without sinks: results are counted by the pipeline, nothing else."""


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT/SIGTERM set ``stop``; a second one gets the default action."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may install handlers; the caller stops us by ``stop``
        return
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {signum: signal.getsignal(signum) for signum in signals}

    def request_stop(signum: int, _frame: Any) -> None:
        stop.set()
        for other in signals:
            signal.signal(other, signal.SIG_DFL if other == signal.SIGTERM else previous[other])

    for signum in signals:
        signal.signal(signum, request_stop)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
