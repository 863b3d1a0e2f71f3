"""Roboflow's sinks, called as Roboflow's docs and tests call them, with only the imports changed.

``from inference.core.interfaces.stream.sinks import render_boxes, multi_sink, UDPSink,
VideoFileSink, InMemoryBufferSink`` becomes ``from sinks import ...``. Pipelines run the tiny
random SAM3 checkpoint at threshold 0 (so frames carry detections) on PyAV clips; windows open
under Xvfb in a subprocess, as in ``tests/test_sinks_screen.py``.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
import supervision as sv

from pipeline import InferencePipeline
from pipeline.errors import ConfigError
from sinks import (
    InMemoryBufferSink,
    SinkConfigError,
    UDPSink,
    VideoFileSink,
    active_learning_sink,
    multi_sink,
    render_boxes,
)
from tests.sinks_helpers import make_detections, make_frame, xvfb
from tests.sources_helpers import write_test_clip
from tests.waiting import RecordingSink
from tracker import Sam3VideoTracker

REPO_ROOT = Path(__file__).resolve().parent.parent
GUARD_S = 120.0
GREEN = np.array([0, 255, 0], np.uint8)  # BGR of Roboflow's statistics text


def run_pipeline(clip: Path | list[Path], on_prediction: Any, tracker: Sam3VideoTracker) -> None:
    reference = [str(c) for c in clip] if isinstance(clip, list) else str(clip)
    pipeline = InferencePipeline.init(
        video_reference=reference,
        class_names=["thing"],
        on_prediction=on_prediction,
        threshold=0.0,
        tracker=tracker,
    )
    try:
        pipeline.start()
        pipeline.join()
    finally:
        pipeline.terminate()


@pytest.fixture
def clip5(tmp_path: Path) -> Path:
    return write_test_clip(tmp_path / "clip5.mp4", frames=5, fps=10, size=(96, 64))


class Rendered:
    """An ``on_frame_rendered`` callback that keeps what it was given."""

    def __init__(self) -> None:
        self.calls: list[Any] = []

    def __call__(self, image: Any) -> None:
        self.calls.append(image)


# ---------------------------------------------------------------------------- R1, R2 render_boxes


def test_render_boxes_hands_on_frame_rendered_the_source_id_and_a_1280x720_letterbox() -> None:
    rendered = Rendered()
    frame = make_frame(3, width=96, height=64, source_id=37)

    render_boxes(
        make_detections(96, 64, boxes=[(10, 10, 50, 40)]), frame, on_frame_rendered=rendered
    )

    [(source_id, image)] = rendered.calls
    assert source_id == 37
    assert image.shape == (720, 1280, 3)
    # 96x64 scales to 1080x720: 100 black columns either side, the picture in between.
    assert not image[:, :100].any() and not image[:, -100:].any()
    assert image[:, 100:1180].min() > 0


def test_render_boxes_batches_give_positions_and_black_frames_for_missing_sources() -> None:
    rendered = Rendered()
    f0, f1 = make_frame(1, source_id=0), make_frame(1, source_id=1, video_identifier="b")

    render_boxes([make_detections(), None, None], [f0, f1, None], on_frame_rendered=rendered)

    [batch] = rendered.calls
    assert [position for position, _ in batch] == [0, 1, 2]
    assert all(image.shape == (720, 1280, 3) for _, image in batch)
    assert not batch[2][1].any(), "a source without a frame renders black"
    assert batch[0][1].any() and batch[1][1].any()


def test_render_boxes_applies_the_given_annotators_and_labels_with_class_names() -> None:
    class RecordingLabels(sv.LabelAnnotator):
        def __init__(self) -> None:
            super().__init__()
            self.labels: list[Any] = []

        def annotate(  # type: ignore[override]
            self, scene: Any, detections: Any, labels: Any = None, **kwargs: Any
        ) -> Any:
            self.labels.append(labels)
            return super().annotate(scene, detections, labels=labels, **kwargs)

    rendered, labels = Rendered(), RecordingLabels()
    boxes = sv.BoxAnnotator(color=sv.Color(r=255, g=0, b=128), thickness=2)

    render_boxes(
        make_detections(),
        make_frame(),
        annotator=[boxes, labels],
        display_size=None,
        on_frame_rendered=rendered,
    )

    [(_, image)] = rendered.calls
    assert image.shape == (120, 160, 3), "display_size=None keeps the native size"
    np.testing.assert_array_equal(image[50, 10], [128, 0, 255])  # left edge of the first box
    assert labels.labels == [["person", "forklift"]]


def test_render_boxes_with_fps_monitor_and_statistics_draws_roboflows_green_lines(
    clip5: Path, tiny_tracker: Sam3VideoTracker
) -> None:
    rendered = Rendered()
    sink = partial(
        render_boxes,
        fps_monitor=sv.FPSMonitor(),
        display_statistics=True,
        on_frame_rendered=rendered,
    )

    run_pipeline(clip5, sink, tiny_tracker)

    assert len(rendered.calls) == 5
    for source_id, image in rendered.calls:
        assert source_id == 0 and image.shape == (720, 1280, 3)
        # LATENCY at (10, h-10) and THROUGHPUT at (10, h-50): green text in the bottom-left.
        corner = image[720 - 75 :, :300]
        assert (corner == GREEN).all(axis=2).sum() > 100
    _, last = rendered.calls[-1]
    assert (last[720 - 75 : 720 - 35, :300] == GREEN).all(axis=2).any(), "THROUGHPUT line"


WINDOW_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from functools import partial
    import cv2
    import supervision as sv
    from pipeline import InferencePipeline
    from sinks import render_boxes
    from tracker import Sam3VideoTracker

    clip, model = sys.argv[1:]
    tracker = Sam3VideoTracker.from_pretrained(model, device="cpu", max_num_objects=3)
    pipeline = InferencePipeline.init(
        video_reference=clip,
        class_names=["thing"],
        on_prediction=partial(
            render_boxes, fps_monitor=sv.FPSMonitor(), display_statistics=True
        ),
        threshold=0.0,
        tracker=tracker,
        video_identifiers=["shelf"],
    )
    pipeline.start()
    pipeline.join()
    title = "sam3-stream: shelf"
    print(json.dumps({
        "visible": cv2.getWindowProperty(title, cv2.WND_PROP_VISIBLE),
        "rect": list(cv2.getWindowImageRect(title)),
    }), flush=True)
    """
)


