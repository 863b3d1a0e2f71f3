"""``sam3-stream bench session --prompted``: box-prompted tracking, the port's session vs ours.

Two objects are prompted with boxes on frame 0 of the sample clip (no class names). "plain" is
the port's own streaming tracker-video session fed the same way (prompts, then one forward per
frame on the loaded video model's tracker), never pruned; "ours" is ``SessionRegistry`` with the
same prompts, which prunes, rebases and applies the lost rule. Each runs in its own spawned
process; the report is ``pipeline.bench.session.format_report``'s.
"""

from __future__ import annotations

import multiprocessing
import time
from typing import Any

from pipeline.bench.session import Sample, _progress, registry_samples, rss_bytes

PROMPT_BOXES = ((20.0, 40.0, 90.0, 110.0), (150.0, 100.0, 230.0, 180.0))
"""xyxy on the 320x240 sample clip: around the square's start and the disc's path."""


def _plain_loop(tracker: Any, frames: int, interval: int) -> list[Sample]:
    from pipeline.sources.sample_clip import sample_frame
    from tracker.inputs import to_rgb
    from tracker.pruning import visual_session_bytes
    from tracker.visual_prompts import VisualPrompt

    session = tracker.new_visual_session()
    samples, started = [], time.perf_counter()
    for index in range(frames):
        rgb = to_rgb(sample_frame(index))
        if index == 0:
            height, width = rgb.shape[:2]
            prompt = VisualPrompt(boxes=PROMPT_BOXES)
            tracker.add_visual_prompt(session, prompt, [1, 2], 0, height, width)
        tracker.visual_step(session, index, rgb=rgb)
        if (index + 1) % interval == 0:
            elapsed = time.perf_counter() - started
            samples.append(
                Sample(
                    index + 1,
                    1000 * elapsed / interval,
                    visual_session_bytes(session),
                    len(session.processed_frames or {}),
                    rss_bytes(),
                )
            )
            _progress("plain", samples[-1], frames)
            started = time.perf_counter()
    return samples


def _ours_loop(tracker: Any, frames: int, interval: int) -> list[Sample]:
    from tracker import SessionRegistry
    from tracker.visual_prompts import VisualPrompt

    registry = SessionRegistry(tracker)
    registry.add_prompt("bench", VisualPrompt(boxes=PROMPT_BOXES))
    return registry_samples(registry, frames, interval, [])


def _variant(variant: str, model: str, device: str, frames: int, interval: int) -> list[Sample]:
    from tracker import Sam3VideoTracker

    tracker = Sam3VideoTracker.from_pretrained(model, device=device)
    loop = _plain_loop if variant == "plain" else _ours_loop
    return loop(tracker, frames, interval)


def run_prompted_bench(
    model: str, *, frames: int, interval: int, device: str
) -> dict[str, list[Sample]]:
    """Run both variants in spawned processes; return their samples."""
    context = multiprocessing.get_context("spawn")
    results: dict[str, list[Sample]] = {}
    for variant in ("plain", "ours"):
        with context.Pool(1) as pool:
            results[variant] = pool.apply(_variant, (variant, model, device, frames, interval))
    return results
