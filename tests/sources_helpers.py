"""Helpers shared by the source tests: a state-change recorder, clip writer, free port, polling."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np

from pipeline.sources import SourceState, SourceStateChange


class StateRecorder:
    """A state listener that tests can wait on, instead of sleeping and hoping.

    ``wait_for`` only looks at changes it has not returned yet, so a test walks through a
    sequence (RUNNING, then RECONNECTING, then RUNNING again) without matching an old event.
    """

    def __init__(self) -> None:
        self.changes: list[SourceStateChange] = []
        self._condition = threading.Condition()
        self._cursor = 0

    def __call__(self, change: SourceStateChange) -> None:
        with self._condition:
            self.changes.append(change)
            self._condition.notify_all()

    def wait_for(self, state: SourceState, timeout: float = 20.0) -> SourceStateChange:
        """The next change into ``state``; AssertionError with the history if none comes."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while True:
                for index in range(self._cursor, len(self.changes)):
                    if self.changes[index].new is state:
                        self._cursor = index + 1
                        return self.changes[index]
                self._cursor = len(self.changes)
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._condition.wait(remaining):
                    history = [(c.new.value, c.reason) for c in self.changes]
                    raise AssertionError(
                        f"no change to {state.value} within {timeout} s: {history}"
                    )

    @property
    def states(self) -> list[SourceState]:
        with self._condition:
            return [change.new for change in self.changes]


def wait_until(predicate: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    """Poll a condition that has no event of its own (e.g. a counter), failing after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(0.01)


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
