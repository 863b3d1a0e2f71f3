"""Frame-size caps (issue 12, item 13): no source may fill memory with huge frames.

Before: ``testpattern?size=7680x7680`` was accepted over the API and took 2 GB without a frame.
Now the test pattern is capped at 3840x2160 pixels when its reference is parsed, and a decoded
frame over 7680x4320 pixels (by area) from any source ends that source in ERROR naming the cap
(``pipeline.sources.frame_size``). The file case decodes a real 8192x4096 MJPEG; the live case
runs the real webcam source and reconnect loop on a stand-in camera (this machine has none).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest
from fastapi.testclient import TestClient

from pipeline.errors import SourceError
from pipeline.sources import SourceOptions, SourceState, WebcamSource, make_source
from pipeline.sources.frame_size import MAX_FRAME_PIXELS, oversized_frame
from pipeline.sources.testpattern import TestPatternSpec
from tests.service_helpers import scripted_app
from tests.sources_helpers import StateRecorder

pytestmark = pytest.mark.timeout(60)

OVERSIZED = (4096, 8192)  # (H, W): 33.6 Mpx, just over 7680x4320 = 33.2 Mpx
assert OVERSIZED[0] * OVERSIZED[1] > MAX_FRAME_PIXELS


def test_the_frame_cap_is_by_area_so_any_shape_of_8k_pixels_passes() -> None:
    assert oversized_frame(7680, 4320) is None
    assert oversized_frame(4320, 7680) is None
    message = oversized_frame(7680, 7680)
    assert message is not None and "7680x7680" in message and "7680x4320" in message


def test_a_test_pattern_over_4k_pixels_is_refused_when_parsed() -> None:
    assert TestPatternSpec.parse("testpattern?size=3840x2160").width == 3840
    assert TestPatternSpec.parse("testpattern?size=7680x16").height == 16
    with pytest.raises(SourceError, match="3840x2160"):
        TestPatternSpec.parse("testpattern?size=7680x7680")
    with pytest.raises(SourceError, match="3840x2160"):
        TestPatternSpec.parse("testpattern?size=3841x2160")


@pytest.fixture
def client() -> Iterator[TestClient]:
    app = scripted_app()
    with TestClient(app) as test_client:
        app.state.service.booted.wait(10)
        yield test_client


def test_the_api_answers_422_naming_source_for_a_huge_test_pattern(client: TestClient) -> None:
    response = client.post(
        "/streams", json={"source": "testpattern?size=7680x7680", "classes": ["square"]}
    )
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "source"] and "3840x2160" in error["msg"]
    assert client.get("/streams").json()["streams"] == []


def _write_mjpeg(path: Path, height: int, width: int) -> Path:
    """One flat frame, MJPEG in AVI: a few hundred kB on disk however many pixels it has."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mjpeg", rate=5)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuvj420p"
        image = np.full((height, width, 3), 90, np.uint8)  # (H, W, 3) BGR
        for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_a_file_with_frames_over_the_cap_ends_in_error_naming_it(tmp_path: Path) -> None:
    recorder = StateRecorder()
    source = make_source(
        str(_write_mjpeg(tmp_path / "huge.avi", *OVERSIZED)), on_state_change=recorder
    )
    source.start()
    recorder.wait_state(SourceState.ERROR)
    frame = source.read(timeout=0.1)
    source.stop()

    assert frame is None, "the oversized frame was not handed on"
    stats = source.stats()
    assert stats.end_reason is not None and "8192x4096" in stats.end_reason
    assert "7680x4320" in stats.end_reason and stats.last_error == stats.end_reason


class _Camera:
    """Stands in for ``cv2.VideoCapture``: two small frames, then frames over the cap."""

    def __init__(self) -> None:
        self.reads = 0
        self.released = threading.Event()

    def isOpened(self) -> bool:
        return True

    def read(self) -> tuple[bool, np.ndarray]:
        self.reads += 1
        shape = (48, 64, 3) if self.reads <= 2 else (*OVERSIZED, 3)
        return True, np.zeros(shape, np.uint8)

    def get(self, prop_id: int) -> float:
        return 25.0

    def set(self, prop_id: int, value: float) -> bool:
        return True

    def release(self) -> None:
        self.released.set()


def test_a_live_source_with_frames_over_the_cap_ends_instead_of_reconnecting(
    tmp_path: Path,
) -> None:
    node = tmp_path / "video0"
    node.touch()
    opened: list[_Camera] = []

    def open_camera(device: object) -> _Camera:
        opened.append(_Camera())
        return opened[-1]

    recorder = StateRecorder()
    source = WebcamSource(
        str(node),
        capture_factory=open_camera,
        options=SourceOptions(backoff_initial_s=0.01),
        on_state_change=recorder,
    )
    source.start()
    recorder.wait_state(SourceState.ERROR)
    assert source.join(10), "the decode thread ended by itself"
    last_small = source.read(timeout=0.1)  # a live buffer keeps the newest frame
    source.stop()

    assert len(opened) == 1 and opened[0].released.is_set(), "no reconnect after the error"
    assert opened[0].reads == 3, "nothing was read after the oversized frame"
    assert source.stats().reconnects == 0 and source.state is SourceState.ERROR
    assert "7680x4320" in (source.stats().end_reason or "")
    assert last_small is not None and last_small.image.shape == (48, 64, 3)
