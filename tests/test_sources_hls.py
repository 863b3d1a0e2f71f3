"""HLS is just an http(s) URL to a playlist: the live source plays it from a loopback web server."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest

from pipeline.sources import LiveStreamSource, SourceState, make_source
from tests.sources_helpers import StateRecorder

pytestmark = pytest.mark.timeout(60)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def hls_url(tmp_path: Path) -> Iterator[str]:
    """A 2 s H.264 HLS playlist of 64x48 frames, served on 127.0.0.1."""
    options = {"hls_time": "1", "hls_playlist_type": "vod"}
    with av.open(str(tmp_path / "index.m3u8"), "w", format="hls", options=options) as container:
        stream = container.add_stream("libx264", rate=15)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for index in range(30):
            image = np.full((48, 64, 3), 40 + index * 4, np.uint8)  # (H, W, 3) BGR
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    handler = functools.partial(_QuietHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/index.m3u8"
    server.shutdown()
    server.server_close()


def test_hls_playlist_over_http_is_played_as_a_live_source(hls_url: str) -> None:
    recorder = StateRecorder()
    source = make_source(hls_url, on_state_change=recorder)
    source.start()
    recorder.wait_state(SourceState.RUNNING)
    frame = source.read(timeout=10)
    source.stop()

    assert isinstance(source, LiveStreamSource)
    assert frame is not None and frame.image.shape == (48, 64, 3)
    assert (frame.fps, frame.comes_from_video_file) == (15.0, False)
