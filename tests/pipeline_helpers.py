"""Helpers for the pipeline tests: stand-in models, a recording sink, a status event recorder.

The stand-ins have the one method the pipeline calls on a registry, ``process(...)``. They are
NOT SAM3: they exist to make timing and failures controllable (a model that is slow on purpose,
one that fails on chosen frames). Tests that need real tracker ids use the tiny SAM3 checkpoint.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import supervision as sv

from pipeline import InferencePipeline, StatusUpdate
from tracker import InferenceError


class StandInModel:
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


class RecordingSink:
    """``on_prediction`` that keeps every (predictions, frame) and lets a test wait for a count."""

    def __init__(self) -> None:
        self.results: list[tuple[Any, Any]] = []
        self._condition = threading.Condition()

    def __call__(self, predictions: Any, frame: Any) -> None:
        with self._condition:
            self.results.append((predictions, frame))
            self._condition.notify_all()

    @property
    def frames(self) -> list[Any]:
        with self._condition:
            return [frame for _, frame in self.results]

    def wait_for(self, predicate: Callable[[list[tuple[Any, Any]]], bool], timeout: float = 60.0):
        with self._condition:
            if not self._condition.wait_for(lambda: predicate(self.results), timeout):
                raise AssertionError(
                    f"sink condition not met within {timeout} s; {len(self.results)} results"
                )

    def wait_count(self, count: int, timeout: float = 60.0) -> None:
        self.wait_for(lambda results: len(results) >= count, timeout)


class EventRecorder:
    """A status update handler that tests can wait on."""

    def __init__(self) -> None:
        self.events: list[StatusUpdate] = []
        self._condition = threading.Condition()

    def __call__(self, update: StatusUpdate) -> None:
        with self._condition:
            self.events.append(update)
            self._condition.notify_all()

    def of_type(self, event_type: str) -> list[StatusUpdate]:
        with self._condition:
            return [event for event in self.events if event.event_type == event_type]

    def wait_for(
        self, predicate: Callable[[StatusUpdate], bool], timeout: float = 30.0, after: int = 0
    ) -> StatusUpdate:
        """The first event among ``events[after:]`` that matches ``predicate``."""
        with self._condition:
            found: list[StatusUpdate] = []

            def check() -> bool:
                found[:] = [event for event in self.events[after:] if predicate(event)]
                return bool(found)

            if not self._condition.wait_for(check, timeout):
                seen = [(e.event_type, e.payload.get("new")) for e in self.events]
                raise AssertionError(f"no matching status event within {timeout} s: {seen}")
            return found[0]

    def wait_state(
        self, source_id: int, state: str, after: int = 0, timeout: float = 30.0
    ) -> StatusUpdate:
        """The first change of source ``source_id`` into ``state`` among ``events[after:]``."""
        return self.wait_for(
            lambda e: (
                e.event_type == "SOURCE_STATE_CHANGED"
                and e.payload["source_id"] == source_id
                and e.payload["new"] == state
            ),
            timeout,
            after,
        )

    def __len__(self) -> int:
        with self._condition:
            return len(self.events)


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


def wait_until(predicate: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    """Poll a condition that has no event of its own (a counter in status()), up to ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(0.02)
