"""The plain Hugging Face streaming loop: the baseline all our comparisons run against.

This is the loop the transformers docs show for ``Sam3VideoModel``: one inference session per
video, concepts registered once, and per frame BGR -> RGB, the processor, ``model(frame=...)`` and
``postprocess_outputs``, with nothing ever pruned or evicted. ``bench session``, ``bench
throughput`` and the test proving that pruning changes no output all step this one class, so the
baseline cannot drift between the figures it is compared in.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np
import supervision as sv
import torch

from tracker.pruning import tensor_bytes


class StageTimer(Protocol):
    """What ``PlainHFStream`` needs from ``tracker.stages.StageClock``: a timer per stage."""

    def measure(self, stage: str) -> contextlib.AbstractContextManager[None]: ...


class _Untimed:
    @contextlib.contextmanager
    def measure(self, stage: str) -> Iterator[None]:
        yield


class PlainHFStream:
    """One video through an unpruned HF streaming session, stepped a frame at a time.

    Args:
        processor: a ``Sam3VideoProcessor``.
        model: a ``Sam3VideoModel`` in eval mode.
        device: where the session keeps its tensors (``"cpu"``, ``torch.device("cuda")``).
        classes: the concept texts, registered once on the new session.
        autocast_dtype: run the model under ``torch.autocast`` with this dtype, as the tracker
            does on GPUs; ``None`` or ``torch.float32``: no autocast.
        clock: times the ``preprocess`` and ``postprocess`` stages (``tracker.stages.StageClock``);
            the model's own stages are timed by the hooks the clock attaches to the model.

    Examples:
        stream = PlainHFStream(tracker.processor, tracker.model, device=tracker.device,
                               classes=["person"])
        outputs = stream.step(bgr)  # postprocess_outputs: "object_ids", "scores", "masks"
    """

    def __init__(
        self,
        processor: Any,
        model: Any,
        *,
        device: str | torch.device,
        classes: str | list[str],
        autocast_dtype: torch.dtype | None = None,
        clock: StageTimer | None = None,
    ) -> None:
        self.processor = processor
        self.model = model
        self.device = device
        self.autocast_dtype = autocast_dtype
        self.clock: StageTimer = clock or _Untimed()
        self.session = processor.init_video_session(inference_device=device)
        processor.add_text_prompt(self.session, classes)
        self.frames_processed = 0

    def step(self, bgr: np.ndarray) -> dict[str, torch.Tensor]:
        """Run the next frame ((H, W, 3) uint8 BGR); return ``postprocess_outputs``' dict."""
        with self.clock.measure("preprocess"):
            rgb = np.ascontiguousarray(bgr[:, :, ::-1])  # the model was trained on RGB
            inputs = self.processor(images=rgb, device=self.device, return_tensors="pt")
        with torch.inference_mode(), self._autocast():
            output = self.model(
                inference_session=self.session,
                frame=inputs.pixel_values[0],
                frame_idx=self.frames_processed,
            )
        with self.clock.measure("postprocess"):
            outputs: dict[str, torch.Tensor] = self.processor.postprocess_outputs(
                self.session, output, original_sizes=inputs.original_sizes
            )
        self.frames_processed += 1
        return outputs

    @property
    def bytes_held(self) -> int:
        """Bytes of every tensor the session keeps: it grows with every frame and object."""
        session = self.session
        return tensor_bytes(
            [session.processed_frames, session.output_dict_per_obj, session.mask_inputs_per_obj]
        )

    @property
    def frames_held(self) -> int:
        """Frames the session keeps (all of them: the port frees nothing while streaming)."""
        return len(self.session.processed_frames)

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.autocast_dtype in (None, torch.float32):
            return contextlib.nullcontext()
        return torch.autocast(device_type=torch.device(self.device).type, dtype=self.autocast_dtype)


def to_detections(
    outputs: dict[str, torch.Tensor], *, threshold: float, height: int, width: int
) -> sv.Detections:
    """``postprocess_outputs``' dict as ``sv.Detections``, the objects below ``threshold`` dropped.

    What a plain loop must add before a sink can use its results; shaped as the tracker's own
    output (float32 boxes in pixels of the ``height`` x ``width`` frame, bool masks, int64 ids).
    """
    masks = outputs["masks"].cpu().numpy().astype(bool).reshape(-1, height, width)  # (N, H, W)
    scores = outputs["scores"].float().cpu().numpy().reshape(-1)
    ids = outputs["object_ids"].cpu().numpy().astype(np.int64)
    keep = scores >= threshold
    if not keep.any():
        return sv.Detections.empty()
    return sv.Detections(
        xyxy=sv.mask_to_xyxy(masks[keep]).astype(np.float32),
        mask=masks[keep],
        confidence=scores[keep],
        tracker_id=ids[keep],
    )
