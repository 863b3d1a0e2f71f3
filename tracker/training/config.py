"""What a synthetic clip contains: the knobs of the scene generator, checked once."""

from __future__ import annotations

from dataclasses import dataclass

from tracker.training.backgrounds import BACKGROUND_KINDS
from tracker.training.shapes import COLOURS, SHAPE_KINDS


@dataclass(frozen=True)
class SceneConfig:
    """Controls for ``generate_clip``; the defaults make a busy but learnable clip.

    Sizes are diameters of the shapes' circumscribed circles, in pixels; speeds are pixels a frame.

    Args:
        objects: objects in the clip (all of them, including those that enter later).
        min_size: smallest object diameter.
        max_size: largest object diameter; must be below the frame's shorter side.
        speed: ``(low, high)`` range of object speeds.
        enter_fraction: share of objects that start outside and enter mid-clip.
        leave_fraction: share of objects that leave the frame before the clip ends.
        occlusion: probability that an object is sent across an earlier object's path.
        kinds: shape kinds to draw from (``shapes.SHAPE_KINDS``).
        colours: colour names to draw from (``shapes.COLOURS``).
        backgrounds: background styles to draw from (``backgrounds.BACKGROUND_KINDS``).
        background_noise: per-frame background noise amplitude (0 for still backgrounds).
        min_visible_pixels: fewer visible pixels than this and the object is left out of the
            frame's ground truth (its pixels are still drawn); 1 keeps the truth exact.
    """

    objects: int = 4
    min_size: int = 16
    max_size: int = 40
    speed: tuple[float, float] = (0.5, 3.0)
    enter_fraction: float = 0.25
    leave_fraction: float = 0.25
    occlusion: float = 0.5
    kinds: tuple[str, ...] = SHAPE_KINDS
    colours: tuple[str, ...] = tuple(COLOURS)
    backgrounds: tuple[str, ...] = BACKGROUND_KINDS
    background_noise: int = 3
    min_visible_pixels: int = 1

    def __post_init__(self) -> None:
        if self.objects < 0:
            raise ValueError(f"objects: must be 0 or more (got {self.objects})")
        if not 1 <= self.min_size <= self.max_size:
            raise ValueError(
                f"min_size: must be at least 1 and at most max_size "
                f"(got {self.min_size} and {self.max_size})"
            )
        low, high = self.speed
        if not 0 <= low <= high:
            raise ValueError(f"speed: must be (low, high) with 0 <= low <= high (got {self.speed})")
        for name in ("enter_fraction", "leave_fraction", "occlusion"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name}: must be between 0 and 1 (got {value})")
        _check_names("kinds", self.kinds, SHAPE_KINDS)
        _check_names("colours", self.colours, tuple(COLOURS))
        _check_names("backgrounds", self.backgrounds, BACKGROUND_KINDS)
        if self.background_noise < 0:
            raise ValueError(f"background_noise: must be 0 or more (got {self.background_noise})")
        if self.min_visible_pixels < 1:
            raise ValueError(
                f"min_visible_pixels: must be 1 or more (got {self.min_visible_pixels})"
            )


def _check_names(field: str, names: tuple[str, ...], allowed: tuple[str, ...]) -> None:
    """Refuse an empty choice or a name the generator cannot draw."""
    if not names:
        raise ValueError(f"{field}: choose at least one of {', '.join(allowed)}")
    unknown = [name for name in names if name not in allowed]
    if unknown:
        raise ValueError(
            f"{field}: unknown {', '.join(map(repr, unknown))}; choose from {', '.join(allowed)}"
        )
