"""``sam3-stream bench throughput``: many streams on one model, the plain HF loop against ours.

The same decoded frames go through three variants in one process, on one loaded model:

- ``plain HF``: one HF streaming session per stream, stepped in turn from one thread, as the
  transformers docs show it (processor -> ``model(frame=...)`` -> ``postprocess_outputs``);
- ``ours unbatched``: ``SessionRegistry`` with one thread per stream, batching off;
- ``ours batched``: the same with cross-stream backbone batching on.

Every variant ends each frame the same way: ``supervision.Detections`` serialised to a JSON record
(``sinks.serialize``), the work a JSON-lines sink does. Each variant first runs ``warmup`` frames
per stream untimed (kernels for every batch size get created there), then the timed frames on
fresh sessions. With ``repeats`` > 1 the variant order alternates (ABC, CBA, ...) and times add
up, which evens out a shared machine's load drifting during the run.

The plain loop runs in a worker thread, not the main thread. On a machine with more runnable
threads than cores, libgomp spins at full count while a process has no more OpenMP threads than
CPUs and throttles once it has more; a single-threaded main-thread loop measured 2.5-5x the CPU
time of the same loop in a worker thread (``OMP_WAIT_POLICY=PASSIVE`` removed the gap). Running
every variant off the main thread compares the code paths, not the spin policy.
"""

from __future__ import annotations

import os
import pathlib
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from tracker.batching import DEFAULT_GATHER_WINDOW_MS

VARIANTS = ("plain HF", "ours unbatched", "ours batched")
FRAME_OFFSET = 7  # stream s starts this many frames further into the clip than stream s-1


@dataclass
class VariantResult:
    """Timings of one variant, summed over repeats.

    Attributes:
        name: one of ``VARIANTS``.
        wall_s: wall time of the timed frames.
        stream_s: per stream, wall time until its last frame was done.
        stages: seconds per stage, summed over threads (threaded stages overlap).
        frames: frames processed (all streams).
        batching: batch-formation statistics of the batched variant.
    """

    name: str
    wall_s: float = 0.0
    stream_s: list[float] = field(default_factory=list)
    stages: dict[str, float] = field(default_factory=dict)
    frames: int = 0
    batching: Any = None


@dataclass
class BenchSetup:
    """What every variant shares."""

    tracker: Any
    frames: list[np.ndarray]  # decoded BGR (H, W, 3) uint8
    streams: int
    frames_per_stream: int
    classes: list[str]
    threshold: float
    gather_window_ms: float
    max_batch: int

    def stream_frames(self, stream: int, count: int) -> list[np.ndarray]:
        total = len(self.frames)
        return [self.frames[(i + FRAME_OFFSET * stream) % total] for i in range(count)]


def decode_clip(path: str | os.PathLike[str], count: int) -> tuple[list[np.ndarray], float]:
    """The first ``count`` frames of a video as BGR arrays, and the seconds decoding took."""
    import av

    frames: list[np.ndarray] = []
    started = time.perf_counter()
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="bgr24"))  # (H, W, 3) uint8 BGR
            if len(frames) >= count:
                break
    return frames, time.perf_counter() - started


def _video_frame(image: np.ndarray, stream: int, frame_id: int) -> Any:
    from pipeline.video_frame import VideoFrame

    return VideoFrame(
        image=image,
        frame_id=frame_id,
        frame_timestamp=datetime.now(),  # naive local, as sources give
        source_id=stream,
        video_identifier=f"stream-{stream}",
        comes_from_video_file=True,
    )


def _serialise(clock: Any, detections: Any, image: np.ndarray, stream: int, index: int) -> None:
    from sinks.serialize import dumps, frame_record

    with clock.measure("sinks"):
        dumps(frame_record(detections, _video_frame(image, stream, index)))


def run_plain(setup: BenchSetup, count: int, clock: Any) -> tuple[float, list[float]]:
    """One HF streaming session per stream, stepped in turn from this thread."""
    from pipeline.bench.plain_hf import PlainHFStream, to_detections

    tracker = setup.tracker
    streams = [
        PlainHFStream(
            tracker.processor,
            tracker.model,
            device=tracker.device,
            classes=setup.classes,
            autocast_dtype=tracker.compute_dtype,
            clock=clock,
        )
        for _ in range(setup.streams)
    ]
    per_stream = [setup.stream_frames(s, count) for s in range(setup.streams)]
    started = time.perf_counter()
    for index in range(count):
        for stream, plain in enumerate(streams):
            bgr = per_stream[stream][index]
            outputs = plain.step(bgr)
            with clock.measure("postprocess"):
                height, width = bgr.shape[:2]
                detections = to_detections(
                    outputs, threshold=setup.threshold, height=height, width=width
                )
            _serialise(clock, detections, bgr, stream, index)
    wall = time.perf_counter() - started
    return wall, [wall] * setup.streams


