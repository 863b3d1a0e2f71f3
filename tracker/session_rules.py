"""The settings of the per-frame rules every streaming session applies, checked once.

``SessionRegistry`` takes them as keyword arguments (its public signature) and hands the same
frozen object to every ``StreamSession`` it opens, so a rule's knob is validated in one place and
a session cannot drift from its registry.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

REBASE_AT = 50_000
"""Frame indices handed to the HF session stay below this; the port assumes < 100,000."""

REBASE_KEEP = 1_000
"""After a rebase the newest frame sits at about this index (keeps every window intact)."""

DEFAULT_MAX_OBJECTS = 16
"""Live tracks per video_identifier. The tracker runs every live track on every frame, so per-frame
time follows this number: under detection churn (tiny checkpoint, threshold 0, two classes,
128x96 frames, 2 shared CPU cores) 8 / 16 / 32 live tracks cost about 0.55 / 1.0 / 1.9 s per
frame, flat over 96 frames; without a budget the same kind of scene reaches 124 tracks and 9 s
per frame by frame 29 (issue 11). 16 keeps a 2-core CPU near one frame a second, while a camera
scene rarely holds more distinct objects that matter at once; a GPU runs each track far faster
(not measured here: no GPU was available) and may take a larger budget per stream."""

DEFAULT_CONFIRM_FRAMES = 2
"""Detector matches (the first detection included) before a track gets a tracker_id and reaches
sinks. The port reports a duplicate on the frame after its birth and a match shared with an older
track does not confirm, so 2 is the smallest value that keeps duplicates off screen: on the tiny
checkpoint at threshold 0 (two classes, budget 16) 48 frames showed 107 ids with 1 and 2 with 2;
over 40 frames 3 showed the same 2 ids as 2, at one more frame of latency. The price: a new
object appears (confirm_frames - 1) = 1 frame late."""

DEFAULT_MAX_UNMATCHED_FRAMES = 30
"""Consecutive frames without a detector match after which a track is removed. The port's own
keep-alive counter starts at ``init_trk_keep_alive`` = ``max_trk_keep_alive`` = 30, gains one per
matched frame up to 30 and loses one per unmatched frame: 30 unmatched frames in a row take a
fully matched track to 0, where the port itself gives it up (suppresses it offline). About 1 s at
30 fps: far longer than a passing occlusion, far shorter than a forgotten ghost."""


@dataclass(frozen=True)
class SessionRules:
    """Knobs of the rules a session applies after every frame.

    Attributes:
        memory_frames: non-conditioning frames of memory the HF session keeps (the pruning window;
            15 is bit-identical to the unpruned session, 7 is not).
        lost_object_frames: frames an object may be absent from the output (no mask) before it is
            evicted (None or 0: never).
        max_conditioning_frames: conditioning frames kept per object.
        rebase_at: frame index at which indices are shifted back towards zero.
        max_objects: live tracks per video_identifier; past it the stalest track makes room
            (``tracker.track_rules``).
        confirm_frames: detector matches before a track gets a tracker_id (1: at once).
        hotstart_delay: a track's first frames in which the hotstart rules judge it (None: the
            model config's value, 15 in the port; 0 turns both hotstart rules off).
        hotstart_unmatch_thresh: unmatched frames within ``hotstart_delay`` that remove a new
            track (None: the model config's, 8; 0: off).
        hotstart_dup_thresh: frames within ``hotstart_delay`` on which a newer track matches the
            same detection as an older one before it is removed (None: the model config's, 8;
            0: off).
        max_unmatched_frames: consecutive frames without a detector match that remove a track
            (None or 0: never).

    Examples:
        >>> SessionRules().memory_frames
        15
        >>> SessionRules(memory_frames=0)
        Traceback (most recent call last):
        ...
        ValueError: memory_frames must be >= 1, got 0
        >>> SessionRules(confirm_frames=0)
        Traceback (most recent call last):
        ...
        ValueError: confirm_frames must be >= 1, got 0
    """

    memory_frames: int = 15
    lost_object_frames: int | None = 90
    max_conditioning_frames: int = 16
    rebase_at: int = REBASE_AT
    max_objects: int = DEFAULT_MAX_OBJECTS
    confirm_frames: int = DEFAULT_CONFIRM_FRAMES
    hotstart_delay: int | None = None
    hotstart_unmatch_thresh: int | None = None
    hotstart_dup_thresh: int | None = None
    max_unmatched_frames: int | None = DEFAULT_MAX_UNMATCHED_FRAMES

    def rebase_offset(self, frame_idx: int, multiple: int) -> int:
        """How far to shift an HF session's frame indices down (0: ``rebase_at`` not reached).

        The newest frame then sits at about ``REBASE_KEEP`` (or past the memory window, if that is
        longer), and the offset is a multiple of ``multiple`` so periodic reconditioning stays on
        the same frames.
        """
        if frame_idx < self.rebase_at:
            return 0
        keep = max(self.memory_frames + 1, min(REBASE_KEEP, self.rebase_at // 2))
        return max(0, (frame_idx - keep) // multiple * multiple)

    def __post_init__(self) -> None:
        for name, minimum in _MINIMUMS.items():
            value = getattr(self, name)
            if value is None and name in _OPTIONAL:
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise ValueError(f"{name} must be an integer, got {value!r}")
            if value < minimum:
                raise ValueError(f"{name} must be >= {minimum}, got {value}")


# The smallest value of each knob; frame counts are never negative.
_MINIMUMS = {
    "memory_frames": 1,
    "lost_object_frames": 0,
    "max_conditioning_frames": 1,
    "rebase_at": 1,
    "max_objects": 1,
    "confirm_frames": 1,
    "hotstart_delay": 0,
    "hotstart_unmatch_thresh": 0,
    "hotstart_dup_thresh": 0,
    "max_unmatched_frames": 0,
}
_OPTIONAL = {
    "lost_object_frames",
    "hotstart_delay",
    "hotstart_unmatch_thresh",
    "hotstart_dup_thresh",
    "max_unmatched_frames",
}
