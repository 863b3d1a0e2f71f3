"""File sources: every frame, in order, at the consumer's pace, with PTS timestamps."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest

from pipeline.sources import FileSource, SourceState, make_source
from pipeline.video_frame import VideoFrame
from tests.sources_helpers import StateRecorder, level_of, write_test_clip
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_test_clip(tmp_path_factory.mktemp("clips") / "clip.mp4", frames=40, fps=20)


def _read_all(source: FileSource, timeout: float = 20.0) -> list[VideoFrame]:
    frames = []
    deadline = time.monotonic() + timeout
    while not source.exhausted:
        assert time.monotonic() < deadline, "file did not finish"
        frame = source.read(timeout=0.5)
        if frame is not None:
            frames.append(frame)
    return frames


def test_every_frame_of_a_file_arrives_in_order_with_its_metadata(clip: Path) -> None:
    recorder = StateRecorder()
    source = make_source(clip, source_id=3, video_identifier="clip", on_state_change=recorder)
    source.start()
    frames = _read_all(source)
    source.stop()

    assert [f.frame_id for f in frames] == list(range(1, 41))
    assert [int(f.image[0, 0, 0]) for f in frames] == pytest.approx(
        [level_of(i) for i in range(40)],
        abs=6,  # YUV range rounding: about -4
    )
    first = frames[0]
    assert first.image.shape == (48, 64, 3) and first.image.dtype.name == "uint8"
    assert {(f.source_id, f.video_identifier, f.epoch, f.fps) for f in frames} == {
        (3, "clip", 0, 20.0)
    }
    assert all(f.comes_from_video_file for f in frames)
    offsets = [f.frame_timestamp - first.frame_timestamp for f in frames]
    assert offsets == [timedelta(seconds=i / 20) for i in range(40)]
    assert first.frame_timestamp.tzinfo is None  # naive local time, Roboflow's convention
    assert recorder.states == [SourceState.CONNECTING, SourceState.RUNNING, SourceState.ENDED]
    stats = source.stats()
    assert (stats.frames_decoded, stats.frames_delivered, stats.frames_dropped) == (40, 40, 0)
    assert stats.resolution == (64, 48) and stats.is_live is False


def test_file_decoder_waits_for_a_slow_consumer_instead_of_dropping(clip: Path) -> None:
    source = make_source(clip, file_buffer_frames=2)
    source.start()
    wait_until(lambda: source.stats().buffer_len == 2, what="the buffer to fill")

    # The decoder is now blocked: at most the frame in its hands beyond the two buffered.
    assert source.stats().frames_decoded <= 3
    frames = _read_all(source)

    assert [f.frame_id for f in frames] == list(range(1, 41))
    stats = source.stats()
    assert stats.frames_dropped == 0 and stats.buffer_high_water <= 2
    source.stop()


def test_paused_file_delivers_nothing_and_resumes_where_it_stopped(clip: Path) -> None:
    recorder = StateRecorder()
    source = make_source(clip, on_state_change=recorder)
    source.start()
    first = source.read(timeout=5)
    source.pause()
    recorder.wait_state(SourceState.PAUSED)

    assert source.read(timeout=0.2) is None
    source.resume()
    rest = _read_all(source)

    assert first is not None
    assert [first.frame_id] + [f.frame_id for f in rest] == list(range(1, 41))
    source.stop()


def test_muted_file_is_decoded_but_nothing_is_delivered(clip: Path) -> None:
    recorder = StateRecorder()
    source = make_source(clip, on_state_change=recorder)
    source.mute()
    source.start()
    recorder.wait_state(SourceState.ENDED)

    assert source.read(timeout=0) is None
    stats = source.stats()
    assert (stats.frames_decoded, stats.frames_muted, stats.frames_delivered) == (40, 40, 0)
    source.stop()


def test_realtime_file_is_paced_like_a_camera_and_a_slow_consumer_skips_frames(
    clip: Path,
) -> None:
    recorder = StateRecorder()
    source = make_source(clip, realtime=True, on_state_change=recorder)
    started = time.monotonic()
    source.start()
    first = source.read(timeout=5)
    recorder.wait_state(SourceState.ENDED)
    elapsed = time.monotonic() - started
    last = source.read(timeout=1)

    assert source.is_live
    assert elapsed > 1.0  # 40 frames at 20 fps last 2 s; unpaced decoding takes ~0.1 s
    assert first is not None and last is not None
    assert last.frame_id == 40  # the freshest frame; everything in between was dropped
    stats = source.stats()
    assert (stats.frames_delivered, stats.frames_dropped) == (2, 38)
    assert stats.buffer_high_water == 1
    source.stop()


def test_stop_returns_promptly_while_the_decoder_is_blocked_on_a_full_buffer(clip: Path) -> None:
    source = make_source(clip, file_buffer_frames=1)
    source.start()
    wait_until(lambda: source.stats().buffer_len == 1, what="the buffer to fill")

    started = time.monotonic()
    finished = source.stop()

    assert finished and time.monotonic() - started < 1.0
    assert source.state is SourceState.ENDED and source.exhausted
    assert source.read(timeout=0) is None
