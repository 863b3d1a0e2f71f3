"""What ``sam3-stream run`` does once its config is valid: build, run, stop cleanly on a signal.

Clean stop, the rule in one place: SIGINT and SIGTERM only set an event. The main thread sees it
within ``_POLL_S``, calls ``terminate()`` (sources closed, threads stopped), and the pipeline
closes the sinks it was given, which flushes their queues and finalises their files (an MP4
without its index does not play). Nothing heavy runs inside the signal handler, so a signal that
lands while a lock is held cannot deadlock the shutdown. A second signal falls back to the
default action, for a user who really wants out now.
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
_STRAGGLERS_S = 60.0


def run_config(config: PipelineConfig, *, stop: threading.Event | None = None) -> int:
    """Run the pipeline ``config`` describes until its sources end or ``stop`` is set.

    Returns the exit code: 0 when it ended or was stopped, 1 when a source gave up (ERROR).

    Raises:
        Sam3StreamError: a bad reference, sink spec or model (the CLI prints it on one line).
    """
    import sinks
    from pipeline.loop.inference_pipeline import InferencePipeline

    built: list[Any] = []
    try:
        for spec in config.sinks:
            built.append(sinks.parse_sink_spec(spec))
        if not built:
            logger.warning("no sink given: detections are only counted (add --sink)")
        pipeline = InferencePipeline.init(
            video_reference=config.references,
            class_names=config.classes,
            on_prediction=built or _discard,
            model=config.model,
            threshold=config.threshold,
            max_fps=config.max_fps,
            device=config.device,
            video_identifiers=config.video_identifiers,
            show_progress=config.show_progress,
            status_interval_s=config.status_interval_s,
            max_objects=config.max_objects,
            model_options=config.model_options,
            **config.source_options.model_dump(),
        )
    except BaseException:
        for sink in built:
            sinks.close_sink(sink)
        raise
    stop = stop or threading.Event()
    with _stop_on_signals(stop):
        pipeline.start(use_main_thread=False)
        while not pipeline.join(timeout=_POLL_S):
            if stop.is_set():
                logger.info("stopping: closing sources, flushing sinks")
                break
        pipeline.terminate()
        # A frame may still be inside the model: let it finish, or the interpreter's exit
        # would kill the thread inside torch and abort the process.
        if not pipeline.join(timeout=_STRAGGLERS_S):
            logger.warning(
                "a pipeline thread is still busy after %.0f s; exiting anyway", _STRAGGLERS_S
            )
    status = pipeline.status()
    print(
        f"processed {status.frames_processed} frame(s) from {len(status.sources)} "
        f"source(s); {status.inference_errors} inference error(s), "
        f"{status.sink_errors} sink error(s)",
        file=sys.stderr,
    )
    return 1 if any(source.stats.state == "ERROR" for source in status.sources) else 0


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
