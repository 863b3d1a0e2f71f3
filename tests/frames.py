"""Synthetic frames for tests: moving coloured shapes on a dark background (BGR uint8)."""

from __future__ import annotations

import numpy as np


def moving_shapes(index: int, height: int = 96, width: int = 128) -> np.ndarray:
    """Frame ``index`` of a deterministic clip: a square and a disc that drift right."""
    frame = np.full((height, width, 3), 30, dtype=np.uint8)
    x = (5 + 2 * index) % (width - 30)
    frame[20:50, x : x + 24] = (40, 200, 60)
    yy, xx = np.ogrid[:height, :width]
    cx, cy = (width - 30 - x) % (width - 20) + 10, height - 28
    frame[(yy - cy) ** 2 + (xx - cx) ** 2 <= 14**2] = (200, 60, 220)
    return frame
