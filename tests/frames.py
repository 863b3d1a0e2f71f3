"""Frames for tests: the ``testpattern`` picture, at a size the tiny model runs fast on a CPU."""

from __future__ import annotations

import numpy as np

from pipeline.sources.testpattern import draw_test_pattern


def moving_shapes(index: int, height: int = 96, width: int = 128) -> np.ndarray:
    """Frame ``index`` (BGR uint8) of a deterministic clip of moving shapes."""
    return draw_test_pattern(index, width, height)