@pytest.fixture
def display() -> Iterator[str]:
    try:
        with xvfb(1400, 800) as name:
            yield name
    except FileNotFoundError:
        pytest.skip("Xvfb is not installed (Debian package: xvfb)")


def test_render_boxes_default_window_is_a_1280x720_letterbox(
    display: str, clip5: Path, tiny_model_dir: Path
) -> None:
    env = {**os.environ, "DISPLAY": display}
    result = subprocess.run(
        [sys.executable, "-c", WINDOW_SCRIPT, str(clip5), str(tiny_model_dir)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=GUARD_S,
    )

    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout.splitlines()[-1])
    assert shown["visible"] == 1.0
    assert shown["rect"][2:] == [1280, 720]


# ---------------------------------------------------------------------------- R16 no display

HEADLESS_SCRIPT = textwrap.dedent(
    """
    import logging, sys
    from functools import partial
    from pipeline import InferencePipeline
    from sinks import render_boxes
    from tracker import Sam3VideoTracker

    logging.basicConfig(level=logging.DEBUG, format="LOG %(levelname)s %(name)s: %(message)s")
    clip, model, mode = sys.argv[1:]
    rendered = []
    sink = render_boxes if mode == "default" else partial(
        render_boxes, on_frame_rendered=rendered.append
    )
    tracker = Sam3VideoTracker.from_pretrained(model, device="cpu", max_num_objects=3)
    pipeline = InferencePipeline.init(
        video_reference=clip, class_names=["thing"], on_prediction=sink, threshold=0.0,
        tracker=tracker,
    )
    pipeline.start()
    pipeline.join()
    print("RENDERED", len(rendered), flush=True)
    """
)


def run_headless(clip: Path, model: Path, mode: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    return subprocess.run(
        [sys.executable, "-c", HEADLESS_SCRIPT, str(clip), str(model), mode],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=GUARD_S,
    )


def test_headless_render_boxes_logs_one_clear_line_and_exits_0(
    clip5: Path, tiny_model_dir: Path
) -> None:
    result = run_headless(clip5, tiny_model_dir, "default")

    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if "DISPLAY is not set" in line]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("LOG ERROR") or lines[0].startswith("LOG WARNING"), lines
    assert "Traceback" not in result.stderr


def test_headless_render_boxes_with_a_callback_needs_no_display(
    clip5: Path, tiny_model_dir: Path
) -> None:
    result = run_headless(clip5, tiny_model_dir, "callback")

    assert result.returncode == 0, result.stderr
    assert "RENDERED 5" in result.stdout
    assert "display" not in result.stderr.lower(), result.stderr


# ---------------------------------------------------------------------------- R3 multi_sink


