"""Deterministic synthetic clips of moving shapes with exact per-frame ground truth.

The offline checkpoint is trained and measured on these clips, never on downloaded data: a seed
fully determines a clip (the same seed gives the same pixels and the same truth on every machine),
so training runs repeat, held-out benchmark clips stay held out (pick seeds outside the training
range), and tests can assert on "the circle that enters at frame 5".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import supervision as sv

from tracker.training.backgrounds import add_sensor_noise, draw_background
from tracker.training.config import SceneConfig
from tracker.training.motion import ObjectPlan, plan_objects
from tracker.training.shapes import COLOURS, draw_shape_mask
from tracker.training.truth import FrameTruth, ObjectTruth

MIN_FRAME_SIDE = 8
"""Smallest frame height or width a clip is drawn at."""


@dataclass(frozen=True)
class Placement:
    """One object's pose in one frame: what ``render_frame`` draws."""

    object_id: int
    kind: str
    colour: str
    center: tuple[float, float]  # (x, y) pixels
    radius: float  # circumradius, pixels
    rotation: float = 0.0  # radians
    depth: int = 0  # higher is nearer


def render_frame(
    background: np.ndarray,
    placements: Iterable[Placement],
    *,
    index: int = 0,
    min_visible_pixels: int = 1,
) -> tuple[np.ndarray, FrameTruth]:
    """Draw ``placements`` over ``background`` (H, W, 3) uint8 BGR, nearest last.

    Objects are visited nearest first: each one's visible mask is its shape minus everything
    already drawn in front of it, and only those pixels are painted, so the image and the masks
    agree pixel for pixel. An object with fewer than ``min_visible_pixels`` visible pixels (fully
    hidden, or outside the frame) is absent from the truth.

    Returns:
        The frame ``(H, W, 3)`` uint8 BGR and its ``FrameTruth``.
    """
    image = background.copy()
    height, width = image.shape[:2]
    covered = np.zeros((height, width), dtype=bool)
    visible_objects: list[ObjectTruth] = []
    for place in sorted(placements, key=lambda p: (-p.depth, p.object_id)):
        shape = draw_shape_mask(
            place.kind,
            height=height,
            width=width,
            center=place.center,
            radius=place.radius,
            rotation=place.rotation,
        )  # (H, W) bool, cut to the frame
        visible = shape & ~covered
        covered |= shape
        image[visible] = COLOURS[place.colour]
        pixels = int(visible.sum())
        if pixels == 0 or pixels < min_visible_pixels:
            continue
        box = sv.mask_to_xyxy(visible[None])[0].astype(np.float32)  # (4,) inclusive xyxy
        visible_objects.append(
            ObjectTruth(
                object_id=place.object_id,
                kind=place.kind,
                colour=place.colour,
                mask=visible,
                box=box,
                visible_fraction=pixels / int(shape.sum()),
            )
        )
    visible_objects.sort(key=lambda obj: obj.object_id)
    return image, FrameTruth(index, height, width, tuple(visible_objects))


@dataclass(frozen=True)
class SyntheticClip:
    """A generated clip: frames, per-frame truth, and every object's plan.

    Attributes:
        seed: the seed it was generated from.
        scene: the controls it was generated with.
        fps: nominal frame rate (what an MP4 of it is written at).
        images: one ``(H, W, 3)`` uint8 BGR array per frame.
        truths: one ``FrameTruth`` per frame.
        plans: every object's look and path, including objects that are never seen.
    """

    seed: int
    scene: SceneConfig
    fps: float
    images: tuple[np.ndarray, ...]
    truths: tuple[FrameTruth, ...]
    plans: tuple[ObjectPlan, ...]

    def __len__(self) -> int:
        return len(self.images)

    @property
    def height(self) -> int:
        """Frame height in pixels."""
        return int(self.images[0].shape[0]) if self.images else 0

    @property
    def width(self) -> int:
        """Frame width in pixels."""
        return int(self.images[0].shape[1]) if self.images else 0

    def seen_objects(self) -> list[ObjectTruth]:
        """The first sighting of each object visible in some frame, in id order."""
        first: dict[int, ObjectTruth] = {}
        for truth in self.truths:
            for obj in truth.objects:
                first.setdefault(obj.object_id, obj)
        return [first[object_id] for object_id in sorted(first)]

    def concepts(self, *, coloured: bool = False) -> list[str]:
        """Sorted texts of the objects seen in the clip: shape names, or colour + shape names."""
        objects = self.seen_objects()
        return sorted({obj.coloured_text if coloured else obj.text for obj in objects})

    def visible_frames(self, object_id: int) -> list[int]:
        """Indices of the frames in which ``object_id`` is visible."""
        return [t.index for t in self.truths if t.get(object_id) is not None]


def generate_clip(
    seed: int,
    *,
    frames: int,
    height: int,
    width: int,
    scene: SceneConfig | None = None,
    fps: float = 10.0,
) -> SyntheticClip:
    """Generate the clip of ``seed``: shapes moving over a varied background, with their truth.

    Objects bounce at constant speeds, some enter from outside mid-clip and some leave, and with
    ``scene.occlusion`` paths are planned to cross so objects briefly hide one another
    (``motion``). Frames and truth are computed eagerly: clips for training and tests are short.

    Examples:
        >>> clip = generate_clip(7, frames=4, height=64, width=64)
        >>> len(clip), clip.images[0].shape, clip.images[0].dtype
        (4, (64, 64, 3), dtype('uint8'))

    Raises:
        ValueError: a bad argument, named in the message.
    """
    scene = scene or SceneConfig()
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed: must be a non-negative integer (got {seed!r})")
    if frames < 1:
        raise ValueError(f"frames: must be at least 1 (got {frames})")
    for name, value in (("height", height), ("width", width)):
        if value < MIN_FRAME_SIDE:
            raise ValueError(f"{name}: must be at least {MIN_FRAME_SIDE} pixels (got {value})")
    if scene.max_size >= min(height, width):
        raise ValueError(
            f"max_size: must be below the frame's shorter side {min(height, width)} "
            f"(got {scene.max_size})"
        )
    if fps <= 0:
        raise ValueError(f"fps: must be positive (got {fps})")

    rng = np.random.default_rng(seed)
    background_kind = scene.backgrounds[int(rng.integers(len(scene.backgrounds)))]
    background = draw_background(background_kind, rng, height=height, width=width)
    plans = plan_objects(rng, scene, frames=frames, height=height, width=width)
    images: list[np.ndarray] = []
    truths: list[FrameTruth] = []
    for t in range(frames):
        placements = [_placement(plan, t) for plan in plans]
        noisy = add_sensor_noise(background, rng, scene.background_noise)
        image, truth = render_frame(
            noisy, placements, index=t, min_visible_pixels=scene.min_visible_pixels
        )
        images.append(image)
        truths.append(truth)
    return SyntheticClip(seed, scene, fps, tuple(images), tuple(truths), tuple(plans))


def _placement(plan: ObjectPlan, t: int) -> Placement:
    """``plan``'s pose in frame ``t``."""
    x, y = plan.centers[t]
    return Placement(
        object_id=plan.object_id,
        kind=plan.kind,
        colour=plan.colour,
        center=(float(x), float(y)),
        radius=plan.radius,
        rotation=float(plan.rotations[t]),
        depth=plan.depth,
    )
