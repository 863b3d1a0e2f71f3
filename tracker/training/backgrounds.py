"""Varied backgrounds for the synthetic scenes, so a model must learn shapes, not "not grey".

A detector trained on shapes over one flat colour learns "anything that is not the background".
Flat colours, gradients, blotchy noise and stripes in random tints make the background vary as much
as the objects do. Every background pixel stays within ``[BACKGROUND_MIN, BACKGROUND_MAX]`` per
channel, while every object colour (``shapes.COLOURS``) has a channel at 255: an object is never
the background's colour, and the ground truth masks are exactly the pixels of that colour.
"""

from __future__ import annotations

import cv2
import numpy as np

BACKGROUND_KINDS: tuple[str, ...] = ("flat", "gradient", "noise", "stripes")
"""The background styles a clip is drawn on, one per clip."""

BACKGROUND_MIN = 16
"""Darkest background channel value."""

BACKGROUND_MAX = 200
"""Brightest background channel value: below every object colour's 255 channel."""


def random_tint(rng: np.random.Generator) -> np.ndarray:
    """A BGR colour ``(3,)`` float in the background range: any hue, muted to dull."""
    base = rng.uniform(BACKGROUND_MIN + 10, BACKGROUND_MAX - 10)
    spread = rng.uniform(0, 60)
    return np.clip(base + rng.uniform(-spread, spread, size=3), BACKGROUND_MIN, BACKGROUND_MAX)


def draw_background(kind: str, rng: np.random.Generator, *, height: int, width: int) -> np.ndarray:
    """A ``(height, width, 3)`` uint8 BGR background of style ``kind``, drawn from ``rng``."""
    if kind == "flat":
        image = np.broadcast_to(random_tint(rng), (height, width, 3)).astype(np.float64)
    elif kind == "gradient":
        image = _gradient(rng, height, width)
    elif kind == "noise":
        image = _blotches(rng, height, width)
    elif kind == "stripes":
        image = _stripes(rng, height, width)
    else:
        raise ValueError(
            f"backgrounds: unknown kind {kind!r}; choose from {', '.join(BACKGROUND_KINDS)}"
        )
    return np.clip(np.rint(image), BACKGROUND_MIN, BACKGROUND_MAX).astype(np.uint8)


def add_sensor_noise(
    background: np.ndarray, rng: np.random.Generator, amplitude: int
) -> np.ndarray:
    """``background`` with uniform per-pixel noise of ``±amplitude``, kept in the background range.

    Applied per frame, so a still background is not pixel-identical from frame to frame, just as
    a camera's is not.
    """
    if amplitude <= 0:
        return background.copy()
    noise = rng.integers(-amplitude, amplitude + 1, size=background.shape, dtype=np.int16)
    noisy = background.astype(np.int16) + noise
    return np.clip(noisy, BACKGROUND_MIN, BACKGROUND_MAX).astype(np.uint8)


def _gradient(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A linear blend between two tints along a random direction."""
    start, end = random_tint(rng), random_tint(rng)
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    along = xs * np.cos(angle) + ys * np.sin(angle)
    t = (along - along.min()) / max(float(np.ptp(along)), 1e-9)  # (H, W) in [0, 1]
    return start + (end - start) * t[..., None]


def _blotches(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Low-frequency coloured noise: a coarse random grid upsampled smoothly, plus fine grain."""
    cells = int(rng.integers(3, 9))
    coarse = np.stack([random_tint(rng) for _ in range(cells * cells)]).reshape(cells, cells, 3)
    smooth = cv2.resize(coarse.astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
    grain = rng.normal(0, 6, size=(height, width, 3))
    return smooth.astype(np.float64) + grain


def _stripes(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Parallel bands of two tints at a random angle and period."""
    first, second = random_tint(rng), random_tint(rng)
    period = rng.uniform(6, max(8.0, min(height, width) / 3))
    angle = rng.uniform(0, np.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    phase = (xs * np.cos(angle) + ys * np.sin(angle)) / period
    band = (np.floor(phase) % 2 == 0)[..., None]  # (H, W, 1) bool
    return np.where(band, first, second)
