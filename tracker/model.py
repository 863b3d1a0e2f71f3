"""Loading SAM3 and running one streamed frame through it.

``Sam3VideoTracker`` owns the ``Sam3VideoModel`` and its processor. Many streams share one: the
model runs one frame at a time under a lock, so sessions on different threads never interleave
inside a forward pass.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pathlib
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from tracker.errors import ModelLoadError
from tracker.hf_session import BoundedInferenceSession, new_bounded_session

logger = logging.getLogger(__name__)


class _QuietObjectCap(logging.Filter):
    """The port warns every frame once ``max_num_objects`` is reached: that is the cap working."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "hitting self.max_num_objects" not in record.getMessage()


logging.getLogger("transformers.models.sam3_video.modeling_sam3_video").addFilter(_QuietObjectCap())

DEFAULT_MODEL = "facebook/sam3"
_FIX_STEPS = (
    "accept the licence at https://huggingface.co/facebook/sam3, run `hf auth login`, then "
    "`hf download facebook/sam3` (or pass --model with a local directory holding the weights)"
)


@dataclass(frozen=True)
class FrameResult:
    """What SAM3 says about one frame, on the CPU, before any id mapping or threshold.

    Attributes:
        object_ids: (N,) the session's own object ids (restart at 0 in every session).
        scores: (N,) float32 detection score of each object.
        tracker_scores: (N,) float32 tracker score on this frame.
        masks: (N, H, W) bool at the original frame resolution.
        prompts: the concept text that found each object.
    """

    object_ids: np.ndarray
    scores: np.ndarray
    tracker_scores: np.ndarray
    masks: np.ndarray
    prompts: tuple[str, ...]