def run_ours(setup: BenchSetup, count: int, clock: Any) -> tuple[float, list[float]]:
    """``SessionRegistry`` with one thread per stream (batching as the tracker is set)."""
    from tracker import SessionRegistry

    registry = SessionRegistry(setup.tracker)
    per_stream = [setup.stream_frames(s, count) for s in range(setup.streams)]
    go = threading.Event()
    finished = [0.0] * setup.streams
    errors: list[BaseException] = []

    def feed(stream: int) -> None:
        go.wait()
        try:
            for index, bgr in enumerate(per_stream[stream]):
                detections = registry.process(
                    bgr,
                    video_identifier=f"stream-{stream}",
                    frame_id=index,
                    class_names=setup.classes,
                    threshold=setup.threshold,
                )
                _serialise(clock, detections, bgr, stream, index)
        except BaseException as error:  # reported by the main thread
            errors.append(error)
        finished[stream] = time.perf_counter()

    threads = [
        threading.Thread(target=feed, args=(s,), name=f"bench-stream-{s}", daemon=True)
        for s in range(setup.streams)
    ]
    for thread in threads:
        thread.start()
    started = time.perf_counter()
    go.set()
    for thread in threads:
        thread.join()
    registry.close_all()
    if errors:
        raise errors[0]
    return max(finished) - started, [end - started for end in finished]


