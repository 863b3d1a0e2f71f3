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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from tracker.batching import (
    DEFAULT_GATHER_WINDOW_MS,
    DEFAULT_MAX_BATCH,
    BackboneBatcher,
    BatcherStats,
    precomputed_vision_features,
)
from tracker.compile import compile_vision_encoder
from tracker.errors import ModelLoadError
from tracker.frame_matching import FrameMatching, read_frame_matching
from tracker.hf_session import BoundedInferenceSession, new_streaming_session
from tracker.inputs import check_class_texts
from tracker.model_config import check_config_overrides
from tracker.postprocess import install_postprocessing
from tracker.preprocess import TensorPreprocessor
from tracker.stages import StageClock
from tracker.visual_prompts import VisualPrompt
from tracker.visual_session import BoundedVisualSession
from tracker.weights import REAL_MODEL

logger = logging.getLogger(__name__)


class _QuietObjectCap(logging.Filter):
    """The port warns every frame once ``max_num_objects`` is reached: that is the cap working."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "hitting self.max_num_objects" not in record.getMessage()


logging.getLogger("transformers.models.sam3_video.modeling_sam3_video").addFilter(_QuietObjectCap())

# Tokens per text prompt: ``Sam3VideoProcessor.add_text_prompt`` pads every prompt to this length.
PROMPT_TOKENS = 32

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
        matching: what the detector said about each track on this frame (None: not reported,
            every object in the output counts as matched).
    """

    object_ids: np.ndarray
    scores: np.ndarray
    tracker_scores: np.ndarray
    masks: np.ndarray
    prompts: tuple[str, ...]
    matching: FrameMatching | None = None


@dataclass(frozen=True)
class VisualFrameResult:
    """What the box/point-prompted tracker says about one frame, on the CPU.

    Attributes:
        object_ids: (N,) int64 the visual session's object ids, in the session's order.
        score_logits: (N,) float32 object score logit (> 0: the tracker sees the object).
        masks: (N, H, W) bool at the original frame resolution (may be empty on random weights).
    """

    object_ids: np.ndarray
    score_logits: np.ndarray
    masks: np.ndarray

    @classmethod
    def empty(cls, height: int, width: int) -> VisualFrameResult:
        return cls(
            object_ids=np.zeros((0,), dtype=np.int64),
            score_logits=np.zeros((0,), dtype=np.float32),
            masks=np.zeros((0, height, width), dtype=bool),
        )


def resolve_device(device: str | torch.device) -> torch.device:
    """``auto`` means CUDA when present, else CPU; any other device must exist on this machine.

    Checked here, before any weights are read, so ``--device cuda`` on a machine without CUDA
    is one line naming the device, not a traceback from deep inside the first ``.to()``.

    Raises:
        ModelLoadError: not a device name torch knows, or a device this machine does not have.
    """
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ModelLoadError(
            f"device {device!r} is not a device name: use auto, cpu, mps, cuda or cuda:N"
        ) from None
    missing = _why_unavailable(resolved)
    if missing:
        raise ModelLoadError(f"device {device} is not available on this machine: {missing}")
    return resolved


