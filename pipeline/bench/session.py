"""``sam3-stream bench session``: a plain HF streaming session against ours, same frames.

Each variant runs in its own spawned process so its resident memory is its own. Printed side by
side: bytes held by the session, process RSS, and mean ms/frame per interval, then the late/early
time ratio of each and the ours/plain ratios at the end. ``bench session --churn`` (many objects
appearing every frame, plain HF stopped early) is ``pipeline.bench.churn``.
"""

from __future__ import annotations

import multiprocessing
import pathlib
import sys
import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Sample:
    frame: int
    ms_per_frame: float
    bytes_held: int
    frames_held: int
    rss_bytes: int


def rss_bytes() -> int:
    """Current resident set size of this process (Linux /proc; peak RSS elsewhere)."""
    try:
        for line in pathlib.Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _progress(variant: str, sample: Sample, frames: int) -> None:
    """Long runs show where they are (stderr, so the report on stdout stays clean)."""
    print(
        f"[{variant}] frame {sample.frame}/{frames}: {sample.ms_per_frame:.0f} ms/frame, "
        f"{sample.bytes_held / 2**20:.1f} MB held, RSS {sample.rss_bytes / 2**20:.0f} MB",
        file=sys.stderr,
        flush=True,
    )


def _plain_loop(tracker: Any, frames: int, interval: int, classes: list[str]) -> list[Sample]:
    from pipeline.bench.plain_hf import PlainHFStream
    from pipeline.sources.sample_clip import sample_frame

    plain = PlainHFStream(tracker.processor, tracker.model, device=tracker.device, classes=classes)
    samples, started = [], time.perf_counter()
    for index in range(frames):
        plain.step(sample_frame(index))
        if (index + 1) % interval == 0:
            held = plain.bytes_held
            elapsed = time.perf_counter() - started
            samples.append(
                Sample(index + 1, 1000 * elapsed / interval, held, plain.frames_held, rss_bytes())
            )
            _progress("plain", samples[-1], frames)
            started = time.perf_counter()
    return samples


def _ours_loop(tracker: Any, frames: int, interval: int, classes: list[str]) -> list[Sample]:
    from tracker import SessionRegistry

    return registry_samples(SessionRegistry(tracker), frames, interval, classes)


def registry_samples(
    registry: Any, frames: int, interval: int, classes: list[str], identifier: str = "bench"
) -> list[Sample]:
    """The sample clip through ``registry`` as ``identifier``; a ``Sample`` every ``interval``."""
    from pipeline.sources.sample_clip import sample_frame

    samples, started = [], time.perf_counter()
    for index in range(frames):
        registry.process(
            sample_frame(index),
            video_identifier=identifier,
            frame_id=index,
            class_names=classes,
            threshold=0.0,
        )
        if (index + 1) % interval == 0:
            stats = registry.stats(identifier)
            elapsed = time.perf_counter() - started
            samples.append(
                Sample(
                    index + 1,
                    1000 * elapsed / interval,
                    stats.bytes_held,
                    stats.frames_held,
                    rss_bytes(),
                )
            )
            _progress("ours", samples[-1], frames)
            started = time.perf_counter()
    return samples


def _variant(
    variant: str,
    model: str,
    device: str,
    overrides: dict,
    frames: int,
    interval: int,
    classes: list[str],
) -> list[Sample]:
    from tracker import Sam3VideoTracker

    tracker = Sam3VideoTracker.from_pretrained(model, device=device, **overrides)
    loop = _plain_loop if variant == "plain" else _ours_loop
    return loop(tracker, frames, interval, classes)


def run_session_bench(
    model: str, *, frames: int, interval: int, device: str, classes: list[str], overrides: dict
) -> dict[str, list[Sample]]:
    """Run both variants in spawned processes; return their samples."""
    context = multiprocessing.get_context("spawn")
    results: dict[str, list[Sample]] = {}
    for variant in ("plain", "ours"):
        # A fresh process per variant: RSS must not carry the other variant's memory.
        with context.Pool(1) as pool:
            results[variant] = pool.apply(
                _variant, (variant, model, device, overrides, frames, interval, classes)
            )
    return results


def format_report(results: dict[str, list[Sample]]) -> str:
    plain, ours = results["plain"], results["ours"]
    lines = [
        f"{'frame':>7} | {'plain MB held':>13} {'RSS MB':>8} {'ms/frame':>9} | "
        f"{'ours MB held':>12} {'RSS MB':>8} {'ms/frame':>9}"
    ]
    for p, o in zip(plain, ours, strict=True):
        lines.append(
            f"{p.frame:>7} | {p.bytes_held / 2**20:>13.1f} {p.rss_bytes / 2**20:>8.0f} "
            f"{p.ms_per_frame:>9.1f} | {o.bytes_held / 2**20:>12.1f} {o.rss_bytes / 2**20:>8.0f} "
            f"{o.ms_per_frame:>9.1f}"
        )
    if len(plain) >= 2:

        def growth(samples: list[Sample]) -> float:
            return samples[-1].ms_per_frame / max(samples[0].ms_per_frame, 1e-9)

        lines += [
            "",
            f"per-frame time late/early: plain {growth(plain):.2f}x, ours {growth(ours):.2f}x",
            f"last interval time ours/plain: {ours[-1].ms_per_frame / plain[-1].ms_per_frame:.2f}",
            "bytes held at the end ours/plain: "
            f"{ours[-1].bytes_held / max(plain[-1].bytes_held, 1):.3f}"
            f" ({ours[-1].bytes_held / 2**20:.1f} MB vs {plain[-1].bytes_held / 2**20:.1f} MB)",
            f"frames held at the end: plain {plain[-1].frames_held}, ours {ours[-1].frames_held}",
        ]
    return "\n".join(lines)
