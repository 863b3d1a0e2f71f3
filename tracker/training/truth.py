"""Ground truth of one synthetic frame: which objects are visible, where, and what they are called.

A concept prompt names a shape (``"circle"``), a colour (``"red"``) or both (``"red circle"``);
the truth answers "which objects does this text mean in this frame" with ``FrameTruth.matching``,
so the detector's targets, the tracker's targets and the benchmark all read the same rule.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def normalise_text(text: str) -> str:
    """Lower case with single spaces: ``" Red  Circle"`` and ``"red circle"`` are one concept."""
    return " ".join(text.lower().split())


@dataclass(frozen=True)
class ObjectTruth:
    """One object as seen in one frame, after occlusion by the objects in front of it.

    Attributes:
        object_id: the object's id, the same in every frame of the clip (1, 2, ...).
        kind: its shape, one of ``shapes.SHAPE_KINDS``; also its plain text prompt.
        colour: its colour name, one of ``shapes.COLOURS``.
        mask: ``(H, W)`` bool, the pixels of this object visible in the frame.
        box: ``(4,)`` float32 ``x1, y1, x2, y2`` of ``mask`` (inclusive, as ``sv.mask_to_xyxy``).
        visible_fraction: visible pixels over the shape's pixels inside the frame (1 unoccluded).
    """

    object_id: int
    kind: str
    colour: str
    mask: np.ndarray
    box: np.ndarray
    visible_fraction: float

    @property
    def text(self) -> str:
        """The plain concept: the shape's name (``"circle"``)."""
        return self.kind

    @property
    def coloured_text(self) -> str:
        """The finer concept: colour and shape (``"red circle"``)."""
        return f"{self.colour} {self.kind}"

    def matches(self, text: str) -> bool:
        """True when the prompt ``text`` names this object (``"circle"``, ``"red"`` or
        ``"red circle"``)."""
        return normalise_text(text) in (self.text, self.colour, self.coloured_text)


@dataclass(frozen=True)
class FrameTruth:
    """Every object visible in one frame, in object-id order (not drawing order)."""

    index: int
    height: int
    width: int
    objects: tuple[ObjectTruth, ...]

    @property
    def object_ids(self) -> list[int]:
        """Ids of the objects visible in this frame."""
        return [obj.object_id for obj in self.objects]

    def get(self, object_id: int) -> ObjectTruth | None:
        """The object with ``object_id`` if it is visible in this frame."""
        return next((obj for obj in self.objects if obj.object_id == object_id), None)

    def matching(self, text: str | None = None) -> tuple[ObjectTruth, ...]:
        """The visible objects ``text`` names; all of them with ``None``."""
        if text is None:
            return self.objects
        return tuple(obj for obj in self.objects if obj.matches(text))

    def masks(self, text: str | None = None) -> np.ndarray:
        """``(N, H, W)`` bool masks of the objects ``text`` names (``matching``)."""
        chosen = self.matching(text)
        if not chosen:
            return np.zeros((0, self.height, self.width), dtype=bool)
        return np.stack([obj.mask for obj in chosen])

    def boxes(self, text: str | None = None) -> np.ndarray:
        """``(N, 4)`` float32 xyxy boxes of the objects ``text`` names (``matching``)."""
        chosen = self.matching(text)
        if not chosen:
            return np.zeros((0, 4), dtype=np.float32)
        return np.stack([obj.box for obj in chosen])
