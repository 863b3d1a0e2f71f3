"""``sam3-stream bench session --churn``: plain HF vs ours while the detector keeps adding objects.

The tiny random checkpoint at threshold 0 finds new "objects" on every frame: the worst case of a
busy scene, and exactly what makes a plain HF streaming session slow down without bound (every
track it ever started is propagated on every later frame). Both variants see the same 640x360
frames of four moving circles, two classes, threshold 0, each in its own spawned process:

- plain: ``PlainHFStream`` (the port's streaming loop as documented, nothing removed). Its cost
  grows with every frame, so it is stopped after ``plain_frames`` frames or once it has run for
  ``plain_budget_s`` seconds, whichever comes first; the report says which.
- ours: ``SessionRegistry`` with its default rules (the object budget, streaming hotstart,
  eviction), or ``max_objects`` when given.

Per variant: objects live, ms per frame early (frames n/8 to n/4: 50-100 of 400) against late
(the last n/8: the last 50 of 400), and bytes held; then ours against plain at plain's last frame.
"""

from __future__ import annotations

import multiprocessing
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

CHURN_WIDTH, CHURN_HEIGHT = 640, 360
CHURN_CLASSES = ("square", "circle")
"""Two concepts, as in the issue's measurement (neither is on screen: the weights are random)."""

_CIRCLES = (
    # (start x, start y, velocity x, velocity y, radius, BGR colour)
    (80, 70, 7, 4, 34, (40, 200, 60)),
    (520, 90, -5, 6, 42, (220, 60, 200)),
    (200, 280, 6, -5, 28, (30, 160, 240)),
    (470, 260, -8, -3, 38, (240, 220, 40)),
)


