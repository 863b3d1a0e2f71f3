"""The test pattern and the webcam source (with a stand-in camera: this machine has none)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from pipeline.sources import (
    SourceOptions,
    SourceState,
    TestPatternSource,
    WebcamSource,
    draw_test_pattern,
)
from tests.sources_helpers import StateRecorder
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(60)


def test_test_pattern_follows_its_reference_parameters_and_ends_after_its_frames() -> None:
    recorder = StateRecorder()
    source = TestPatternSource("testpattern?fps=50&size=96x64&frames=5", on_state_change=recorder)
    source.start()
    first = source.read(timeout=5)
    recorder.wait_state(SourceState.ENDED)
    source.stop()

    assert first is not None
    assert first.image.shape == (64, 96, 3) and first.image.dtype == np.uint8
    assert (first.fps, first.comes_from_video_file, first.epoch) == (50.0, False, 0)
    assert source.stats().frames_decoded == 5


def test_test_pattern_moves() -> None:
    frames = [draw_test_pattern(index, 160, 120) for index in (0, 15)]

    assert not np.array_equal(frames[0], frames[1])
    assert np.array_equal(draw_test_pattern(15, 160, 120), frames[1])  # deterministic


class FakeCamera:
    """Stands in for ``cv2.VideoCapture``: serves ``frames`` images, then fails like an unplug."""

    def __init__(self, frames: int, shape: tuple[int, ...] = (48, 64, 3)) -> None:
        self.remaining = frames
        self.shape = shape
        self.released = threading.Event()

    def isOpened(self) -> bool:
        return True

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.remaining <= 0:
            return False, None
        self.remaining -= 1
        return True, np.full(self.shape, 7, np.uint8)

    def get(self, prop_id: int) -> float:
        return 25.0

    def set(self, prop_id: int, value: float) -> bool:
        return True

    def release(self) -> None:
        self.released.set()


@pytest.fixture
def video_node(tmp_path: Path) -> str:
    node = tmp_path / "video0"
    node.touch()
    return str(node)


def test_unplugged_webcam_is_reopened_with_the_next_epoch(video_node: str) -> None:
    cameras = [FakeCamera(frames=3), FakeCamera(frames=10**6, shape=(48, 64))]
    recorder = StateRecorder()
    source = WebcamSource(
        video_node,
        capture_factory=lambda device: cameras.pop(0) if cameras else FakeCamera(0),
        options=SourceOptions(stall_timeout_s=0.2, backoff_initial_s=0.05),
        on_state_change=recorder,
    )
    source.start()
    recorder.wait_state(SourceState.RUNNING)
    recorder.wait_state(SourceState.RECONNECTING)
    recorder.wait_state(SourceState.RUNNING)
    frame = source.read(timeout=5)
    source.stop()

    assert frame is not None and frame.epoch == 1
    assert frame.image.shape == (48, 64, 3)  # a mono camera's frames come out as BGR
    assert frame.fps == 25.0 and frame.comes_from_video_file is False


def test_webcam_that_cannot_be_opened_keeps_retrying_until_stopped(video_node: str) -> None:
    class Closed(FakeCamera):
        def isOpened(self) -> bool:
            return False

    source = WebcamSource(video_node, capture_factory=lambda device: Closed(0))
    source.start()
    wait_until(lambda: source.stats().connect_failures >= 2, what="two failed opens")

    assert source.state is SourceState.CONNECTING
    assert source.stop() is True
