"""The frame loop's typed contracts with its neighbours.

- ``FrameProcessor``: what the loop needs from the model side. ``tracker.SessionRegistry``
  implements it; so do the tests' stand-in models, which declare it as their base so they cannot
  drift from what the loop calls.
- ``FramePrompter``: what adds and removes box/point-prompted objects around each frame (a
  workflow's ``prompt_mode``).
- ``ManagedPipeline`` / ``PipelineFactory``: what a driver (the HTTP service) needs from a
  pipeline and how it builds one. ``InferencePipeline`` and ``InferencePipeline.init`` implement
  them; the service tests' scripted pipeline does too.

They are ``Protocol`` classes: ``tracker`` does not import ``pipeline``, so the registry fits the
contract by its shape, not by inheritance.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import supervision as sv

if TYPE_CHECKING:
    from pipeline.loop.status import PipelineStatus
    from pipeline.loop.status_events import StatusUpdateHandler
    from pipeline.video_frame import VideoFrame
    from tracker.visual_prompts import VisualPrompt

PredictionSink = Callable[[Any, "VideoFrame"], object]
"""``on_prediction(predictions, video_frame)``: ``sv.Detections`` from ``init``, the workflow's
result dict from ``init_with_workflow``."""


class FrameProcessor(Protocol):
    """Runs one frame of one stream through the model; keeps a session per ``video_identifier``.

    A processor may also carry the tracker it runs as a ``tracker`` attribute (``SessionRegistry``
    does): the pipeline then names the model after it and refuses a different ``tracker=``.
    Stand-ins without a model need not have one.
    """

    def process(
        self,
        image: np.ndarray,
        *,
        video_identifier: str,
        frame_id: int,
        class_names: tuple[str, ...],
        threshold: float,
        epoch: int,
    ) -> sv.Detections:
        """Detections for ``image`` ((H, W, 3) uint8 BGR), ids stable within the identifier.

        Raises:
            InferenceError: the model failed on this frame (the loop counts it and goes on).
        """
        ...

    def close(self, video_identifier: str) -> None:
        """Free the stream's session; a later frame starts a new one, ids continue."""
        ...

    def add_prompt(self, video_identifier: str, prompt: VisualPrompt) -> list[int]:
        """Track what a box/point prompt points at from the stream's next frame; its ids.

        A processor that declares this Protocol as its base without tracking prompts (a test's
        stand-in model) inherits this refusal.

        Raises:
            ValueError: naming the prompt's field that does not fit (``SessionRegistry``).
        """
        raise ValueError(f"prompts: {type(self).__name__} cannot track box/point prompts")

    def remove_object(self, video_identifier: str, tracker_id: int) -> None:
        """End one live object of the stream now.

        Raises:
            KeyError: the stream has no live object with ``tracker_id`` (a stand-in has none).
        """
        raise KeyError(tracker_id)


class FramePrompter(Protocol):
    """Adds and removes prompted objects around each frame of the streams it serves.

    A workflow's visual step (``prompt_mode`` first_frame / every_n_frames / every_frame) is
    one; it keeps its state per ``frame.video_identifier``.
    """

    def before_frame(self, frame: VideoFrame, registry: FrameProcessor) -> None:
        """Called just before ``registry.process`` runs ``frame``; may add or remove objects.

        Raises:
            ValueError: a prompt was refused (logged by the pipeline; the frame still runs).
        """
        ...

    def after_frame(self, frame: VideoFrame, detections: sv.Detections) -> None:
        """Called with the frame's detections as the registry returned them."""
        ...


class ManagedPipeline(Protocol):
    """What the service drives: lifecycle, runtime settings, status, and sink error reports."""

    def start(self, use_main_thread: bool = True) -> None: ...

    def terminate(self, *, drain: bool = False) -> None: ...

    def join(self, timeout: float | None = None) -> bool: ...

    def status(self) -> PipelineStatus: ...

    def pause_stream(self, source_id: int | None = None) -> None: ...

    def resume_stream(self, source_id: int | None = None) -> None: ...

    def set_class_names(self, class_names: str | Sequence[str]) -> None: ...

    def set_threshold(self, threshold: float) -> None: ...

    def add_prompt(self, prompt: VisualPrompt, source_id: int | None = None) -> list[int]: ...

    def remove_object(self, tracker_id: int, source_id: int | None = None) -> None: ...

    def report_sink_error(self, sink_name: str, error: BaseException) -> None: ...


class PipelineFactory(Protocol):
    """Builds a ``ManagedPipeline``: the part of ``InferencePipeline.init`` the service uses.

    Raises ``SourceError`` for a reference that can never work and ``ConfigError`` (with
    ``field``) for a bad option.
    """

    def __call__(
        self,
        video_reference: Any,
        class_names: Sequence[str],
        on_prediction: PredictionSink,
        *,
        threshold: float,
        max_fps: float | None,
        video_identifiers: Sequence[str | None],
        status_update_handlers: Sequence[StatusUpdateHandler],
        registry: FrameProcessor,
        **source_options: Any,
    ) -> ManagedPipeline: ...
