"""The settings of the per-frame rules every streaming session applies, checked once.

``SessionRegistry`` takes them as keyword arguments (its public signature) and hands the same
frozen object to every ``StreamSession`` it opens, so a rule's knob is validated in one place and
a session cannot drift from its registry.
"""

from __future__ import annotations

from dataclasses import dataclass

REBASE_AT = 50_000
"""Frame indices handed to the HF session stay below this; the port assumes < 100,000."""


@dataclass(frozen=True)
class SessionRules:
    """Knobs of the rules a session applies after every frame.

    Attributes:
        memory_frames: non-conditioning frames of memory the HF session keeps (the pruning window;
            15 is bit-identical to the unpruned session, 7 is not).
        lost_object_frames: unseen frames after which an object is evicted (None or 0: never).
        max_conditioning_frames: conditioning frames kept per object.
        rebase_at: frame index at which indices are shifted back towards zero.

    Examples:
        >>> SessionRules().memory_frames
        15
        >>> SessionRules(memory_frames=0)
        Traceback (most recent call last):
        ...
        ValueError: memory_frames must be >= 1, got 0
    """

    memory_frames: int = 15
    lost_object_frames: int | None = 90
    max_conditioning_frames: int = 16
    rebase_at: int = REBASE_AT

    def __post_init__(self) -> None:
        if self.memory_frames < 1:
            raise ValueError(f"memory_frames must be >= 1, got {self.memory_frames}")
