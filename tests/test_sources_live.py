"""Live sources against a real RTSP camera: reconnect, stall watchdog, backoff, freshest frame."""

from __future__ import annotations

import itertools
import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import av
import pytest

from pipeline.sources import SourceState, VideoSource, make_source
from pipeline.video_frame import VideoFrame
from tests.fixtures_rtsp import RtspServer
from tests.sources_helpers import StateRecorder, free_port
from tests.waiting import wait_until

pytestmark = [pytest.mark.rtsp, pytest.mark.timeout(90)]


@pytest.fixture
def started(fast_source_options: dict[str, Any]) -> Any:
    """Start sources with fast fault timeouts; stop them at teardown, whatever happened."""
    sources: list[VideoSource] = []

    def start(reference: str, **kwargs: Any) -> tuple[VideoSource, StateRecorder]:
        recorder = StateRecorder()
        source = make_source(
            reference, on_state_change=recorder, **{**fast_source_options, **kwargs}
        )
        sources.append(source)
        source.start()
        return source, recorder

    yield start
    for source in sources:
        source.stop()


def _next_frame_of_epoch(source: VideoSource, epoch: int, timeout: float = 10.0) -> VideoFrame:
    """The first frame of ``epoch``: a frame held from before the reconnect may come first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frame = source.read(timeout=1.0)
        if frame is not None and frame.epoch == epoch:
            return frame
    raise AssertionError(f"no frame of epoch {epoch} within {timeout} s: {source.stats()}")


def test_killed_camera_is_reconnected_after_restart_with_the_next_epoch_and_new_size(
    rtsp_server_factory: Callable[..., RtspServer], started: Any
) -> None:
    server = rtsp_server_factory(size=(320, 240))
    source, recorder = started(server.url)
    assert recorder.wait_state(SourceState.RUNNING).epoch == 0
    before = _next_frame_of_epoch(source, 0)

    server.kill()
    recorder.wait_state(SourceState.RECONNECTING)
    server.restart(size=(160, 128))
    assert recorder.wait_state(SourceState.RUNNING).epoch == 1
    after = _next_frame_of_epoch(source, 1)

    assert before.image.shape == (240, 320, 3)
    assert after.image.shape == (128, 160, 3)  # the new resolution just works
    assert after.frame_id > before.frame_id  # ids keep counting across epochs
    stats = source.stats()
    assert (stats.epoch, stats.reconnects, stats.resolution) == (1, 1, (160, 128))


def test_frozen_camera_is_detected_as_a_stall_and_reconnected_after_it_thaws(
    rtsp_server: RtspServer, started: Any
) -> None:
    source, recorder = started(rtsp_server.url)
    recorder.wait_state(SourceState.RUNNING)

    rtsp_server.freeze()  # TCP connection stays open, no data flows
    stalled = recorder.wait_state(SourceState.RECONNECTING)
    # While it is frozen, connection attempts hang until the open timeout and fail.
    wait_until(lambda: source.stats().connect_failures >= 1, what="a timed-out connect")
    rtsp_server.thaw()
    resumed = recorder.wait_state(SourceState.RUNNING)

    assert stalled.reason is not None and "stalled" in stalled.reason
    assert "open timeout" in (source.stats().last_error or "")
    assert resumed.epoch == 1
    assert _next_frame_of_epoch(source, 1).image.shape == (240, 320, 3)


def test_url_where_nothing_listens_is_retried_with_growing_delays_and_stops_at_once(
    started: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pipeline.sources.reconnecting")
    source, recorder = started(f"rtsp://127.0.0.1:{free_port()}/nobody", backoff_max_s=0.4)
    wait_until(lambda: source.stats().connect_failures >= 4, what="four failed connects")

    stopping = time.monotonic()
    source.stop()
    stop_s = time.monotonic() - stopping

    delays = [float(d) for d in re.findall(r"next attempt in ([\d.]+) s", caplog.text)]
    assert delays[:3] == sorted(delays[:3]) and max(delays) <= 0.4  # grows, capped
    assert "Connection refused" in (source.stats().last_error or "")
    assert recorder.states == [SourceState.CONNECTING, SourceState.ENDED]
    assert stop_s < 1.0


def test_a_source_with_a_reconnect_limit_gives_up_with_an_error(started: Any) -> None:
    source, recorder = started(f"rtsp://127.0.0.1:{free_port()}/x", max_reconnect_attempts=2)

    change = recorder.wait_state(SourceState.ERROR)

    assert change.reason == "gave up after 3 failed attempts"
    assert source.stats().connect_failures == 3 and source.exhausted


def test_stop_returns_at_once_while_connecting_to_a_hung_camera(
    rtsp_server: RtspServer, started: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    opening = threading.Event()
    real_open = av.open

    def open_and_tell(*args: Any, **kwargs: Any) -> Any:
        opening.set()
        return real_open(*args, **kwargs)

    monkeypatch.setattr(av, "open", open_and_tell)
    rtsp_server.freeze()
    source, _ = started(rtsp_server.url, open_timeout_s=10.0)
    assert opening.wait(10)

    stopping = time.monotonic()
    finished = source.stop()

    assert time.monotonic() - stopping < 1.0
    assert finished is False  # the decode thread is stuck in FFmpeg and was abandoned
    assert source.state is SourceState.ENDED and source.read(timeout=0) is None


def test_camera_down_at_start_is_retried_in_the_background_until_it_comes_up(
    rtsp_server_factory: Callable[..., RtspServer], started: Any
) -> None:
    server = rtsp_server_factory(port=free_port(), start=False)
    source, recorder = started(server.url)
    wait_until(lambda: source.stats().connect_failures >= 2, what="two failed connects")
    assert source.state is SourceState.CONNECTING

    server.start()

    assert recorder.wait_state(SourceState.RUNNING).epoch == 0  # first connect: epoch 0
    assert _next_frame_of_epoch(source, 0) is not None


def test_slow_consumer_gets_the_freshest_frames_and_the_buffer_stays_bounded(
    rtsp_server: RtspServer, started: Any
) -> None:
    source, recorder = started(rtsp_server.url)
    recorder.wait_state(SourceState.RUNNING)
    frame_ids = []
    for _ in range(5):
        frame = source.read(timeout=5)
        assert frame is not None
        frame_ids.append(frame.frame_id)
        assert source.stats().buffer_len <= 1
        time.sleep(0.3)  # a model slower than the 15 fps camera

    gaps = [later - earlier for earlier, later in itertools.pairwise(frame_ids)]
    assert all(gap >= 1 for gap in gaps) and max(gaps) > 1  # ids skip ahead
    stats = source.stats()
    assert stats.frames_dropped > 0
    assert stats.buffer_high_water == stats.buffer_capacity == 1
    assert stats.frames_decoded >= stats.frames_delivered + stats.frames_dropped


def test_mute_keeps_the_connection_and_pause_releases_it(
    rtsp_server: RtspServer, started: Any
) -> None:
    source, recorder = started(rtsp_server.url)
    recorder.wait_state(SourceState.RUNNING)

    source.mute()
    recorder.wait_state(SourceState.MUTED)
    wait_until(lambda: source.stats().frames_muted >= 3, what="muted frames")
    assert source.read(timeout=0.1) is None
    source.resume()
    recorder.wait_state(SourceState.RUNNING)
    assert _next_frame_of_epoch(source, 0) is not None  # same connection

    source.pause()
    recorder.wait_state(SourceState.PAUSED)
    assert source.read(timeout=0.1) is None
    source.resume()
    recorder.wait_state(SourceState.RECONNECTING)
    assert recorder.wait_state(SourceState.RUNNING).epoch == 1  # a new connection


def test_wrong_password_is_reported_without_showing_it(
    rtsp_server_factory: Callable[..., RtspServer],
    started: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = rtsp_server_factory(username="viewer", password="right-pw")
    wrong_url = server.url.replace("right-pw", "wrong-pw")
    caplog.set_level(logging.DEBUG, logger="pipeline")
    source, _ = started(wrong_url)
    wait_until(lambda: source.stats().connect_failures >= 1, what="a refused connect")
    good, recorder = started(server.url)
    recorder.wait_state(SourceState.RUNNING)

    last_error = source.stats().last_error or ""
    assert "authorization failed" in last_error and "viewer:***@" in last_error
    for text in (last_error, caplog.text, str(good.stats()), str(recorder.received)):
        assert "wrong-pw" not in text and "right-pw" not in text


def test_a_pause_resumed_before_the_decoder_looks_still_releases_the_camera(
    rtsp_server: RtspServer, started: Any
) -> None:
    source, recorder = started(rtsp_server.url)
    assert recorder.wait_state(SourceState.RUNNING).epoch == 0
    source.pause()
    source.resume()  # back-to-back: the decode loop may not have seen the PAUSED mode at all
    assert _next_frame_of_epoch(source, 1).epoch == 1  # a new connection, as for a long pause
    assert source.stats().connect_failures == 0  # released for a pause, not counted as a fault
