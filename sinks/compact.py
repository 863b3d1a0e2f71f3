"""Detections held in a queue at a fraction of their size: masks cropped and bit-packed.

A full-resolution mask is one byte per pixel (2 MB at 1080p). A webhook that is down for a while
holds up to ``max_queue`` frames of them; cropped and packed, a mask costs its bounding box / 8.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import supervision as sv

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _PackedMask:
    top: int
    left: int
    height: int
    width: int
    bits: np.ndarray  # (ceil(height * width / 8),) uint8

    @classmethod
    def of(cls, mask: np.ndarray) -> _PackedMask:
        rows = np.flatnonzero(mask.any(axis=1))
        if rows.size == 0:
            return cls(0, 0, 0, 0, np.zeros(0, np.uint8))
        cols = np.flatnonzero(mask.any(axis=0))
        top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        crop = mask[top:bottom, left:right]
        return cls(int(top), int(left), crop.shape[0], crop.shape[1], np.packbits(crop))

    def unpack_into(self, mask: np.ndarray) -> None:
        if self.height == 0:
            return
        count = self.height * self.width
        crop = np.unpackbits(self.bits, count=count).reshape(self.height, self.width)
        mask[self.top : self.top + self.height, self.left : self.left + self.width] = crop


@dataclass(frozen=True)
class CompactDetections:
    """An ``sv.Detections`` with its masks packed; ``restore()`` gives back an equal one."""

    detections: sv.Detections  # same fields, mask=None
    masks: tuple[_PackedMask, ...] | None
    mask_shape: tuple[int, int] | None  # (H, W)

    @classmethod
    def of(cls, detections: sv.Detections, *, keep_masks: bool = True) -> CompactDetections:
        masks = detections.mask if keep_masks else None
        stripped = sv.Detections(
            xyxy=detections.xyxy,
            confidence=detections.confidence,
            class_id=detections.class_id,
            tracker_id=detections.tracker_id,
            data=dict(detections.data),
        )
        if masks is None:
            return cls(stripped, None, None)
        packed = tuple(_PackedMask.of(mask) for mask in masks)
        return cls(stripped, packed, (masks.shape[1], masks.shape[2]))

    def restore(self) -> sv.Detections:
        if self.masks is None or self.mask_shape is None:
            return self.detections
        masks = np.zeros((len(self.masks), *self.mask_shape), dtype=bool)  # (N, H, W) bool
        for packed, mask in zip(self.masks, masks, strict=True):
            packed.unpack_into(mask)
        restored = sv.Detections(
            xyxy=self.detections.xyxy,
            mask=masks,
            confidence=self.detections.confidence,
            class_id=self.detections.class_id,
            tracker_id=self.detections.tracker_id,
            data=dict(self.detections.data),
        )
        return restored