def test_multi_sink_with_keywords_passes_the_same_lists_and_logs_each_error_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    received: list[tuple[Any, Any]] = []

    def broken(predictions: Any, video_frame: Any) -> None:
        raise RuntimeError("x-keyword-form")

    def recorder(predictions: Any, video_frame: Any) -> None:
        received.append((predictions, video_frame))

    predictions = [make_detections(), None]
    frames = [make_frame(1), None]
    with caplog.at_level(logging.ERROR, logger="sinks.multi"):
        multi_sink(predictions=predictions, video_frame=frames, sinks=[broken, recorder])
        multi_sink(predictions=predictions, video_frame=frames, sinks=[broken, recorder])

    assert len(received) == 2
    assert all(p is predictions and f is frames for p, f in received), "lists pass untouched"
    [record] = [r for r in caplog.records if "x-keyword-form" in r.getMessage()]
    assert record.levelno == logging.ERROR and "broken" in record.getMessage()
    assert record.exc_info is not None, "the first occurrence carries the traceback"


def test_multi_sink_partial_runs_in_a_pipeline(clip5: Path, tiny_tracker: Sam3VideoTracker) -> None:
    first, second = RecordingSink(), RecordingSink()

    run_pipeline(clip5, partial(multi_sink, sinks=[first, second]), tiny_tracker)

    assert (
        [f.frame_id for f in first.frames] == [f.frame_id for f in second.frames] == [1, 2, 3, 4, 5]
    )


# ---------------------------------------------------------------------------- R4 UDPSink


@pytest.fixture
def receiver() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listening:
        listening.bind(("127.0.0.1", 0))
        listening.settimeout(10)  # guard only: loopback datagrams arrive at once
        yield listening


def test_udp_sink_init_and_send_predictions_carry_inference_metadata(
    receiver: socket.socket, tmp_path: Path, tiny_tracker: Sam3VideoTracker
) -> None:
    clip = write_test_clip(tmp_path / "clip3.mp4", frames=3, fps=10, size=(96, 64))
    port = receiver.getsockname()[1]
    udp_sink = UDPSink.init(ip_address="127.0.0.1", port=port)
    frames = RecordingSink()

    run_pipeline(clip, partial(multi_sink, sinks=[udp_sink.send_predictions, frames]), tiny_tracker)
    datagrams = [json.loads(receiver.recv(65_535)) for _ in range(3)]

    metadata = [d["inference_metadata"] for d in datagrams]
    assert [m["frame_id"] for m in metadata] == [1, 2, 3]
    assert all(m["source_id"] == 0 for m in metadata)
    for m, frame in zip(metadata, frames.frames, strict=True):
        decoded = datetime.fromisoformat(m["frame_decoding_time"])
        assert decoded.tzinfo is None, "naive local time, as Roboflow's"
        assert m["frame_decoding_time"] == frame.frame_timestamp.isoformat()
        assert datetime.fromisoformat(m["emission_time"]) >= decoded
    assert [d["frame_id"] for d in datagrams] == [1, 2, 3], "our record's keys stay"
    assert all("objects" in d for d in datagrams)
    assert udp_sink._socket.getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST) == 1
    udp_sink.close()


def test_udp_sink_sends_through_the_socket_it_is_given(receiver: socket.socket) -> None:
    port = receiver.getsockname()[1]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as mine:
        mine.bind(("127.0.0.1", 0))
        sink = UDPSink(ip_address="127.0.0.1", port=port, udp_socket=mine)
        sink.send_predictions(make_detections(), make_frame(7))

        payload, sender = receiver.recvfrom(65_535)
        assert sender == mine.getsockname()

    assert json.loads(payload)["inference_metadata"]["frame_id"] == 7


def test_udp_sink_host_is_kept_as_an_alias_of_ip_address(receiver: socket.socket) -> None:
    port = receiver.getsockname()[1]
    with UDPSink(host="127.0.0.1", port=port) as sink:
        sink.on_prediction(None, make_frame(2))
        assert json.loads(receiver.recv(65_535))["frame_id"] == 2
    with pytest.raises(TypeError, match="ip_address"):
        UDPSink("127.0.0.1", port, host="127.0.0.1")


# ---------------------------------------------------------------------------- R5 VideoFileSink


def read_video(path: Path) -> tuple[str, str, float, list[np.ndarray]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(stream)]
        return (
            container.format.name,
            stream.codec_context.name,
            float(stream.average_rate or 0),
            frames,
        )


def test_video_file_sink_init_with_roboflows_arguments_writes_mjpeg_avi(
    clip5: Path, tmp_path: Path, tiny_tracker: Sam3VideoTracker
) -> None:
    path = tmp_path / "output.avi"
    video_sink = VideoFileSink.init(
        video_file_name=str(path),
        annotator=sv.BoxAnnotator(),
        display_size=(320, 240),
        fps_monitor=sv.FPSMonitor(),
        display_statistics=True,
        output_fps=10,
        quiet=True,
        video_frame_size=(320, 240),
    )

    run_pipeline(clip5, video_sink.on_prediction, tiny_tracker)
    video_sink.release()

    container_format, codec, fps, frames = read_video(path)
    assert (container_format, codec, fps) == ("avi", "mjpeg", 10.0)
    assert [frame.shape for frame in frames] == [(240, 320, 3)] * 5