def _why_unavailable(device: torch.device) -> str | None:
    """What this machine lacks for ``device`` (None: it has it)."""
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            return "CUDA is not available (no GPU, or torch built without CUDA); use --device cpu"
        if device.index is not None and device.index >= count:
            return f"CUDA has {count} device(s), numbered from 0"
    elif device.type == "mps" and not torch.backends.mps.is_available():
        return "Apple MPS is not available; use --device cpu"
    return None


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

    Throughput options (issue 7) leave results unchanged: ``batch_streams`` runs the vision
    backbone once for the frames of every stream that has one ready (``tracker.batching``),
    ``fast_preprocess`` resizes/normalises without the processor's overhead
    (``tracker.preprocess``), ``compile_vision`` compiles the backbone on CUDA
    (``tracker.compile``). ``stage_clock`` (a ``tracker.stages.StageClock``) times the steps.

    Examples:
        >>> from tracker import Sam3VideoTracker, build_tiny_model
        >>> tracker = Sam3VideoTracker.from_pretrained(str(build_tiny_model("/tmp/tiny-sam3")))
        >>> tracker.device.type
        'cpu'
    """

    def __init__(
        self,
        model: Any,
        processor: Any,
        device: torch.device,
        compute_dtype: torch.dtype,
        *,
        batch_streams: bool = False,
        gather_window_ms: float = DEFAULT_GATHER_WINDOW_MS,
        max_batch: int = DEFAULT_MAX_BATCH,
        fast_preprocess: bool = True,
    ) -> None:
        self.model = model
        self.processor = processor
        self.device = device
        self.compute_dtype = compute_dtype
        self.name = str(getattr(model, "name_or_path", "")) or "sam3"
        self._lock = threading.Lock()
        # Throughput additions (issue 7). Neither changes results: the tensor preprocessor is
        # bit-identical to the processor, and batching hands each forward its own slice.
        self.stage_clock: StageClock | None = None
        self._preprocessor = (
            TensorPreprocessor.from_processor(processor, device) if fast_preprocess else None
        )
        # Bound before any per-step override so the batched pass always runs the real backbone.
        self._vision_features = model.detector_model.get_vision_features
        self._batcher: BackboneBatcher | None = None
        self._video_processor: Any = None
        self.set_batching(batch_streams, gather_window_ms=gather_window_ms, max_batch=max_batch)

    @classmethod
    def from_pretrained(
        cls,
        model: str = REAL_MODEL,
        device: str | torch.device = "auto",
        dtype: str | torch.dtype = "auto",
        *,
        batch_streams: bool = False,
        gather_window_ms: float = DEFAULT_GATHER_WINDOW_MS,
        max_batch: int = DEFAULT_MAX_BATCH,
        fast_preprocess: bool = True,
        compile_vision: bool = False,
        **config_overrides: Any,
    ) -> Sam3VideoTracker:
        """Load ``Sam3VideoModel`` and ``Sam3VideoProcessor`` from a Hub id or a directory.

        Args:
            model: Hub id (read from the local cache when offline) or a local directory.
            device: ``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:1``...
            dtype: ``auto``, ``float32``, ``bfloat16`` or ``float16`` compute precision.
            batch_streams: run the vision backbone once for every stream with a frame ready
                (``tracker.batching``); pays off when several threads feed different streams.
            gather_window_ms: the longest a batch waits for streams of the previous round.
            max_batch: the most frames in one backbone pass.
            fast_preprocess: resize/normalise with ``tracker.preprocess`` (same pixel values as
                the processor, less overhead); False uses the processor.
            compile_vision: ``torch.compile`` the vision encoder with static shapes (CUDA only;
                ignored with a warning elsewhere). The first frame of each batch size compiles.
            **config_overrides: fields of ``Sam3VideoConfig`` (``max_num_objects``, thresholds...);
                nothing else reaches the loader (``tracker.model_config``).

        Raises:
            ModelLoadError: weights missing or gated, with the steps that fix it; or ``device``
                is not on this machine.
            ValueError: a ``config_overrides`` name that is not a ``Sam3VideoConfig`` field.
        """
        overrides = check_config_overrides(config_overrides)
        resolved_device = resolve_device(device)
        compute_dtype = resolve_autocast_dtype(dtype, resolved_device)
        loaded, processor = _load(model, overrides)
        install_postprocessing()
        loaded = loaded.to(resolved_device).eval()
        if compile_vision:
            compile_vision_encoder(loaded, resolved_device, max_batch=max_batch)
        tracker = cls(
            loaded,
            processor,
            resolved_device,
            compute_dtype,
            batch_streams=batch_streams,
            gather_window_ms=gather_window_ms,
            max_batch=max_batch,
            fast_preprocess=fast_preprocess,
        )
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

    @property
    def text_token_limit(self) -> int:
        """The most tokens one class text may take: the text encoder's positions (from its config).

        ``facebook/sam3`` and the tiny checkpoint read 32; a longer text fails inside the model.
        """
        text_config = getattr(getattr(self.config, "detector_config", None), "text_config", None)
        return int(getattr(text_config, "max_position_embeddings", None) or PROMPT_TOKENS)

    def check_class_texts(self, class_names: Sequence[str], *, field: str = "class_names") -> None:
        """Refuse class texts the model cannot read (``tracker.inputs.check_class_texts``).

        Raises:
            ValueError: naming ``field[i]``, its token count and ``text_token_limit``.
        """
        with self._lock:  # the fast tokenizer must not be used by two threads at once
            check_class_texts(class_names, self._count_tokens, self.text_token_limit, field=field)

    def _count_tokens(self, text: str) -> int:
        return len(self.processor.tokenizer(text)["input_ids"])

    def new_session(self, class_names: tuple[str, ...]) -> BoundedInferenceSession:
        """A fresh streaming session with the concepts registered (``add_prompts``)."""
        session = new_streaming_session(BoundedInferenceSession, self.device)
        self.add_prompts(session, class_names)
        return session

    def add_prompts(self, session: BoundedInferenceSession, texts: tuple[str, ...]) -> None:
        """Register concepts on a running session; the detector looks for them from its next frame.

        Tracks of the other concepts are untouched: the port runs the detector once per prompt
        and never matches a detection to a track of another prompt. Texts already registered are
        skipped. This does what ``Sam3VideoProcessor.add_text_prompt`` does, except the id: the
        port numbers a new prompt ``len(prompts)``, which after ``remove_prompts`` can be the id
        of a prompt still in use; here it is above every id a prompt or an object still holds.

        Raises:
            ValueError: a text longer than ``text_token_limit`` (nothing is registered then).
        """
        with self._lock:  # the fast tokenizer must not be used by two threads at once
            check_class_texts(texts, self._count_tokens, self.text_token_limit)
            for text in texts:
                if text in session.prompts.values():
                    continue
                in_use = [*session.prompts, *session.obj_id_to_prompt_id.values()]
                prompt_id = max(in_use, default=-1) + 1
                encoded = self.processor.tokenizer(
                    text, return_tensors="pt", padding="max_length", max_length=PROMPT_TOKENS
                ).to(session.inference_device)
                session.prompts[prompt_id] = text
                session.prompt_input_ids[prompt_id] = encoded.input_ids  # (1, PROMPT_TOKENS)
                session.prompt_attention_masks[prompt_id] = encoded.attention_mask
                # The text embedding is computed by the model on the next frame and cached.

    def remove_prompts(self, session: BoundedInferenceSession, texts: tuple[str, ...]) -> list[int]:
        """Drop concepts from a running session and end every track they found.

        The prompt, its tokens and its cached text embedding go, so the detector no longer looks
        for it; each of its objects is removed like an evicted one (``remove_object``). The port
        never reuses an object id within a session, so the ids of those tracks are retired.

        Returns:
            The session's object ids of the tracks that ended, in the session's order.
        """
        from tracker.pruning import forget_object

        gone = {prompt_id for prompt_id, text in session.prompts.items() if text in texts}
        owned = {obj for obj, prompt_id in session.obj_id_to_prompt_id.items() if prompt_id in gone}
        ended = [obj for obj in session.obj_ids if obj in owned]
        with self._lock:
            for obj_id in owned:
                forget_object(session, obj_id)
            for prompt_id in gone:
                for per_prompt in (
                    session.prompts,
                    session.prompt_input_ids,
                    session.prompt_attention_masks,
                    session.prompt_embeddings,
                ):
                    per_prompt.pop(prompt_id, None)
        return ended

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.compute_dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.compute_dtype)

    def set_batching(
        self,
        enabled: bool,
        *,
        gather_window_ms: float = DEFAULT_GATHER_WINDOW_MS,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        """Turn cross-stream backbone batching on or off; call while no frame is in flight."""
        self._batcher = (
            BackboneBatcher(
                self._batched_backbone,
                gather_window_s=gather_window_ms / 1000,
                max_batch=max_batch,
            )
            if enabled
            else None
        )

    @property
    def batch_streams(self) -> bool:
        return self._batcher is not None

    def batching_stats(self) -> BatcherStats | None:
        """How backbone batches formed so far (None when batching is off)."""
        return self._batcher.stats() if self._batcher is not None else None

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the model for work outside a stream step (image requests): lock, autocast.

        Image requests share the weights with every stream, so they take the same lock a
        stream's frame takes: a forward pass never interleaves with another.
        """
        with self._lock, torch.inference_mode(), self._autocast():
            yield

    def pixel_values(self, rgb: np.ndarray) -> torch.Tensor:
        """(H, W, 3) uint8 RGB -> (3, S, S) float32 normalised pixels on the device, as a frame."""
        return self._preprocess(rgb)

    def _measure(self, stage: str) -> contextlib.AbstractContextManager:
        clock = self.stage_clock
        return clock.measure(stage) if clock is not None else contextlib.nullcontext()

    def _preprocess(self, rgb: np.ndarray) -> torch.Tensor:
        """(H, W, 3) uint8 RGB -> (3, S, S) float32 normalised pixels on the device."""
        with self._measure("preprocess"):
            if self._preprocessor is not None:
                return self._preprocessor(rgb)
            inputs = self.processor(images=rgb, device=self.device, return_tensors="pt")
            return inputs.pixel_values[0]

    def _batched_backbone(self, pixels: torch.Tensor) -> Any:
        """(B, 3, S, S) -> batched ``Sam3VisionEncoderOutput``, under the model lock."""
        with self._lock, torch.inference_mode(), self._autocast():
            return self._vision_features(pixel_values=pixels)

    def step(
        self, session: BoundedInferenceSession, rgb: np.ndarray, frame_idx: int
    ) -> FrameResult:
        """Run one RGB frame (H, W, 3 uint8) through the model at session index ``frame_idx``.

        With batching on, this thread's frame joins the next backbone batch and the forward
        reads its slice; the rest of the step is the same code under the same lock.
        """
        height, width = rgb.shape[:2]
        batcher = self._batcher
        if batcher is None:
            with self._lock, torch.inference_mode(), self._autocast():
                pixel_values = self._preprocess(rgb)
                output, post = self._forward(session, pixel_values, frame_idx, height, width)
        else:
            # Outside the model lock: preprocessing overlaps other streams' steps.
            with torch.inference_mode(), self._autocast():
                pixel_values = self._preprocess(rgb)
            with (
                batcher.lease(pixel_values) as features,
                self._lock,
                torch.inference_mode(),
                self._autocast(),
                precomputed_vision_features(self.model.detector_model, pixel_values, features),
            ):
                output, post = self._forward(session, pixel_values, frame_idx, height, width)
        with self._measure("postprocess"):
            return self._frame_result(session, output, post, height, width)

    def _forward(
        self,
        session: BoundedInferenceSession,
        pixel_values: torch.Tensor,
        frame_idx: int,
        height: int,
        width: int,
    ) -> tuple[Any, dict[str, Any]]:
        """The HF forward and postprocess of one frame; the caller holds the model lock."""
        # pixel_values: (3, S, S) float32 normalised
        output = self.model(inference_session=session, frame=pixel_values, frame_idx=frame_idx)
        with self._measure("postprocess"):
            post = self.processor.postprocess_outputs(
                session, output, original_sizes=[[height, width]]
            )
        return output, post

    @staticmethod
    def _frame_result(
        session: BoundedInferenceSession,
        output: Any,
        post: dict[str, Any],
        height: int,
        width: int,
    ) -> FrameResult:
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
            matching=read_frame_matching(session, output.frame_idx, object_ids.tolist()),
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

        with self._measure("prune"):
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

    # Visual (box/point-prompted) tracking: the video model's own tracker, no second load.

    @property
    def video_processor(self) -> Any:
        """The ``Sam3TrackerVideoProcessor`` of this checkpoint (prompt encoding, mask resizing).

        Loaded on first use from the directory / Hub id the model came from: it holds no weights.

        Raises:
            ModelLoadError: the checkpoint has no tracker-video processor files.
        """
        if self._video_processor is None:
            from transformers import Sam3TrackerVideoProcessor

            try:
                self._video_processor = Sam3TrackerVideoProcessor.from_pretrained(self.name)
            except Exception as error:  # any failure means visual tracking cannot run here
                raise ModelLoadError(
                    f"{self.name} has no loadable Sam3TrackerVideoProcessor ({error})"
                ) from error
        return self._video_processor

    def new_visual_session(self) -> BoundedVisualSession:
        """A fresh box/point-prompted streaming session on the model's device."""
        return new_streaming_session(BoundedVisualSession, self.device)

    def add_visual_prompt(
        self,
        session: BoundedVisualSession,
        prompt: VisualPrompt,
        obj_ids: Sequence[int],
        frame_idx: int,
        height: int,
        width: int,
    ) -> None:
        """Place ``prompt`` on frame ``frame_idx`` of ``session`` for ``obj_ids``.

        ``frame_idx`` should be a frame not yet tracked: there the prompt becomes a conditioning
        frame, kept in memory; on a tracked frame the port stores it as a correction that the
        pruning window forgets. An id already in the session is refined (same id), a new one is
        added. Several calls before one ``visual_step`` are all applied.

        Args:
            prompt: checked against ``height`` x ``width`` first.
            obj_ids: one per box of the prompt (one for a points-only prompt).

        Raises:
            ValueError: a field of ``prompt`` does not fit the frame or names an object not in
                the session, ``obj_ids`` do not match its objects, or ``frame_idx`` was tracked.
        """
        prompt.check_frame(height, width)
        if prompt.tracker_id is not None:
            if prompt.tracker_id not in session.obj_ids:
                raise ValueError(f"tracker_id: no object {prompt.tracker_id} is tracked here")
            if list(obj_ids) != [prompt.tracker_id]:
                raise ValueError(f"obj_ids: refining tracker_id takes [{prompt.tracker_id}]")
        if len(obj_ids) != prompt.object_count:
            raise ValueError(
                f"obj_ids: the prompt makes {prompt.object_count} object(s), got {len(obj_ids)} ids"
            )
        processor = self.video_processor
        with self._lock:
            for i, obj_id in enumerate(obj_ids):
                inputs: dict[str, Any] = {"original_size": (height, width)}
                if prompt.boxes:
                    inputs["input_boxes"] = [[list(prompt.boxes[i])]]  # (1 image, 1 box, 4)
                if prompt.points:
                    # (1 image, 1 object, P points, 2) and (1, 1, P)
                    inputs["input_points"] = [[[list(p) for p in prompt.points]]]
                    inputs["input_labels"] = [[list(prompt.labels)]]
                session.add_inputs(processor, frame_idx, [int(obj_id)], **inputs)

    def tracker_features(self, rgb: np.ndarray) -> dict[str, Any]:
        """One backbone pass + the tracker neck: what a visual session caches for a frame.

        A stream that also runs concepts already has these in its concept session's cache
        (``cache.get_vision_features(frame_idx)`` after the concept step); pass them to
        ``visual_step`` instead to skip this pass.
        """
        with self._lock, torch.inference_mode(), self._autocast():
            return self._tracker_features(self._preprocess(rgb))

    def _tracker_features(self, pixel_values: torch.Tensor) -> dict[str, Any]:
        # pixel_values: (3, S, S) float32 normalised
        embeddings = self._vision_features(pixel_values=pixel_values[None])
        feats, pos = self.model.get_vision_features_for_tracker(embeddings)
        return {"vision_feats": feats, "vision_pos_embeds": pos}

    def visual_step(
        self,
        session: BoundedVisualSession,
        frame_idx: int,
        *,
        rgb: np.ndarray | None = None,
        features: dict[str, Any] | None = None,
        height: int | None = None,
        width: int | None = None,
    ) -> VisualFrameResult:
        """Track the session's objects through frame ``frame_idx`` on the video model's tracker.

        The video model's ``tracker_model`` is a ``Sam3TrackerVideoModel`` without a vision
        encoder; the detector backbone + tracker neck (``tracker_features``) are its eyes, so
        visual tracking adds no weights. The features go to the session's cache and the frame
        passed is a 1-element placeholder: it only makes the call streaming.

        Args:
            rgb: (H, W, 3) uint8 RGB, when ``features`` are not given.
            features: this frame's tracker features (e.g. from the concept session's cache).
            height, width: the original frame size (taken from ``rgb`` when given).

        Returns:
            Per-object ids, score logits and masks; empty (model not run) without objects.
        """
        if rgb is not None:
            height, width = rgb.shape[:2]
        elif features is None or height is None or width is None:
            raise ValueError("visual_step needs rgb, or features with height and width")
        if session.get_obj_num() == 0:
            # The port refuses a forward without objects.
            return VisualFrameResult.empty(height, width)
        processor = self.video_processor
        with self._lock, torch.inference_mode(), self._autocast():
            if features is None:
                assert rgb is not None
                features = self._tracker_features(self._preprocess(rgb))
            session.cache.cache_vision_features(frame_idx, features)
            output = self.model.tracker_model(
                inference_session=session, frame=torch.zeros(1), frame_idx=frame_idx
            )
            # (N, 1, h, w) logits -> (N, 1, H, W) bool
            masks = processor.post_process_masks(
                [output.pred_masks], original_sizes=[[height, width]]
            )[0]
        logits = output.object_score_logits.float().cpu().numpy()  # (N, 1)
        return VisualFrameResult(
            object_ids=np.asarray(list(output.object_ids), dtype=np.int64),
            score_logits=logits.reshape(-1).astype(np.float32),
            masks=masks.cpu().numpy().astype(bool).reshape(-1, height, width),
        )

    def remove_visual_object(self, session: BoundedVisualSession, obj_id: int) -> None:
        """Forget one object of a visual session (``BoundedVisualSession.remove_object``)."""
        with self._lock:
            session.remove_object(obj_id)

    def prune_visual(
        self,
        session: BoundedVisualSession,
        frame_idx: int,
        *,
        memory_frames: int,
        max_conditioning_frames: int,
    ) -> None:
        """Free what the tracker can no longer read (``tracker.pruning.prune_visual_session``)."""
        from tracker.pruning import prune_visual_session

        with self._measure("prune"):
            prune_visual_session(
                session,
                frame_idx,
                memory_frames=memory_frames,
                max_conditioning_frames=max_conditioning_frames,
            )

    def rebase_visual(self, session: BoundedVisualSession, offset: int) -> None:
        """Shift frame indices down (``tracker.pruning.rebase_visual_session``)."""
        from tracker.pruning import rebase_visual_session

        rebase_visual_session(session, offset)

    def visual_held(self, session: BoundedVisualSession) -> tuple[int, int, int]:
        """(frames held, live objects, approximate bytes held) of one visual session."""
        from tracker.pruning import visual_session_bytes

        frames = len(session.processed_frames or {})
        return frames, len(session.obj_ids), visual_session_bytes(session)
