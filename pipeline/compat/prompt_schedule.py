"""When a visual-tracking workflow step reads its prompts: Roboflow's ``prompt_mode``.

Roboflow's ``sam3_video`` (visual mode) and ``segment_anything_2_video`` blocks take
``prompt_mode`` ``first_frame`` | ``every_n_frames`` | ``every_frame`` and ``prompt_interval``
(default 30). The rule, in one place (``PromptSchedule.is_due``), counted per stream in the frames
the step has run on (frames a live source dropped do not count, as in Roboflow):

- ``first_frame``: the stream's first frame only;
- ``every_n_frames``: frames 0, N, 2N, ... (N = ``prompt_interval``);
- ``every_frame``: every frame.

Roboflow counts its interval from the last prompt and checks it one frame late, so its block
prompts on frames 0, N+1, 2N+2, ...; here ``every_n_frames`` with N = 1 is ``every_frame``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

PromptMode = Literal["first_frame", "every_n_frames", "every_frame"]
PROMPT_MODES: tuple[PromptMode, ...] = ("first_frame", "every_n_frames", "every_frame")
DEFAULT_PROMPT_INTERVAL = 30
"""Roboflow's default ``prompt_interval`` for both blocks."""


@dataclass(frozen=True)
class PromptSchedule:
    """Which of a stream's frames the step prompts on.

    Attributes:
        mode: one of ``PROMPT_MODES``.
        interval: frames between prompts in ``every_n_frames`` mode (>= 1; unused otherwise).

    Examples:
        >>> schedule = PromptSchedule("every_n_frames", 3)
        >>> [index for index in range(8) if schedule.is_due(index)]
        [0, 3, 6]
        >>> PromptSchedule("first_frame").is_due(1)
        False
    """

    mode: PromptMode = "first_frame"
    interval: int = DEFAULT_PROMPT_INTERVAL

    def __post_init__(self) -> None:
        if self.mode not in PROMPT_MODES:
            raise ValueError(f"prompt_mode: {self.mode!r} is not one of {', '.join(PROMPT_MODES)}")
        if isinstance(self.interval, bool) or not isinstance(self.interval, int):
            raise ValueError(f"prompt_interval: must be an integer >= 1, got {self.interval!r}")
        if self.interval < 1:
            raise ValueError(f"prompt_interval: must be an integer >= 1, got {self.interval!r}")

    @property
    def reprompts(self) -> bool:
        """True when prompts are read again after the first frame (boxes are matched then)."""
        return self.mode != "first_frame"

    def is_due(self, index: int) -> bool:
        """Whether the stream's ``index``-th frame (0 = its first) is prompted."""
        if self.mode == "every_frame":
            return True
        if self.mode == "every_n_frames":
            return index % self.interval == 0
        return index == 0
