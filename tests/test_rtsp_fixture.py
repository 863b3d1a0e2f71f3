"""The RTSP test camera itself: it streams, needs its credentials, and restarts on its port."""

from __future__ import annotations

import sys
from collections.abc import Callable

import av
import pytest

from tests import fixtures_rtsp
from tests.fixtures_rtsp import RtspServer

pytestmark = pytest.mark.rtsp

# A short probe: the SDP names the stream, so FFmpeg need not analyse 2 s of video first.
_OPTIONS = {"rtsp_transport": "tcp", "analyzeduration": "200000", "probesize": "100000"}


def _first_frames(url: str, count: int) -> list[av.VideoFrame]:
    with av.open(url, options=_OPTIONS, timeout=(10, 10)) as container:
        frames = []
        for frame in container.decode(video=0):
            frames.append(frame)
            if len(frames) == count:
                return frames
    raise AssertionError(f"stream ended after {len(frames)} frames")


def test_pyav_decodes_frames_from_the_test_camera(rtsp_server: RtspServer) -> None:
    frames = _first_frames(rtsp_server.url, 5)

    assert [(f.width, f.height) for f in frames] == [(320, 240)] * 5
    assert frames[0].to_ndarray(format="bgr24").shape == (240, 320, 3)


def test_camera_with_credentials_refuses_a_client_without_them(
    rtsp_server_factory: Callable[..., RtspServer],
) -> None:
    server = rtsp_server_factory(username="viewer", password="s3cret:@/")
    anonymous = server.url.replace("viewer:s3cret%3A%40%2F@", "")

    with pytest.raises(av.error.HTTPUnauthorizedError):
        _first_frames(anonymous, 1)
    assert len(_first_frames(server.url, 1)) == 1


def test_restart_serves_the_same_port_at_a_new_resolution(
    rtsp_server_factory: Callable[..., RtspServer],
) -> None:
    server = rtsp_server_factory(size=(320, 240))
    port = server.port

    server.restart(size=(160, 128))

    assert server.port == port
    frame = _first_frames(server.url, 1)[0]
    assert (frame.width, frame.height) == (160, 128)


def test_kill_freeze_and_stop_act_on_the_server_process(rtsp_server: RtspServer) -> None:
    rtsp_server.freeze()
    rtsp_server.thaw()
    assert rtsp_server.running
    rtsp_server.kill()
    assert not rtsp_server.running
    rtsp_server.stop()  # idempotent on a dead server


def test_server_exits_by_itself_when_the_test_process_goes_away(rtsp_server: RtspServer) -> None:
    process = rtsp_server._process
    assert process is not None and process.stdin is not None

    process.stdin.close()  # what the kernel does when pytest dies

    assert process.wait(timeout=10) == 0


@pytest.mark.parametrize(
    ("python", "reason"),
    [("/nonexistent/python3", "not found"), (sys.executable, "install the Debian packages")],
)
def test_skip_reason_says_what_is_missing(
    monkeypatch: pytest.MonkeyPatch, python: str, reason: str
) -> None:
    monkeypatch.setattr(fixtures_rtsp, "SYSTEM_PYTHON", python)

    assert reason in (fixtures_rtsp.gst_rtsp_unavailable_reason.__wrapped__() or "")
