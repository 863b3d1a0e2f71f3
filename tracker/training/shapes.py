"""Shape kinds and named colours for the synthetic scenes, drawn as exact boolean masks.

The model learns concepts from these pictures, so the picture and its ground truth must be the same
thing: a frame paints an object's colour exactly on the pixels of its mask (no anti-aliasing, no
blur), and a mask is never a second, slightly different rasterisation of the shape.

Every kind is sized by its circumscribed circle, so a size means the same extent for a circle and
a star, and a scene can place, bounce and collide objects by centre and radius alone.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

SHAPE_KINDS: tuple[str, ...] = ("circle", "square", "triangle", "star", "hexagon", "cross")
"""The concepts a scene can contain; each name is also the text prompt for that shape."""

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (0, 0, 255),
    "green": (0, 255, 0),
    "blue": (255, 0, 0),
    "yellow": (0, 255, 255),
    "magenta": (255, 0, 255),
    "cyan": (255, 255, 0),
    "white": (255, 255, 255),
    "orange": (0, 165, 255),
}
"""Named object colours, BGR. Each has a channel at 255, which no background reaches
(``backgrounds.BACKGROUND_MAX``): an object's colour never occurs in the background by chance."""

STAR_INNER_RATIO = 0.5
"""Inner / outer radius of the five-pointed star: fatter than a pentagram (0.38) so the points
survive at the small sizes a CPU-sized model sees."""

CROSS_HALF_WIDTH = 0.35
"""Half the width of a cross's arm, as a fraction of its circumradius."""

_SUBPIXEL_BITS = 4
"""cv2.fillPoly's fixed-point shift: vertices at 1/16 pixel, so slow motion moves the outline."""


def _unit_vertices(kind: str) -> np.ndarray:
    """Vertices ``(N, 2)`` of ``kind`` at circumradius 1, upright, centred on the origin, y down."""
    if kind == "square":
        angles = np.deg2rad(45.0 + 90.0 * np.arange(4))
        return np.stack([np.cos(angles), np.sin(angles)], axis=1)
    if kind == "triangle":
        angles = np.deg2rad(-90.0 + 120.0 * np.arange(3))
        return np.stack([np.cos(angles), np.sin(angles)], axis=1)
    if kind == "hexagon":
        angles = np.deg2rad(60.0 * np.arange(6))
        return np.stack([np.cos(angles), np.sin(angles)], axis=1)
    if kind == "star":
        angles = np.deg2rad(-90.0 + 36.0 * np.arange(10))
        radii = np.where(np.arange(10) % 2 == 0, 1.0, STAR_INNER_RATIO)
        return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
    if kind == "cross":
        w = CROSS_HALF_WIDTH
        arm = math.sqrt(1.0 - w * w)  # arm corners lie on the circumscribed circle
        return np.array(
            [
                (w, -arm), (w, -w), (arm, -w), (arm, w), (w, w), (w, arm),
                (-w, arm), (-w, w), (-arm, w), (-arm, -w), (-w, -w), (-w, -arm),
            ]
        )  # fmt: skip
    raise ValueError(f"kind: unknown shape {kind!r}; choose one of {', '.join(SHAPE_KINDS)}")


def shape_vertices(
    kind: str, center: tuple[float, float], radius: float, rotation: float
) -> np.ndarray:
    """Vertices ``(N, 2)`` float ``(x, y)`` of polygon ``kind`` in image pixels.

    Args:
        kind: any of ``SHAPE_KINDS`` but ``"circle"``.
        center: ``(x, y)`` of the centre in pixels (may lie outside the image).
        radius: circumradius in pixels.
        rotation: clockwise rotation in radians (image y points down).
    """
    cos, sin = math.cos(rotation), math.sin(rotation)
    rotate = np.array([[cos, sin], [-sin, cos]])
    return _unit_vertices(kind) @ rotate * radius + np.asarray(center, dtype=np.float64)


def draw_shape_mask(
    kind: str,
    *,
    height: int,
    width: int,
    center: tuple[float, float],
    radius: float,
    rotation: float = 0.0,
) -> np.ndarray:
    """The pixels of one shape as a ``(height, width)`` bool mask; parts outside are cut off.

    A frame paints the object's colour on exactly these pixels, so this is the ground truth.

    Examples:
        >>> mask = draw_shape_mask("square", height=32, width=32, center=(16, 16), radius=8)
        >>> mask.shape, bool(mask[16, 16]), bool(mask[0, 0])
        ((32, 32), True, False)
    """
    if radius <= 0:
        raise ValueError(f"radius: must be positive (got {radius})")
    if kind == "circle":
        return _circle_mask(height, width, center, radius)
    vertices = shape_vertices(kind, center, radius, rotation)
    canvas = np.zeros((height, width), dtype=np.uint8)
    fixed = np.round(vertices * (1 << _SUBPIXEL_BITS)).astype(np.int32)
    cv2.fillPoly(canvas, [fixed], 1, lineType=cv2.LINE_8, shift=_SUBPIXEL_BITS)
    return canvas.astype(bool)  # (H, W) bool


def _circle_mask(height: int, width: int, center: tuple[float, float], radius: float) -> np.ndarray:
    """Pixels whose centres lie within ``radius`` of ``center``, computed only near the circle."""
    mask = np.zeros((height, width), dtype=bool)
    cx, cy = center
    x0, x1 = max(0, math.floor(cx - radius)), min(width, math.ceil(cx + radius) + 1)
    y0, y1 = max(0, math.floor(cy - radius)), min(height, math.ceil(cy + radius) + 1)
    if x0 >= x1 or y0 >= y1:
        return mask
    ys, xs = np.mgrid[y0:y1, x0:x1]
    mask[y0:y1, x0:x1] = (xs - cx) ** 2 + (ys - cy) ** 2 <= radius * radius
    return mask
