"""VideoFileSink: annotated MP4s that decode to every frame, one file per source."""

from __future__ import annotations

import logging
from pathlib import Path

import av
import numpy as np
import pytest

import sinks
from sinks import mp4
from tests.sinks_helpers import make_detections, make_frame


def decode(path: Path) -> tuple[list[np.ndarray], float]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="bgr24") for frame in container.decode(stream)]
        return frames, float(stream.average_rate)


def test_sixty_frames_decode_to_sixty_annotated_frames(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    detections = make_detections()
    sink = sinks.VideoFileSink(str(path))
    for frame_id in range(60):
        sink.on_prediction({"predictions": detections}, make_frame(frame_id))
    sink.release()

    frames, fps = decode(path)

    assert len(frames) == 60
    assert all(frame.shape == (120, 160, 3) for frame in frames)
    assert fps == 25.0, "fps comes from the source when not given"
    raw = make_frame().image.astype(int)
    expected = sinks.annotate(make_frame().image, detections).astype(int)
    inside = (slice(60, 76), slice(25, 46))  # within the first mask, clear of box and label
    outside = (slice(104, 118), slice(66, 86))  # between and below both boxes
    for frame in (frames[0], frames[-1]):
        got = frame.astype(int)
        assert np.abs(got[inside] - expected[inside]).mean() < 8, "mask colour where detected"
        assert np.abs(got[inside] - raw[inside]).mean() > 25
        assert np.abs(got[outside] - raw[outside]).mean() < 8, "untouched where nothing is"
    assert sink.stats.frames_written == 60


def test_output_fps_overrides_the_source(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    with sinks.VideoFileSink(path, output_fps=10) as sink:
        sink.on_prediction(make_detections(), make_frame())

    assert decode(path)[1] == 10.0


def test_each_source_gets_its_own_suffixed_file(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    sink = sinks.VideoFileSink(path)
    for frame_id in range(3):
        sink.on_prediction(
            [make_detections(), make_detections()],
            [
                make_frame(frame_id, video_identifier="rtsp://cam-b/live", source_id=1),
                make_frame(frame_id, video_identifier="cam-a", source_id=0, width=96, height=64),
            ],
        )
    sink.release()

    assert sink.files == {
        "cam-a": path,
        "rtsp://cam-b/live": tmp_path / "out.rtsp_cam-b_live.mp4",
    }
    frames_a, _ = decode(path)
    frames_b, _ = decode(tmp_path / "out.rtsp_cam-b_live.mp4")
    assert (len(frames_a), frames_a[0].shape) == (3, (64, 96, 3))
    assert (len(frames_b), frames_b[0].shape) == (3, (120, 160, 3))


def test_odd_sizes_are_padded_to_even_for_yuv420p(tmp_path: Path) -> None:
    path = tmp_path / "odd.mp4"
    with sinks.VideoFileSink(path) as sink:
        sink.on_prediction(make_detections(), make_frame(width=99, height=75))

    frames, _ = decode(path)
    assert frames[0].shape == (76, 100, 3)


def test_a_camera_that_comes_back_at_another_size_keeps_the_file_size(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    with sinks.VideoFileSink(path) as sink:
        sink.on_prediction(make_detections(), make_frame(0))
        sink.on_prediction(None, make_frame(1, width=320, height=240, epoch=1))

    frames, _ = decode(path)
    assert [frame.shape for frame in frames] == [(120, 160, 3)] * 2


def test_missing_h264_encoder_falls_back_to_mpeg4_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(mp4.ENCODERS_BY_CODEC, "h264", ("no-such-encoder",))
    path = tmp_path / "out.mp4"
    with (
        caplog.at_level(logging.WARNING, logger="sinks.mp4"),
        sinks.VideoFileSink(path) as sink,
    ):
        for frame_id in range(5):
            sink.on_prediction(make_detections(), make_frame(frame_id))

    assert "falling back" in caplog.text or "instead" in caplog.text
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.name == "mpeg4"
    assert len(decode(path)[0]) == 5


def test_h264_is_used_when_pyav_has_libx264(tmp_path: Path) -> None:
    if mp4.pick_encoder("h264") != "libx264":
        pytest.skip("this PyAV build has no libx264")
    path = tmp_path / "out.mp4"
    with sinks.VideoFileSink(path) as sink:
        sink.on_prediction(make_detections(), make_frame())

    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
