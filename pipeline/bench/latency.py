"""Frame age at the sink when the camera is faster than the model: this pipeline vs a FIFO queue.

A live source produces frames faster than the model consumes them. A naive loop that queues every
frame (``queue.Queue`` between decoder and model) processes them all, so each result is older
than the last: age grows without bound, by (1 - model rate / camera rate) s every second. This
pipeline keeps only the freshest frame per source, so the age stays at about one model step.

Both run on the same test pattern at the same rate with the same model, one after the other in
the same process, and their ages are compared window by window.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import supervision as sv

from pipeline.loop.contracts import FrameProcessor
from pipeline.sources.testpattern import draw_test_pattern


class SleepingModel(FrameProcessor):
    """A stand-in for ``SessionRegistry`` that takes ``delay_s`` per frame and finds nothing.

    It is the ``FrameProcessor`` the loop needs and nothing more, so the benchmark measures
    queueing alone, on any machine, without SAM3 weights.
    """

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s

    def process(
        self,
        image: np.ndarray,
        *,
        video_identifier: str,
        frame_id: int,
        class_names: Any,
        threshold: float = 0.5,
        epoch: int = 0,
    ) -> sv.Detections:
        time.sleep(self.delay_s)
        return sv.Detections.empty()

    def close(self, video_identifier: str) -> None:
        """Nothing to free: the stand-in keeps no sessions."""


@dataclass(frozen=True)
class AgeSample:
    """One result reaching the sink: when (s since the phase started) and how old its frame was."""

    at_s: float
    age_s: float


@dataclass(frozen=True)
class PhaseResult:
    samples: list[AgeSample]
    backlog: int  # frames still waiting at the end (FIFO) or dropped as stale (this pipeline)


def run_pipeline_phase(
    model: FrameProcessor, *, fps: float, size: tuple[int, int], duration_s: float
) -> PhaseResult:
    """This pipeline on ``testpattern`` for ``duration_s``; ages measured in ``on_prediction``."""
    from pipeline.loop.inference_pipeline import InferencePipeline

    samples: list[AgeSample] = []
    started = time.monotonic()

    def record(predictions: Any, frame: Any) -> None:
        age = (datetime.now() - frame.frame_timestamp).total_seconds()  # both naive local
        samples.append(AgeSample(time.monotonic() - started, age))

    width, height = size
    pipeline = InferencePipeline.init(
        f"testpattern?fps={fps:g}&size={width}x{height}",
        "object",
        record,
        registry=model,
        threshold=0.0,
    )
    pipeline.start(use_main_thread=False)
    pipeline.join(timeout=duration_s)
    pipeline.terminate()
    dropped = pipeline.status().sources[0].stats.frames_dropped
    return PhaseResult(samples, dropped)


def run_fifo_phase(
    model: FrameProcessor, *, fps: float, size: tuple[int, int], duration_s: float
) -> PhaseResult:
    """The naive loop: a producer paced at ``fps`` puts every frame in an unbounded queue."""
    frames: queue.Queue[tuple[int, np.ndarray, datetime]] = queue.Queue()
    stop = threading.Event()
    width, height = size

    def produce() -> None:
        period, next_at, index = 1.0 / fps, time.monotonic(), 0
        while not stop.is_set():
            frames.put((index, draw_test_pattern(index, width, height, fps), datetime.now()))
            index += 1
            next_at += period
            stop.wait(max(0.0, next_at - time.monotonic()))

    producer = threading.Thread(target=produce, name="fifo-producer", daemon=True)
    producer.start()
    samples: list[AgeSample] = []
    started = time.monotonic()
    while time.monotonic() - started < duration_s:
        try:
            index, image, grabbed = frames.get(timeout=0.1)
        except queue.Empty:
            continue
        model.process(
            image,
            video_identifier="bench-latency-fifo",
            frame_id=index + 1,
            class_names=("object",),
            threshold=0.0,
            epoch=0,
        )
        age = (datetime.now() - grabbed).total_seconds()
        samples.append(AgeSample(time.monotonic() - started, age))
    stop.set()
    producer.join()
    return PhaseResult(samples, frames.qsize())


def _stats(ages: list[float]) -> tuple[int, float, float, float] | None:
    if not ages:
        return None
    values = np.asarray(ages)
    p50, p95 = np.percentile(values, [50, 95])
    return len(ages), float(p50), float(p95), float(values.max())


def _cells(stats: tuple[int, float, float, float] | None) -> str:
    if stats is None:
        return f"{'-':>5} {'-':>7} {'-':>7} {'-':>7}"
    count, p50, p95, worst = stats
    return f"{count:>5} {p50:>7.3f} {p95:>7.3f} {worst:>7.3f}"


def format_report(
    ours: PhaseResult,
    fifo: PhaseResult,
    *,
    duration_s: float,
    interval_s: float,
    title: str,
) -> str:
    """The table: per window, n / p50 / p95 / max frame age (s) for both, then the ratios."""
    lines = [
        title,
        f"{'window (s)':<12} {'this pipeline (freshest)':^29}   {'naive FIFO queue':^29}",
        f"{'':<12} {'n':>5} {'p50':>7} {'p95':>7} {'max':>7}   {'n':>5} {'p50':>7} {'p95':>7} "
        f"{'max':>7}",
    ]
    windows = max(1, int(np.ceil(duration_s / interval_s)))
    last: tuple[Any, Any] = (None, None)
    for window in range(windows):
        low, high = window * interval_s, (window + 1) * interval_s

        def ages(phase: PhaseResult, low: float = low, high: float = high) -> list[float]:
            return [s.age_s for s in phase.samples if low <= s.at_s < high]

        row = (_stats(ages(ours)), _stats(ages(fifo)))
        if row[0] is not None and row[1] is not None:
            last = row
        lines.append(f"{f'{low:g}-{high:g}':<12} {_cells(row[0])}   {_cells(row[1])}")
    overall = (
        _stats([s.age_s for s in ours.samples]),
        _stats([s.age_s for s in fifo.samples]),
    )
    lines.append(f"{'overall':<12} {_cells(overall[0])}   {_cells(overall[1])}")
    lines.append(_ratios("last window", *last))
    lines.append(_ratios("overall", *overall))
    lines.append(
        f"at the end the FIFO queue still held {fifo.backlog} unprocessed frame(s); this "
        f"pipeline had dropped {ours.backlog} stale frame(s) instead (counted in status())"
    )
    return "\n".join(lines)


def _ratios(label: str, ours: Any, fifo: Any) -> str:
    if ours is None or fifo is None:
        return f"FIFO / this pipeline, {label}: not enough samples"
    parts = [
        f"{name} {theirs / mine:.1f}x" if mine > 0 else f"{name} -"
        for name, mine, theirs in zip(("p50", "p95", "max"), ours[1:], fifo[1:], strict=True)
    ]
    return f"FIFO / this pipeline, {label}: " + ", ".join(parts)


def run_latency_bench(
    model: FrameProcessor,
    *,
    fps: float,
    size: tuple[int, int],
    duration_s: float,
    interval_s: float,
    title: str,
    progress: Callable[[str], None] = lambda message: None,
) -> str:
    """Both phases, one after the other, and the report."""
    progress(f"this pipeline: {duration_s:g} s ...")
    ours = run_pipeline_phase(model, fps=fps, size=size, duration_s=duration_s)
    progress(f"naive FIFO queue: {duration_s:g} s ...")
    fifo = run_fifo_phase(model, fps=fps, size=size, duration_s=duration_s)
    return format_report(ours, fifo, duration_s=duration_s, interval_s=interval_s, title=title)