def churn_frame(index: int, width: int = CHURN_WIDTH, height: int = CHURN_HEIGHT) -> np.ndarray:
    """Frame ``index`` (BGR uint8): four circles moving at their own speeds, bouncing off edges."""
    frame = np.full((height, width, 3), (50, 45, 40), dtype=np.uint8)
    yy, xx = np.ogrid[:height, :width]
    for x0, y0, vx, vy, radius, colour in _CIRCLES:
        cx = _bounce(x0 * width // CHURN_WIDTH + vx * index, radius, width - radius)
        cy = _bounce(y0 * height // CHURN_HEIGHT + vy * index, radius, height - radius)
        frame[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = colour
    return frame


def _bounce(position: int, low: int, high: int) -> int:
    """``position`` folded into [low, high], as a ball bouncing between two walls."""
    span = max(1, high - low)
    travelled = (position - low) % (2 * span)
    return low + (travelled if travelled <= span else 2 * span - travelled)


@dataclass(frozen=True)
class FrameRecord:
    """One frame of one variant: its time, the objects its session tracks, and bytes held."""

    frame: int
    ms: float
    objects_live: int
    bytes_held: int


@dataclass(frozen=True)
class ChurnRun:
    """One variant's run.

    Attributes:
        frames_asked: frames the variant was asked for.
        stop_reason: why it stopped before ``frames_asked`` (None: it ran them all).
        evictions / tentative_tracks: ours only (``SessionStats``), at the end of the run.
    """

    variant: str
    records: list[FrameRecord]
    frames_asked: int
    stop_reason: str | None = None
    evictions: dict[str, int] = field(default_factory=dict)
    tentative_tracks: int | None = None


def _progress(variant: str, records: list[FrameRecord], frames: int, span: int) -> None:
    """Long runs show where they are (stderr, so the report on stdout stays clean): the last
    frame's objects and bytes, the mean ms/frame of the last ``span`` frames."""
    record = records[-1]
    ms = float(np.mean([r.ms for r in records[-span:]]))
    print(
        f"[{variant}] frame {record.frame + 1}/{frames}: {ms:.0f} ms/frame, "
        f"{record.objects_live} objects, {record.bytes_held / 2**20:.1f} MB held",
        file=sys.stderr,
        flush=True,
    )


def _plain_run(
    tracker: Any, frames: int, budget_s: float, interval: int, classes: list[str]
) -> ChurnRun:
    from pipeline.bench.plain_hf import PlainHFStream

    plain = PlainHFStream(tracker.processor, tracker.model, device=tracker.device, classes=classes)
    records: list[FrameRecord] = []
    started = time.perf_counter()
    stop_reason = None
    for index in range(frames):
        image = churn_frame(index)
        before = time.perf_counter()
        plain.step(image)
        ms = 1000 * (time.perf_counter() - before)
        records.append(FrameRecord(index, ms, len(plain.session.obj_ids), plain.bytes_held))
        every = max(1, interval // 10)  # plain is the slow one: show it often
        if (index + 1) % every == 0:
            _progress("plain", records, frames, every)
        if time.perf_counter() - started > budget_s and index + 1 < frames:
            stop_reason = f"time budget of {budget_s:.0f} s used up"
            if (index + 1) % every:
                _progress("plain", records, frames, 1)
            break
    return ChurnRun("plain", records, frames, stop_reason)


def _ours_run(
    tracker: Any, frames: int, interval: int, classes: list[str], max_objects: int | None
) -> ChurnRun:
    from tracker import SessionRegistry

    if max_objects is None:  # every rule at its default, as a user gets it
        registry = SessionRegistry(tracker)
    else:
        registry = SessionRegistry(tracker, max_objects=max_objects)
    records: list[FrameRecord] = []
    for index in range(frames):
        image = churn_frame(index)
        before = time.perf_counter()
        registry.process(
            image, video_identifier="churn", frame_id=index, class_names=classes, threshold=0.0
        )
        ms = 1000 * (time.perf_counter() - before)
        stats = registry.stats("churn")
        records.append(FrameRecord(index, ms, stats.objects_live, stats.bytes_held))
        if (index + 1) % interval == 0:
            _progress("ours", records, frames, interval)
    stats = registry.stats("churn")
    return ChurnRun(
        "ours",
        records,
        frames,
        evictions=dict(stats.evictions),
        tentative_tracks=stats.tentative_tracks,
    )


def _variant(variant: str, model: str, device: str, settings: dict[str, Any]) -> ChurnRun:
    from tracker import Sam3VideoTracker

    tracker = Sam3VideoTracker.from_pretrained(model, device=device)
    classes = list(settings["classes"])
    if variant == "plain":
        return _plain_run(
            tracker,
            settings["plain_frames"],
            settings["plain_budget_s"],
            settings["interval"],
            classes,
        )
    return _ours_run(
        tracker, settings["frames"], settings["interval"], classes, settings["max_objects"]
    )


def run_churn_bench(
    model: str,
    *,
    frames: int,
    plain_frames: int,
    plain_budget_s: float,
    interval: int,
    device: str,
    classes: list[str],
    max_objects: int | None,
) -> dict[str, ChurnRun]:
    """Run plain HF, then ours, each in a fresh spawned process; return both runs."""
    settings = {
        "frames": frames,
        "plain_frames": min(plain_frames, frames),
        "plain_budget_s": plain_budget_s,
        "interval": interval,
        "classes": classes,
        "max_objects": max_objects,
    }
    context = multiprocessing.get_context("spawn")
    runs: dict[str, ChurnRun] = {}
    for variant in ("plain", "ours"):
        with context.Pool(1) as pool:  # a fresh process: neither variant inherits the other's
            runs[variant] = pool.apply(_variant, (variant, model, device, settings))
    return runs


def early_late(records: list[FrameRecord]) -> tuple[range, range]:
    """Frame ranges compared: frames n/8 to n/4 (warm, early) and the last n/8 (late)."""
    count = len(records)
    start = count // 8
    early = range(start, max(start + 1, count // 4))
    late = range(count - max(1, count // 8), count)
    return early, late


def _mean_ms(records: list[FrameRecord], frames: range) -> float:
    return float(np.mean([records[index].ms for index in frames]))


def _mb(value: float) -> str:
    return f"{value / 2**20:.1f} MB"


def _frames(frames: range) -> str:
    """An inclusive frame span for people: ``frames 50-99``, or ``frame 3``."""
    last = frames.stop - 1
    return f"frame {last}" if frames.start == last else f"frames {frames.start}-{last}"


def _interval_rows(runs: dict[str, ChurnRun], interval: int) -> list[str]:
    """Every ``interval`` frames and where plain stopped: objects live, mean ms/frame over the
    ``interval`` frames before, bytes held."""
    lines = [
        f"{'frame':>6} | {'plain objects':>13} {'ms/frame':>9} {'held':>9} | "
        f"{'ours objects':>13} {'ms/frame':>9} {'held':>9}"
    ]
    ends = set(range(interval, len(runs["ours"].records) + 1, interval))
    ends.add(len(runs["plain"].records))  # where plain stopped, against ours at the same frame
    for end in sorted(ends):
        cells = []
        for run in (runs["plain"], runs["ours"]):
            if len(run.records) < end:
                cells.append(f"{'-':>13} {'-':>9} {'-':>9}")
                continue
            record = run.records[end - 1]
            ms = _mean_ms(run.records, range(max(0, end - interval), end))
            cells.append(f"{record.objects_live:>13} {ms:>9.0f} {_mb(record.bytes_held):>9}")
        lines.append(f"{end:>6} | {cells[0]} | {cells[1]}")
    return lines


def format_churn_report(
    runs: dict[str, ChurnRun], *, interval: int, max_objects: int | None = None
) -> str:
    """The comparison as text: rows per interval, a line per variant, then ours against plain at
    plain's last frames."""
    plain, ours = runs["plain"], runs["ours"]
    lines = [
        f"detection churn: {CHURN_WIDTH}x{CHURN_HEIGHT} frames of four moving circles, "
        "threshold 0, each variant in its own process",
    ]
    if plain.stop_reason is not None or len(plain.records) < ours.frames_asked:
        why = plain.stop_reason or f"capped at {plain.frames_asked} frames"
        lines.append(
            f"plain HF ran {len(plain.records)} of ours' {ours.frames_asked} frames ({why}): "
            "it never drops a track, so each frame costs more than the last"
        )
    lines += ["", *_interval_rows(runs, interval)]
    lines += [
        "",
        f"{'variant':<8} {'frames':>6} {'objects live (max/end)':>22} "
        f"{'ms/frame early':>22} {'ms/frame late':>22} {'late/early':>10} {'held at end':>12}",
    ]
    for run in (plain, ours):
        records = run.records
        early, late = early_late(records)
        early_ms, late_ms = _mean_ms(records, early), _mean_ms(records, late)
        objects = f"{max(r.objects_live for r in records)}/{records[-1].objects_live}"
        lines.append(
            f"{run.variant:<8} {len(records):>6} {objects:>22} "
            f"{f'{early_ms:.0f} ({_frames(early)})':>22} "
            f"{f'{late_ms:.0f} (last {len(late)})':>22} "
            f"{late_ms / max(early_ms, 1e-9):>9.2f}x {_mb(records[-1].bytes_held):>12}"
        )
    last = plain.records[-1].frame
    same = ours.records[min(last, len(ours.records) - 1)]
    window = range(max(0, last - max(1, len(plain.records) // 8) + 1), last + 1)
    plain_ms = _mean_ms(plain.records, window)
    ours_ms = _mean_ms(ours.records, range(window.start, min(window.stop, len(ours.records))))
    budget = "the default" if max_objects is None else str(max_objects)
    lines += [
        "",
        f"at plain's last {_frames(window)}: ms/frame ours/plain "
        f"{ours_ms / max(plain_ms, 1e-9):.2f} ({ours_ms:.0f} vs {plain_ms:.0f}); objects live "
        f"{same.objects_live} vs {plain.records[-1].objects_live}; bytes held ours/plain "
        f"{same.bytes_held / max(plain.records[-1].bytes_held, 1):.3f} "
        f"({_mb(same.bytes_held)} vs {_mb(plain.records[-1].bytes_held)})",
        f"ours: max_objects {budget}; objects live never above "
        f"{max(r.objects_live for r in ours.records)}",
    ]
    if ours.evictions:
        reasons = ", ".join(f"{reason} {count}" for reason, count in ours.evictions.items())
        lines.append(
            f"ours: tracks evicted by reason: {reasons}; tentative at the end: "
            f"{ours.tentative_tracks}"
        )
    return "\n".join(lines)
