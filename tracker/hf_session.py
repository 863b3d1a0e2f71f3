"""The HF streaming inference session, taught to forget.

``Sam3VideoModel`` calls its tracker in non-streaming mode with the frame count taken from
``len(processed_frames)``: the count bounds how far back object pointers are read. Once old frames
are freed that length shrinks and results change from frame 2. ``BoundedInferenceSession`` reports
``max frame index + 1`` instead, which is what the unpruned session reports in streaming.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import torch
from transformers.models.sam3_video.modeling_sam3_video import Sam3VideoInferenceSession

SessionT = TypeVar("SessionT")


class FrameCountSurvivesPruning:
    """Mixin for the port's inference sessions: ``num_frames`` from a counter, not held frames.

    The port derives the frame count from the frames it holds; pruning keeps one, so the count
    is kept as ``max frame index + 1`` instead (and shifted by rebasing).
    """

    frame_count: int
    processed_frames: Any

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.frame_count = 0

    @property
    def num_frames(self) -> int | None:
        """``max frame index + 1``, not the number of frames still held."""
        return self.frame_count if self.processed_frames is not None else None

    def add_new_frame(self, pixel_values: torch.Tensor, frame_idx: int | None = None) -> int:
        frame_idx = super().add_new_frame(pixel_values, frame_idx)  # type: ignore[misc]
        self.frame_count = max(self.frame_count, frame_idx + 1)
        return int(frame_idx)


class BoundedInferenceSession(FrameCountSurvivesPruning, Sam3VideoInferenceSession):
    """A ``Sam3VideoInferenceSession`` whose frame count survives pruning and rebasing."""


def new_streaming_session(
    session_class: Callable[..., SessionT],
    device: torch.device | str,
    dtype: torch.dtype = torch.float32,
) -> SessionT:
    """A ``session_class`` streaming session (no video up front) on ``device``, as the port's
    ``init_video_session`` makes one; concept and visual sessions take the same arguments."""
    return session_class(
        video=None,
        inference_device=device,
        inference_state_device=device,
        video_storage_device=device,
        dtype=dtype,
        max_vision_features_cache_size=1,
    )
