"""Capped exponential backoff with jitter, for reconnecting to cameras that went away.

Why jitter: after a network blip every camera of a site drops at once; without jitter all their
sources would hammer the NVR in lock-step at 0.5 s, 1 s, 2 s, ... Why a cap: a camera that is off
for an hour must still come back within ``max_s`` of being switched on.

The rule, in one place: attempt ``n`` (0-based) waits ``min(max_s, initial_s * factor**n)`` scaled
down by a random fraction of at most ``jitter``, so a delay never exceeds the cap.

Examples:
    >>> import random
    >>> backoff = Backoff(initial_s=0.5, max_s=4.0, jitter=0.0)
    >>> [backoff.next_delay() for _ in range(5)]
    [0.5, 1.0, 2.0, 4.0, 4.0]
    >>> backoff.reset(); backoff.next_delay()
    0.5
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from pipeline.errors import ConfigError


@dataclass
class Backoff:
    """Delays between reconnect attempts.

    Args:
        initial_s: delay before the first retry.
        max_s: no delay is longer than this.
        factor: growth per failed attempt.
        jitter: fraction in [0, 1): each delay is scaled by a random value in ``[1 - jitter, 1]``.
        rng: random source (seed it in tests).
    """

    initial_s: float = 0.5
    max_s: float = 10.0
    factor: float = 2.0
    jitter: float = 0.25
    rng: random.Random = field(default_factory=random.Random, repr=False)
    attempt: int = 0

    def __post_init__(self) -> None:
        if not self.initial_s > 0:
            raise ConfigError(f"backoff initial delay must be > 0 s, got {self.initial_s}")
        if self.max_s < self.initial_s:
            raise ConfigError(
                f"backoff max delay ({self.max_s} s) must be >= its initial delay "
                f"({self.initial_s} s)"
            )
        if self.factor < 1:
            raise ConfigError(f"backoff factor must be >= 1, got {self.factor}")
        if not 0 <= self.jitter < 1:
            raise ConfigError(f"backoff jitter must be in [0, 1), got {self.jitter}")

    def next_delay(self) -> float:
        """The delay before the next attempt; each call counts one more failed attempt."""
        # Exponent capped so the float never overflows on a camera that is down for months.
        base = min(self.max_s, self.initial_s * self.factor ** min(self.attempt, 64))
        self.attempt += 1
        return base * (1.0 - self.jitter * self.rng.random())

    def reset(self) -> None:
        """Start over from ``initial_s``: call after a connection that actually delivered frames."""
        self.attempt = 0
