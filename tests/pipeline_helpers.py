"""Helpers for the pipeline tests: stand-in models, a status event recorder, a pipeline factory,
status snapshots.

The stand-in model implements ``FrameProcessor``, what the pipeline calls on a registry. It is
NOT SAM3: it exists to make timing and failures controllable (a model that is slow on purpose,
one that fails on chosen frames). Tests that need real tracker ids use the tiny SAM3 checkpoint.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any

import numpy as np
import supervision as sv

from pipeline import InferencePipeline, StatusUpdate
from pipeline.loop.contracts import FrameProcessor
from pipeline.loop.status import LATENCY_STAGES, LatencySummary, SourceStatus
from pipeline.sources import SourceState, SourceStats
from tests.waiting import GUARD_S, CallRecorder
from tracker import InferenceError


class StandInModel(FrameProcessor):
    """Stand-in for ``SessionRegistry``: records every call, optionally sleeps or fails.

    Args:
        delay_s: seconds each frame takes (a deliberately slow model).
        fail_on: frame ids on which it raises ``InferenceError`` (as SAM3 would on a bad frame).
    """

    def __init__(self, delay_s: float = 0.0, fail_on: set[int] | None = None) -> None:
        self.delay_s = delay_s
        self.fail_on = fail_on or set()
        self.calls: list[dict[str, Any]] = []
        self.closed: list[str] = []
        self._lock = threading.Lock()

    def process(
        self,
        image: np.ndarray,
        *,
        video_identifier: str,
        frame_id: int,
        class_names: Any,
        threshold: float = 0.5,
        epoch: int = 0,
    ) -> sv.Detections:
        with self._lock:
            self.calls.append(
                {
                    "video_identifier": video_identifier,
                    "frame_id": frame_id,
                    "class_names": tuple(class_names),
                    "threshold": threshold,
                    "epoch": epoch,
                    "shape": image.shape,
                }
            )
        if self.delay_s:
            time.sleep(self.delay_s)  # the stand-in's whole point: a model slower than the camera
        if frame_id in self.fail_on:
            raise InferenceError(f"stand-in failure on frame {frame_id}")
        return sv.Detections.empty()

    def close(self, video_identifier: str) -> None:
        self.closed.append(video_identifier)


class EventRecorder(CallRecorder[StatusUpdate]):
    """A status update handler that tests can wait on."""

    def __call__(self, update: StatusUpdate) -> None:
        self.record(update)

    def of_type(self, event_type: str) -> list[StatusUpdate]:
        with self._condition:
            return [event for event in self.received if event.event_type == event_type]

    def wait_state(
        self, source_id: int, state: str, after: int = 0, timeout: float = GUARD_S
    ) -> StatusUpdate:
        """The first change of source ``source_id`` into ``state`` among ``received[after:]``."""
        return self.wait_for_item(
            lambda e: (
                e.event_type == "SOURCE_STATE_UPDATE"
                and e.payload["source_id"] == source_id
                and e.payload["new"] == state
            ),
            after=after,
            timeout=timeout,
            what=f"change of source {source_id} to {state}",
        )

    def describe(self, item: StatusUpdate) -> Any:
        return (item.event_type, item.payload.get("new"))

    def __len__(self) -> int:
        """How many events so far: the ``after`` mark for a later ``wait_state``."""
        with self._condition:
            return len(self.received)


class PipelineFactory:
    """``factory(...)`` is ``InferencePipeline.init(...)``; ``terminate_all()`` at teardown."""

    def __init__(self) -> None:
        self.made: list[InferencePipeline] = []

    def __call__(self, *args: Any, **kwargs: Any) -> InferencePipeline:
        pipeline = InferencePipeline.init(*args, **kwargs)
        self.made.append(pipeline)
        return pipeline

    def terminate_all(self) -> None:
        for pipeline in self.made:
            pipeline.terminate()


def source_status(
    *,
    total_frames: int | None = None,
    frames_processed: int = 0,
    inference_errors: int = 0,
    processed_fps: float = 0.0,
    latency_s: dict[str, LatencySummary] | None = None,
    **stats: Any,
) -> SourceStatus:
    """A ``SourceStatus`` with zero counters, a RUNNING state and empty latency windows, except
    what is given (``stats`` are ``SourceStats`` fields): for tests of what reads a status."""
    zero: dict[str, Any] = {}
    for field in dataclasses.fields(SourceStats):
        kind = str(field.type)
        if "None" in kind:
            zero[field.name] = None
        elif kind == "SourceState":
            zero[field.name] = SourceState.RUNNING
        else:
            zero[field.name] = {"int": 0, "float": 0.0, "bool": False, "str": ""}[kind]
    empty = LatencySummary(p50=None, p95=None, max=None, count=0)
    return SourceStatus(
        stats=SourceStats(**{**zero, **stats}),
        total_frames=total_frames,
        frames_processed=frames_processed,
        inference_errors=inference_errors,
        dispatch_dropped=0,
        last_frame_id=None,
        processed_fps=processed_fps,
        latency_s={stage: empty for stage in LATENCY_STAGES} | (latency_s or {}),
    )