def _off_main_thread(runner: Any, setup: BenchSetup, count: int, clock: Any) -> Any:
    """``runner(setup, count, clock)`` in a worker thread (see the module docstring)."""
    outcome: dict[str, Any] = {}

    def body() -> None:
        try:
            outcome["value"] = runner(setup, count, clock)
        except BaseException as error:  # re-raised in the caller
            outcome["error"] = error

    thread = threading.Thread(target=body, name="bench-driver", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _run_variant(setup: BenchSetup, name: str, result: VariantResult, warmup: int) -> None:
    from tracker.stages import StageClock

    tracker = setup.tracker
    tracker.set_batching(
        name == "ours batched",
        gather_window_ms=setup.gather_window_ms,
        max_batch=setup.max_batch,
    )
    runner = run_plain if name == "plain HF" else run_ours
    if warmup:
        _off_main_thread(runner, setup, warmup, StageClock())
    tracker.set_batching(
        name == "ours batched",
        gather_window_ms=setup.gather_window_ms,
        max_batch=setup.max_batch,
    )  # fresh statistics for the timed frames
    clock = tracker.stage_clock
    clock.reset()
    wall, stream_s = _off_main_thread(runner, setup, setup.frames_per_stream, clock)
    result.wall_s += wall
    previous = result.stream_s or [0.0] * len(stream_s)
    result.stream_s = [a + b for a, b in zip(previous, stream_s, strict=True)]
    result.frames += setup.frames_per_stream * setup.streams
    for stage, seconds in clock.totals().items():
        result.stages[stage] = result.stages.get(stage, 0.0) + seconds
    stats = tracker.batching_stats()
    if stats is not None:
        result.batching = stats if result.batching is None else _merge(result.batching, stats)


def _merge(first: Any, second: Any) -> Any:
    """Batch statistics of two repeats as one."""
    merged = type(first)(
        batches=first.batches + second.batches,
        frames=first.frames + second.frames,
        largest_batch=max(first.largest_batch, second.largest_batch),
        closed_complete=first.closed_complete + second.closed_complete,
        closed_full=first.closed_full + second.closed_full,
        closed_by_window=first.closed_by_window + second.closed_by_window,
        turnaround_s=first.turnaround_s + second.turnaround_s,
        turnarounds=first.turnarounds + second.turnarounds,
    )
    for sizes in (first.sizes, second.sizes):
        for size, count in sizes.items():
            merged.sizes[size] = merged.sizes.get(size, 0) + count
    return merged


def run_throughput_bench(
    model: str,
    *,
    streams: int,
    frames: int,
    device: str = "auto",
    dtype: str = "auto",
    classes: list[str],
    threshold: float = 0.0,
    gather_window_ms: float = DEFAULT_GATHER_WINDOW_MS,
    max_batch: int = 8,
    overrides: dict[str, Any] | None = None,
    video: str | None = None,
    size: tuple[int, int] = (320, 240),
    warmup: int = 2,
    repeats: int = 1,
    compile_vision: bool = False,
) -> dict[str, Any]:
    """Decode once, run every variant, return the figures ``format_report`` prints."""
    import torch

    from pipeline.sources.sample_clip import write_sample_clip
    from tracker import Sam3VideoTracker
    from tracker.stages import StageClock, detach

    needed = frames + FRAME_OFFSET * (streams - 1)
    with tempfile.TemporaryDirectory(prefix="sam3-bench-") as scratch:
        if video is None:
            width, height = size
            video = str(
                write_sample_clip(
                    pathlib.Path(scratch) / "clip.mp4", frames=needed, width=width, height=height
                )
            )
        decoded, decode_s = decode_clip(video, needed)
    if not decoded:
        from pipeline.errors import ConfigError

        raise ConfigError(f"{video} holds no decodable video frames")

    load_before = os.getloadavg()
    tracker = Sam3VideoTracker.from_pretrained(
        model,
        device=device,
        dtype=dtype,
        max_batch=max_batch,
        compile_vision=compile_vision,
        **(overrides or {}),
    )
    synchronize = torch.cuda.synchronize if tracker.device.type == "cuda" else None
    tracker.stage_clock = StageClock(synchronize=synchronize)
    handles = tracker.stage_clock.attach(tracker.model)
    setup = BenchSetup(
        tracker=tracker,
        frames=decoded,
        streams=streams,
        frames_per_stream=frames,
        classes=classes,
        threshold=threshold,
        gather_window_ms=gather_window_ms,
        max_batch=max_batch,
    )
    results = {name: VariantResult(name) for name in VARIANTS}
    try:
        for repeat in range(repeats):
            order = VARIANTS if repeat % 2 == 0 else tuple(reversed(VARIANTS))
            for name in order:
                _run_variant(setup, name, results[name], warmup)
    finally:
        detach(handles)
        tracker.stage_clock = None
    return {
        "model": model,
        "device": str(tracker.device),
        "dtype": str(tracker.compute_dtype).removeprefix("torch."),
        "streams": streams,
        "frames": frames,
        "repeats": repeats,
        "size": tuple(decoded[0].shape[1::-1]),
        "classes": classes,
        "gather_window_ms": gather_window_ms,
        "decode_ms": 1000 * decode_s / len(decoded),
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "results": results,
    }


def format_report(report: dict[str, Any]) -> str:
    """The table ``sam3-stream bench throughput`` prints."""
    results: dict[str, VariantResult] = report["results"]
    plain = results["plain HF"]
    width, height = report["size"]
    lines = [
        f"model {report['model']} on {report['device']} ({report['dtype']}), "
        f"{report['streams']} stream(s) x {report['frames']} frames x {report['repeats']} "
        f"repeat(s), {width}x{height}, classes {', '.join(report['classes'])}",
        "load average (1/5/15 min): before "
        + " ".join(f"{v:.2f}" for v in report["load_before"])
        + ", after "
        + " ".join(f"{v:.2f}" for v in report["load_after"]),
        "",
        f"{'':<26}" + "".join(f"{name:>16}" for name in VARIANTS),
    ]

    def row(label: str, values: list[str]) -> None:
        lines.append(f"{label:<26}" + "".join(f"{value:>16}" for value in values))

    def fps(result: VariantResult) -> float:
        return result.frames / result.wall_s if result.wall_s else 0.0

    row("aggregate frames/s", [f"{fps(r):.2f}" for r in results.values()])
    row("ratio vs plain HF", [f"{fps(r) / max(fps(plain), 1e-12):.2f}" for r in results.values()])
    for stream in range(report["streams"]):
        per_stream = report["frames"] * report["repeats"]
        row(
            f"stream {stream} frames/s",
            [
                f"{per_stream / r.stream_s[stream]:.2f}" if r.stream_s[stream] else "-"
                for r in results.values()
            ],
        )
    lines += ["", "per-stage ms per frame (summed over threads; threaded stages overlap):"]
    row("decode (once, shared)", [f"{report['decode_ms']:.1f}"] * len(results))
    for stage in ("preprocess", "backbone", "detector", "tracker", "postprocess", "prune", "sinks"):
        row(
            stage,
            [
                f"{1000 * r.stages[stage] / r.frames:.1f}" if stage in r.stages else "-"
                for r in results.values()
            ],
        )
    row("wall ms per frame", [f"{1000 * r.wall_s / r.frames:.1f}" for r in results.values()])
    batching = results["ours batched"].batching
    if batching is not None:
        lines += [
            "",
            f"backbone batches: {batching.batches} for {batching.frames} frames "
            f"(mean {batching.mean_batch:.2f}, largest {batching.largest_batch}); closed when "
            f"all expected streams had queued {batching.closed_complete}, full "
            f"{batching.closed_full}, by the {report['gather_window_ms']:g} ms window "
            f"{batching.closed_by_window}",
            f"stream turnaround (step done -> next frame queued): mean "
            f"{batching.mean_turnaround_ms:.1f} ms; a window shorter than this rarely batches",
        ]
    return "\n".join(lines)
