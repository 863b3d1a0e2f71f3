"""Where each object of a synthetic clip is in every frame: entries, exits, bounces and crossings.

Tracking is hard where objects enter, leave and pass in front of one another, so a clip plans those
events on purpose rather than hoping random motion produces them:

- objects that stay bounce off the frame's edges at a constant speed;
- an entering object starts outside and flies in, bouncing only once it is inside;
- a leaving object stops bouncing at its leave frame and heads out of the nearest edge, fast enough
  to be gone before the clip ends;
- with ``occlusion`` an object is put on a collision course with an earlier one: its path is run
  backwards from a meeting point next to the other object, which bouncing allows exactly because a
  reflection step is its own inverse.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tracker.training.config import SceneConfig


@dataclass(frozen=True)
class ObjectPlan:
    """One object's identity, look and pose in every frame of a clip (visible or not)."""

    object_id: int
    kind: str
    colour: str
    radius: float  # circumradius, pixels
    depth: int  # higher is nearer: drawn over lower depths
    centers: np.ndarray  # (frames, 2) float (x, y) pixels; may lie outside the image
    rotations: np.ndarray  # (frames,) float radians
    enter_frame: int | None  # frame it reaches an edge from outside, seen just after; None: in at 0
    leave_frame: int | None  # frame it turns to leave; None: stays to the end


def _step(q: float, v: float, lo: float, hi: float) -> tuple[float, float]:
    """Fold position ``q`` back into ``[lo, hi]`` by reflection, flipping ``v`` at each bounce."""
    if hi <= lo:
        return lo, v
    while q < lo or q > hi:
        if q < lo:
            q, v = 2 * lo - q, -v
        else:
            q, v = 2 * hi - q, -v
    return q, v


def _simulate(
    start: np.ndarray,
    velocity: np.ndarray,
    bounds: np.ndarray,
    frames: int,
    *,
    bouncing: bool,
    leave_frame: int | None = None,
    exit_velocity: np.ndarray | None = None,
) -> np.ndarray:
    """Centres ``(frames, 2)`` from ``start``; an axis bounces once its coordinate is in bounds.

    ``bounds`` is ``(2, 2)``: ``[[x_lo, x_hi], [y_lo, y_hi]]``. At ``leave_frame`` bouncing stops
    and the velocity becomes ``exit_velocity`` (or the current one with ``None``).
    """
    position = start.astype(np.float64).copy()
    v = velocity.astype(np.float64).copy()
    active = [bouncing and bool(bounds[a, 0] <= position[a] <= bounds[a, 1]) for a in (0, 1)]
    centers = np.empty((frames, 2))
    for t in range(frames):
        if leave_frame is not None and t == leave_frame:
            active = [False, False]
            if exit_velocity is not None:
                v = exit_velocity.astype(np.float64).copy()
        centers[t] = position
        for a in (0, 1):
            q = position[a] + v[a]
            if active[a]:
                q, v[a] = _step(q, v[a], bounds[a, 0], bounds[a, 1])
            elif bouncing and (leave_frame is None or t + 1 < leave_frame):
                active[a] = bool(bounds[a, 0] <= q <= bounds[a, 1])
            position[a] = q
    return centers


def _run_backwards(
    meet: np.ndarray, velocity: np.ndarray, bounds: np.ndarray, steps: int
) -> tuple[np.ndarray, np.ndarray]:
    """Start and start velocity that reach ``meet`` with ``velocity`` after ``steps`` bounces."""
    position = meet.astype(np.float64).copy()
    v = -velocity.astype(np.float64)
    for _ in range(steps):
        for a in (0, 1):
            position[a], v[a] = _step(position[a] + v[a], v[a], bounds[a, 0], bounds[a, 1])
    return position, -v


def _random_velocity(rng: np.random.Generator, speed: tuple[float, float]) -> np.ndarray:
    """A velocity ``(2,)`` of random direction and a speed drawn from ``speed``."""
    angle = rng.uniform(0, 2 * math.pi)
    return rng.uniform(*speed) * np.array([math.cos(angle), math.sin(angle)])


