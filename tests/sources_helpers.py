"""Helpers shared by the source tests: a state-change recorder, clip writer, free port."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import av
import numpy as np

from pipeline.sources import SourceState, SourceStateChange
from tests.waiting import GUARD_S, CallRecorder


class StateRecorder(CallRecorder[SourceStateChange]):
    """A state listener that tests walk through, one expected state after another.

    ``wait_state`` only looks at changes it has not returned yet, so a test walks through a
    sequence (RUNNING, then RECONNECTING, then RUNNING again) without matching an old event.
    """

    def __init__(self) -> None:
        super().__init__()
        self._cursor = 0

    def __call__(self, change: SourceStateChange) -> None:
        self.record(change)

    def wait_state(self, state: SourceState, timeout: float = GUARD_S) -> SourceStateChange:
        """The next change into ``state``; AssertionError with the history if none comes."""
        index = self._wait_for_index(
            lambda c: c.new is state, self._cursor, timeout, f"change to {state.value}"
        )
        self._cursor = index + 1
        return self.received[index]

    @property
    def states(self) -> list[SourceState]:
        with self._condition:
            return [change.new for change in self.received]

    def describe(self, item: SourceStateChange) -> Any:
        return (item.new.value, item.reason)


def free_port() -> int:
    """A loopback TCP port nobody listens on (closed again at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def level_of(index: int) -> int:
    """Gray level that encodes a frame's index, mid-range and 8 apart to survive YUV rounding."""
    return 24 + (index * 8) % 208


def write_test_clip(
    path: Path, frames: int = 30, fps: int = 20, size: tuple[int, int] = (64, 48)
) -> Path:
    """Write an H.264 MP4 whose frame i is a flat gray of ``level_of(i)``, so order is checkable."""
    width, height = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"crf": "0"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(frames):
            image = np.full((height, width, 3), level_of(index), np.uint8)  # (H, W, 3) BGR
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