def resolve_device(device: str | torch.device) -> torch.device:
    """``auto`` means CUDA when present, else CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_autocast_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """The compute precision: weights stay fp32, autocast runs matmuls in this dtype.

    ``auto`` is bf16 autocast on CUDA (the transformers maintainers' advice for SAM3, and the
    fastest we measured without material change in masks) and fp32 on CPU, where bf16 is slower.
    """
    if dtype in (None, "auto"):
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    names = {
        "float32": torch.float32,
        "fp32": torch.float32,
        "bfloat16": torch.bfloat16,
        "bf16": torch.bfloat16,
        "float16": torch.float16,
        "fp16": torch.float16,
    }
    if dtype not in names:
        raise ValueError(f"dtype must be one of auto, {', '.join(names)}; got {dtype!r}")
    return names[dtype]


def _is_local(model: str) -> bool:
    return os.path.isabs(model) or model.startswith((".", "~")) or pathlib.Path(model).exists()


def _load(model: str, config_overrides: dict[str, Any]) -> tuple[Any, Any]:
    from transformers import Sam3VideoModel, Sam3VideoProcessor

    if _is_local(model):
        path = pathlib.Path(model).expanduser()
        if not (path / "config.json").exists():
            raise ModelLoadError(
                f"model directory {path} does not exist or holds no config.json; "
                f"point --model at a directory written by `hf download facebook/sam3 --local-dir` "
                f"or `sam3-stream make-tiny-model`"
            )
        model = str(path)
    try:
        processor = Sam3VideoProcessor.from_pretrained(model)
        loaded = Sam3VideoModel.from_pretrained(model, **config_overrides)
    except Exception as error:  # classified below into the two cases a user can fix
        raise _classify_load_error(model, error) from error
    return loaded, processor


def _classify_load_error(model: str, error: Exception) -> ModelLoadError:
    text = f"{type(error).__name__}: {error}"
    if "gated" in text.lower() or "401" in text or "403" in text:
        return ModelLoadError(
            f"access to {model} is gated and this machine is not authorised: {_FIX_STEPS}"
        )
    if _is_local(model):
        return ModelLoadError(f"{model} is not a loadable SAM3 video checkpoint ({text})")
    return ModelLoadError(
        f"weights for {model} are not in the local Hugging Face cache and cannot be downloaded "
        f"here: {_FIX_STEPS}"
    )


class Sam3VideoTracker:
    """One loaded SAM3 video model, shared by every stream of the process.

    Examples:
        >>> from tracker import Sam3VideoTracker, build_tiny_model
        >>> tracker = Sam3VideoTracker.from_pretrained(str(build_tiny_model("/tmp/tiny-sam3")))
        >>> tracker.device.type
        'cpu'
    """

    def __init__(
        self, model: Any, processor: Any, device: torch.device, compute_dtype: torch.dtype
    ) -> None:
        self.model = model
        self.processor = processor
        self.device = device
        self.compute_dtype = compute_dtype
        self.name = str(getattr(model, "name_or_path", "")) or "sam3"
        self._lock = threading.Lock()

    @classmethod
    def from_pretrained(
        cls,
        model: str = DEFAULT_MODEL,
        device: str | torch.device = "auto",
        dtype: str | torch.dtype = "auto",
        **config_overrides: Any,
    ) -> Sam3VideoTracker:
        """Load ``Sam3VideoModel`` and ``Sam3VideoProcessor`` from a Hub id or a directory.

        Args:
            model: Hub id (read from the local cache when offline) or a local directory.
            device: ``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:1``...
            dtype: ``auto``, ``float32``, ``bfloat16`` or ``float16`` compute precision.
            **config_overrides: fields of ``Sam3VideoConfig`` (``max_num_objects``, thresholds...).

        Raises:
            ModelLoadError: weights missing or gated, with the steps that fix it.
        """
        resolved_device = resolve_device(device)
        compute_dtype = resolve_autocast_dtype(dtype, resolved_device)
        loaded, processor = _load(model, config_overrides)
        loaded = loaded.to(resolved_device).eval()
        tracker = cls(loaded, processor, resolved_device, compute_dtype)
        tracker.name = model
        logger.info(
            "loaded %s on %s (compute %s)",
            model,
            resolved_device,
            str(compute_dtype).split(".")[-1],
        )
        return tracker

    @property
    def config(self) -> Any:
        return self.model.config

    def new_session(self, class_names: tuple[str, ...]) -> BoundedInferenceSession:
        """A fresh streaming session with the concepts registered once."""
        session = new_bounded_session(self.device)
        self.processor.add_text_prompt(session, list(class_names))
        return session

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.compute_dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.compute_dtype)

    def step(
        self, session: BoundedInferenceSession, rgb: np.ndarray, frame_idx: int
    ) -> FrameResult:
        """Run one RGB frame (H, W, 3 uint8) through the model at session index ``frame_idx``."""
        height, width = rgb.shape[:2]
        with self._lock, torch.inference_mode(), self._autocast():
            inputs = self.processor(images=rgb, device=self.device, return_tensors="pt")
            # (3, S, S) float32 normalised pixels
            pixel_values = inputs.pixel_values[0]
            output = self.model(inference_session=session, frame=pixel_values, frame_idx=frame_idx)
            post = self.processor.postprocess_outputs(
                session, output, original_sizes=[[height, width]]
            )
        object_ids = post["object_ids"].cpu().numpy().astype(np.int64)
        tracker_score = output.obj_id_to_tracker_score or {}
        prompts = tuple(session.prompts[session.obj_id_to_prompt_id[int(i)]] for i in object_ids)
        return FrameResult(
            object_ids=object_ids,
            scores=post["scores"].float().cpu().numpy().astype(np.float32).reshape(-1),
            tracker_scores=np.array(
                [float(tracker_score.get(int(i), 0.0)) for i in object_ids], dtype=np.float32
            ),
            # (N, H, W) bool
            masks=post["masks"].cpu().numpy().astype(bool).reshape(-1, height, width),
            prompts=prompts,
        )

    def remove_object(self, session: BoundedInferenceSession, obj_id: int) -> None:
        from tracker.pruning import forget_object

        with self._lock:
            forget_object(session, obj_id)

    def prune(
        self,
        session: BoundedInferenceSession,
        frame_idx: int,
        *,
        memory_frames: int,
        max_conditioning_frames: int,
    ) -> None:
        """Free what the tracker can no longer read (see ``tracker.pruning.prune_session``)."""
        from tracker.pruning import prune_session

        prune_session(
            session,
            frame_idx,
            memory_frames=memory_frames,
            max_conditioning_frames=max_conditioning_frames,
        )

    def rebase(self, session: BoundedInferenceSession, offset: int) -> None:
        """Shift the session's frame indices down by ``offset`` (see ``rebase_frame_indices``)."""
        from tracker.pruning import rebase_frame_indices

        rebase_frame_indices(session, offset)

    @property
    def rebase_multiple(self) -> int:
        """Rebase offsets must keep ``frame_idx % recondition_every_nth_frame`` unchanged."""
        return max(1, int(getattr(self.config, "recondition_every_nth_frame", 1) or 1))

    def held(self, session: BoundedInferenceSession) -> tuple[int, int, int]:
        """(frames held, live objects, approximate bytes held) of one session."""
        from tracker.pruning import session_bytes

        frames = len(session.processed_frames or {})
        return frames, len(session.obj_ids), session_bytes(session)