def test_video_file_sink_init_defaults_are_roboflows_720p_25fps_and_progress_lines(
    clip5: Path,
    tmp_path: Path,
    tiny_tracker: Sam3VideoTracker,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "o.mp4"
    with VideoFileSink.init(str(path)) as video_sink:
        run_pipeline(clip5, video_sink.on_prediction, tiny_tracker)

    _, _, fps, frames = read_video(path)
    assert fps == 25.0
    assert [frame.shape for frame in frames] == [(720, 1280, 3)] * 5
    out = capsys.readouterr().out
    assert "Writing frame 0\r" in out and "Writing frame 4\r" in out


# ---------------------------------------------------------------------------- R6 InMemoryBufferSink


def test_in_memory_buffer_sink_keeps_the_last_calls_like_roboflows() -> None:
    sink = InMemoryBufferSink.init(queue_size=2)
    frames = [make_frame(i) for i in (1, 2, 3)]
    for frame in frames:
        sink.on_prediction({"predictions": make_detections()}, frame)

    assert not sink.empty()
    predictions, consumed = sink.consume_prediction()
    assert consumed == [frames[1]] and len(predictions) == 1
    assert sink.consume_prediction()[1] == [frames[2]]
    assert sink.empty()
    with pytest.raises(IndexError):
        sink.consume_prediction()

    batch = [make_frame(4), None]
    sink.on_prediction([make_detections(), None], batch)
    assert sink.consume_prediction()[1] == batch, "batches keep their None entries"


def test_in_memory_buffer_sink_in_a_pipeline_keeps_the_last_two_frames(
    tmp_path: Path, tiny_tracker: Sam3VideoTracker
) -> None:
    clip = write_test_clip(tmp_path / "clip4.mp4", frames=4, fps=10, size=(96, 64))
    buffer = InMemoryBufferSink.init(2)

    run_pipeline(clip, buffer.on_prediction, tiny_tracker)

    entries = [buffer.consume_prediction() for _ in range(len(buffer))]
    assert [[frame.frame_id for frame in frames] for _, frames in entries] == [[3], [4]]
    assert all(isinstance(predictions[0], sv.Detections) for predictions, _ in entries)


def test_two_sources_give_roboflow_sinks_lists_they_can_zip(
    tmp_path: Path, tiny_tracker: Sam3VideoTracker
) -> None:
    clips = [
        write_test_clip(tmp_path / "a.mp4", frames=3, fps=10, size=(96, 64)),
        write_test_clip(tmp_path / "b.mp4", frames=5, fps=10, size=(64, 48)),
    ]
    buffer, rendered = InMemoryBufferSink.init(queue_size=100), Rendered()
    sink = partial(
        multi_sink,
        sinks=[buffer.on_prediction, partial(render_boxes, on_frame_rendered=rendered)],
    )

    run_pipeline(clips, sink, tiny_tracker)

    seen: dict[int, list[int]] = {0: [], 1: []}
    while not buffer.empty():
        predictions, frames = buffer.consume_prediction()
        assert len(predictions) == len(frames) == 2
        for position, (frame_predictions, frame) in enumerate(
            zip(predictions, frames, strict=True)
        ):
            if frame is None:
                continue
            assert frame.source_id == position
            assert isinstance(frame_predictions, sv.Detections)
            seen[position].append(frame.frame_id)
    assert seen == {0: [1, 2, 3], 1: [1, 2, 3, 4, 5]}
    assert all([position for position, _ in batch] == [0, 1] for batch in rendered.calls)
    assert all(image.shape == (720, 1280, 3) for batch in rendered.calls for _, image in batch)


# ---------------------------------------------------------------------------- active_learning_sink


def test_active_learning_sink_refuses_naming_what_to_use_instead() -> None:
    sink = partial(active_learning_sink, active_learning_middleware=None, model_type="x")

    with pytest.raises(SinkConfigError, match="JsonlSink") as refused:
        sink(make_detections(), make_frame())

    assert "active_learning_sink" in str(refused.value) and "\n" not in str(refused.value)


@pytest.mark.parametrize("as_list", [False, True])
def test_a_pipeline_given_active_learning_sink_is_refused_at_init(
    tmp_path: Path, as_list: bool
) -> None:
    sink = partial(active_learning_sink, active_learning_middleware=None, model_type="x")
    clip = write_test_clip(tmp_path / "clip.mp4", frames=2)

    with pytest.raises(ConfigError, match="active_learning_sink is not supported") as refused:
        InferencePipeline.init(clip, "x", [print, sink] if as_list else sink)

    assert refused.value.field == "on_prediction"
