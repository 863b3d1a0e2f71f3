"""Boolean masks -> Roboflow's mask encodings (``polygon``, ``rle``; ``json`` is polygon)."""

from __future__ import annotations

from typing import Any

import numpy as np
import supervision as sv

MASK_FORMATS: tuple[str, ...] = ("polygon", "rle", "json")
"""Roboflow's SAM3 accepts ``json`` and answers it as ``polygon`` (``_masks_to_predictions``)."""


def check_format(mask_format: str) -> str:
    """The format a prediction reports for ``mask_format``.

    Raises:
        ValueError: naming ``format`` when it is not one of ``MASK_FORMATS``.
    """
    if mask_format not in MASK_FORMATS:
        raise ValueError(f"format must be one of {', '.join(MASK_FORMATS)}; got {mask_format!r}")
    return "rle" if mask_format == "rle" else "polygon"


def encode_mask(mask: np.ndarray, reported_format: str) -> list[list[list[int]]] | dict[str, Any]:
    """One (H, W) bool mask as polygons (``[[[x, y], ...], ...]``) or COCO compressed RLE."""
    if reported_format == "rle":
        height, width = mask.shape
        return {"size": [height, width], "counts": sv.mask_to_rle(mask, compressed=True)}
    # Outer contours only, as Roboflow's masks2multipoly: a mask in pieces gives one per piece.
    return [polygon.astype(int).tolist() for polygon in sv.mask_to_polygons(mask)]