def _entry(
    rng: np.random.Generator,
    radius: float,
    bounds: np.ndarray,
    speed: tuple[float, float],
    enter_frame: int,
    width: int,
    height: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Start (outside) and velocity of an object that crosses a random edge at ``enter_frame``.

    The velocity points inward within 50 degrees of the edge's normal at a speed in the upper half
    of ``speed``, so the object gets in rather than creeping along the edge.
    """
    edge = int(rng.integers(4))  # 0 left, 1 right, 2 top, 3 bottom
    normal = np.array([(1, 0), (-1, 0), (0, 1), (0, -1)][edge], dtype=np.float64)
    angle = math.atan2(normal[1], normal[0]) + rng.uniform(-0.87, 0.87)
    brisk = rng.uniform(max(speed[0], (speed[0] + speed[1]) / 2), speed[1])
    velocity = brisk * np.array([math.cos(angle), math.sin(angle)])
    outside = radius + 1.0  # the centre this far beyond the edge: the shape is not yet in
    along_axis = 1 if edge < 2 else 0
    crossing = np.empty(2)
    crossing[along_axis] = rng.uniform(*bounds[along_axis])
    crossing[1 - along_axis] = [-outside, width + outside, -outside, height + outside][edge]
    return crossing - velocity * enter_frame, velocity


def _exit_velocity(
    center: np.ndarray,
    velocity: np.ndarray,
    radius: float,
    frames_left: int,
    size: np.ndarray,
    fast: float,
) -> np.ndarray:
    """``velocity`` turned out through the nearest edge at speed ``fast`` or more.

    At least fast enough to be out in ``frames_left``, so a leaving object is gone before the end.
    """
    distances = np.array([center[0], size[0] - center[0], center[1], size[1] - center[1]])
    edge = int(np.argmin(distances))
    axis, sign = [(0, -1.0), (0, 1.0), (1, -1.0), (1, 1.0)][edge]
    needed = (distances[edge] + radius + 1.0) / max(1, frames_left)
    speed = float(np.hypot(*velocity))
    out = velocity.copy()
    out[axis] = sign * max(abs(velocity[axis]), speed, fast, needed)
    return out


def plan_objects(
    rng: np.random.Generator, scene: SceneConfig, *, frames: int, height: int, width: int
) -> list[ObjectPlan]:
    """Draw every object's look and path for one clip from ``rng`` (see the module docstring)."""
    n = scene.objects
    size = np.array([width, height], dtype=np.float64)
    radii = rng.uniform(scene.min_size, scene.max_size, size=n) / 2
    kinds = [scene.kinds[i] for i in rng.integers(len(scene.kinds), size=n)]
    colours = [scene.colours[i] for i in rng.integers(len(scene.colours), size=n)]
    depths = rng.permutation(n)
    order = rng.permutation(n)
    n_enter = round(scene.enter_fraction * n)
    n_leave = round(scene.leave_fraction * n)
    entering = {int(i) for i in order[:n_enter]}
    leaving = {int(i) for i in order[n - n_leave :]} if n_leave else set()

    enter_frames: dict[int, int] = {}
    leave_frames: dict[int, int] = {}
    for i in range(n):
        if i in entering:
            enter_frames[i] = int(rng.integers(1, max(2, int(0.6 * frames) + 1)))
        if i in leaving:
            lo = max(enter_frames.get(i, 0) + max(2, frames // 5), int(0.3 * frames))
            hi = max(int(0.7 * frames), 1)
            if lo <= hi and hi < frames - 1:
                leave_frames[i] = int(rng.integers(lo, hi + 1))

    plans: list[ObjectPlan] = []
    for i in range(n):
        r = float(radii[i])
        bounds = np.array([[r, width - r], [r, height - r]])
        leave = leave_frames.get(i)
        enter = enter_frames.get(i)
        if enter is not None:
            start, velocity = _entry(rng, r, bounds, scene.speed, enter, width, height)
        else:
            start = rng.uniform(bounds[:, 0], bounds[:, 1])
            velocity = _random_velocity(rng, scene.speed)
            partner = _collision_partner(rng, plans, scene.occlusion)
            if partner is not None:
                colours[i] = _other_colour(rng, scene.colours, partner.colour)
                start, velocity = _collision_course(
                    rng, partner, r, bounds, scene.speed, frames, leave
                )
        exit_velocity = None
        if leave is not None:
            before = _simulate(start, velocity, bounds, leave + 1, bouncing=True)
            last_velocity = before[leave] - before[leave - 1] if leave > 0 else velocity
            exit_velocity = _exit_velocity(
                before[leave], last_velocity, r, frames - 2 - leave, size, scene.speed[1]
            )
        centers = _simulate(
            start,
            velocity,
            bounds,
            frames,
            bouncing=True,
            leave_frame=leave,
            exit_velocity=exit_velocity,
        )
        rotations = rng.uniform(0, 2 * math.pi) + rng.uniform(-0.1, 0.1) * np.arange(frames)
        plans.append(
            ObjectPlan(
                object_id=i + 1,
                kind=kinds[i],
                colour=colours[i],
                radius=r,
                depth=int(depths[i]),
                centers=centers,
                rotations=rotations,
                enter_frame=enter,
                leave_frame=leave,
            )
        )
    return plans


def _collision_partner(
    rng: np.random.Generator, plans: list[ObjectPlan], occlusion: float
) -> ObjectPlan | None:
    """With probability ``occlusion``, an earlier object that starts inside to cross paths with."""
    candidates = [p for p in plans if p.enter_frame is None]
    if not candidates or rng.uniform() >= occlusion:
        return None
    return candidates[int(rng.integers(len(candidates)))]


def _collision_course(
    rng: np.random.Generator,
    partner: ObjectPlan,
    radius: float,
    bounds: np.ndarray,
    speed: tuple[float, float],
    frames: int,
    leave: int | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Start and velocity that bring this object next to ``partner`` mid-clip, then past it.

    It crosses at 60 degrees or more and at a brisk speed, so the overlap is brief.
    """
    last = min(int(0.7 * frames), leave if leave is not None else frames - 1)
    if partner.leave_frame is not None:
        last = min(last, partner.leave_frame)
    first = min(max(last, 0), int(0.2 * frames))
    meet_frame = int(rng.integers(first, max(first, last) + 1))
    offset = _random_velocity(rng, (0.0, 0.5 * (radius + partner.radius)))
    meet = np.clip(partner.centers[meet_frame] + offset, bounds[:, 0], bounds[:, 1])
    partner_velocity = (
        partner.centers[min(meet_frame + 1, frames - 1)] - partner.centers[meet_frame]
    )
    heading = math.atan2(partner_velocity[1], partner_velocity[0]) + rng.choice([-1, 1]) * (
        rng.uniform(math.pi / 3, math.pi)
    )
    brisk = rng.uniform(max(speed[0], (speed[0] + speed[1]) / 2), speed[1])
    velocity = brisk * np.array([math.cos(heading), math.sin(heading)])
    return _run_backwards(meet, velocity, bounds, meet_frame)


def _other_colour(rng: np.random.Generator, colours: tuple[str, ...], avoid: str) -> str:
    """A colour other than ``avoid`` when there is one.

    Two overlapping objects of one colour merge into one blob whose boundary no mask could find.
    """
    others = [c for c in colours if c != avoid] or list(colours)
    return others[int(rng.integers(len(others)))]
