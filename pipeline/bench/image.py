"""Several concept prompts on one image: one batched request vs one forward per prompt.

``SegmentAnything3.segment_image`` runs the vision encoder once per image and every prompt of a
request as one batch through the prompt-dependent layers. The alternative a client without
batching has is one request per prompt, each paying the vision pass again. Both serve the same
N prompts on the same image with the same loaded model, alternating, in one process; the figure
is milliseconds per request of N prompts and the ratio of the two.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

WAYS = ("batched", "per_prompt")


@dataclass(frozen=True)
class ImageBenchReport:
    """Milliseconds per request of ``prompts`` prompts, both ways, and their ratio.

    Attributes:
        model: the checkpoint measured.
        device: where it ran.
        image_size: (width, height) of the image.
        prompts: prompts per request.
        repeats: timed requests per way.
        batched_ms: (median, p90) of one request carrying every prompt.
        per_prompt_ms: (median, p90) of one forward per prompt (all N, summed per request).
        ratio: per-prompt median / batched median (above 1: batching is faster).
    """

    model: str
    device: str
    image_size: tuple[int, int]
    prompts: int
    repeats: int
    batched_ms: tuple[float, float]
    per_prompt_ms: tuple[float, float]
    ratio: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_image_bench(
    model: str,
    *,
    prompts: int = 8,
    repeats: int = 5,
    warmup: int = 1,
    size: tuple[int, int] = (640, 480),
    device: str = "auto",
    dtype: str = "auto",
    image: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> ImageBenchReport:
    """Load ``model`` once, then time both ways ``repeats`` times each, alternating.

    Args:
        model: Hub id, ``sam3/sam3_final`` or a directory.
        prompts: text prompts per request (``"object 0"``, ``"object 1"``...), 1 to 16.
        repeats: timed requests per way.
        warmup: untimed requests per way first (allocator, kernels).
        size: (width, height) of the synthetic image when ``image`` is None.
        image: an image file to use instead.
    """
    from tracker import Sam3Prompt, SegmentAnything3
    from tracker.image import load_rgb

    segmenter = SegmentAnything3(model_id=model, device=device, dtype=dtype)
    rgb = load_rgb(image) if image is not None else _synthetic(size)
    bgr = np.ascontiguousarray(rgb[..., ::-1])  # (H, W, 3) uint8 BGR
    texts = [Sam3Prompt(type="text", text=f"object {index}") for index in range(prompts)]

    def batched() -> None:
        segmenter.segment_image(bgr, texts, output_prob_thresh=0.5)

    def per_prompt() -> None:
        for prompt in texts:
            segmenter.segment_image(bgr, [prompt], output_prob_thresh=0.5)

    runs = {"batched": batched, "per_prompt": per_prompt}
    for _ in range(warmup):
        for run in runs.values():
            run()
    timings: dict[str, list[float]] = {way: [] for way in WAYS}
    for index in range(repeats):
        order = WAYS if index % 2 == 0 else WAYS[::-1]
        for way in order:
            started = time.perf_counter()
            runs[way]()
            timings[way].append((time.perf_counter() - started) * 1000)
        if progress is not None:
            progress(f"repeat {index + 1}/{repeats}")
    batched_ms, per_prompt_ms = (_median_p90(timings[way]) for way in WAYS)
    return ImageBenchReport(
        model=model,
        device=str(segmenter.tracker.device),
        image_size=(rgb.shape[1], rgb.shape[0]),
        prompts=prompts,
        repeats=repeats,
        batched_ms=batched_ms,
        per_prompt_ms=per_prompt_ms,
        ratio=per_prompt_ms[0] / batched_ms[0],
    )


def format_report(report: ImageBenchReport) -> str:
    """Two lines a person reads, then the report as one JSON line."""
    import json

    width, height = report.image_size
    return "\n".join(
        [
            f"{report.prompts} prompts on one {width}x{height} image, {report.model} on "
            f"{report.device}, {report.repeats} requests each way:",
            f"  batched (one request)   median {report.batched_ms[0]:.1f} ms, "
            f"p90 {report.batched_ms[1]:.1f} ms",
            f"  one forward per prompt  median {report.per_prompt_ms[0]:.1f} ms, "
            f"p90 {report.per_prompt_ms[1]:.1f} ms",
            f"  batched is {report.ratio:.2f}x faster",
            json.dumps(report.as_dict()),
        ]
    )


def _median_p90(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return statistics.median(ordered), p90


def _synthetic(size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8 RGB with shapes on a gradient: content, not noise."""
    import cv2

    width, height = size
    image = np.zeros((height, width, 3), np.uint8)
    image[:] = np.linspace(0, 200, width, dtype=np.uint8)[None, :, None]
    cv2.rectangle(image, (width // 8, height // 8), (width // 2, height // 2), (255, 0, 0), -1)
    cv2.circle(image, (3 * width // 4, height // 2), min(width, height) // 6, (0, 255, 0), -1)
    return image
