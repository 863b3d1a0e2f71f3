"""InferencePipeline on live sources: freshest frame, fairness, and camera faults end to end.

Camera faults are real: GStreamer's RTSP server is killed (SIGKILL), frozen (SIGSTOP) or never
started. Id continuity across a reconnect needs a model that detects something on every frame:
the tiny SAM3 checkpoint at threshold 0 with ``max_num_objects=3`` does. The other tests use a
stand-in model (``StandInModel``), which makes "slower than the camera" a setting.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from tests.fixtures_rtsp import RtspServer
from tests.pipeline_helpers import EventRecorder, PipelineFactory, StandInModel
from tests.sources_helpers import free_port
from tests.waiting import RecordingSink, wait_until

pytestmark = pytest.mark.timeout(180)


def test_a_slow_model_gets_the_freshest_frame_and_the_buffer_never_exceeds_its_bound(
    pipelines: PipelineFactory,
) -> None:
    events, sink = EventRecorder(), RecordingSink()
    slow = StandInModel(delay_s=0.1)  # a stand-in 3x slower than the 30 fps camera
    pipeline = pipelines(
        "testpattern?fps=30&size=64x48", "shape", sink, registry=slow,
        status_update_handlers=[events],
    )  # fmt: skip
    pipeline.start(use_main_thread=False)
    sink.wait_count(10)
    events.wait_for_item(lambda e: e.event_type == "FRAMES_DROPPED")
    source = pipeline.status().sources[0].stats
    pipeline.terminate()

    ids = [frame.frame_id for frame in sink.frames]
    assert ids == sorted(set(ids)), "results arrive in order, each frame once"
    assert max(np.diff(ids)) > 1, "the model skipped stale frames instead of queueing them"
    assert source.buffer_capacity == 1
    assert source.buffer_high_water <= source.buffer_capacity
    assert source.frames_dropped > 0 and not sink.frames[0].comes_from_video_file


def test_two_live_sources_share_one_model_in_turn(pipelines: PipelineFactory) -> None:
    sink = RecordingSink()
    pipeline = pipelines(
        ["testpattern?fps=30&size=64x48", "testpattern?fps=30&size=32x24"], "shape", sink,
        registry=StandInModel(delay_s=0.05), sink_mode="sequential",  # one call per frame
    )  # fmt: skip
    pipeline.start(use_main_thread=False)
    sink.wait_count(16)
    pipeline.terminate()
    counts = [sum(1 for f in sink.frames[:16] if f.source_id == i) for i in (0, 1)]
    assert min(counts) >= 6, f"round robin gives each camera its share: {counts}"


def test_max_fps_caps_a_live_source_by_dropping_frames(pipelines: PipelineFactory) -> None:
    sink = RecordingSink()
    pipeline = pipelines(
        "testpattern?fps=30&size=64x48", "shape", sink, registry=StandInModel(), max_fps=5
    )
    pipeline.start(use_main_thread=False)
    sink.wait_count(4)
    pipeline.terminate()
    ids = [frame.frame_id for frame in sink.frames]
    assert max(np.diff(ids)) >= 3, f"a 5 fps cap on a 30 fps camera skips frames: {ids}"
    assert pipeline.status().sources[0].stats.frames_dropped > 0


@pytest.mark.rtsp
def test_reconnect_after_the_camera_is_killed_bumps_the_epoch_and_ids_continue_above(
    rtsp_server_factory: Callable[..., RtspServer],
    tiny_tracker: Any,
    pipelines: PipelineFactory,
    fast_source_options: dict[str, Any],
) -> None:
    server = rtsp_server_factory(size=(128, 96), fps=15)
    events, sink = EventRecorder(), RecordingSink()
    pipeline = pipelines(
        server.url, "shape", sink, tracker=tiny_tracker, threshold=0.0,
        status_update_handlers=[events], **fast_source_options,
    )  # fmt: skip
    pipeline.start(use_main_thread=False)

    def detected_in(epoch: int, count: int) -> Callable[[list], bool]:
        return lambda results: (
            sum(1 for det, f in results if f.epoch == epoch and len(det) > 0) >= count
        )

    sink.wait_for(detected_in(0, 3), timeout=90)
    mark = len(events)
    server.kill()
    events.wait_state(0, "RECONNECTING", after=mark)
    server.restart()
    assert events.wait_state(0, "RUNNING", after=mark).payload["epoch"] == 1
    sink.wait_for(detected_in(1, 3), timeout=90)
    pipeline.terminate()

    def ids(epoch: int) -> list[int]:
        return [int(i) for det, f in sink.received if f.epoch == epoch for i in det.tracker_id]

    assert ids(0) and ids(1)
    assert min(ids(1)) > max(ids(0)), "ids after the reconnect continue above every old one"
    source = pipeline.status().sources[0].stats
    assert (source.epoch, source.reconnects) == (1, 1)


@pytest.mark.rtsp
def test_a_frozen_camera_is_detected_as_stalled_and_reconnected_after_it_thaws(
    rtsp_server: RtspServer, pipelines: PipelineFactory, fast_source_options: dict[str, Any]
) -> None:
    events, sink = EventRecorder(), RecordingSink()
    pipeline = pipelines(
        rtsp_server.url, "shape", sink, registry=StandInModel(),
        status_update_handlers=[events], **fast_source_options,
    )  # fmt: skip
    pipeline.start(use_main_thread=False)
    sink.wait_count(3)
    mark = len(events)
    rtsp_server.freeze()
    stalled = events.wait_state(0, "RECONNECTING", after=mark)
    assert "stalled" in stalled.payload["reason"] and stalled.severity == "WARNING"
    rtsp_server.thaw()
    assert events.wait_state(0, "RUNNING", after=mark).payload["epoch"] >= 1
    sink.wait_for(lambda results: any(f.epoch >= 1 for _, f in results))


@pytest.mark.rtsp
def test_terminate_returns_within_a_second_while_nothing_listens(
    pipelines: PipelineFactory, fast_source_options: dict[str, Any]
) -> None:
    url = f"rtsp://user:secret@127.0.0.1:{free_port()}/cam"
    events = EventRecorder()
    pipeline = pipelines(
        url, "shape", RecordingSink(), registry=StandInModel(),
        status_update_handlers=[events], **fast_source_options,
    )  # fmt: skip
    pipeline.start(use_main_thread=False)
    events.wait_state(0, "CONNECTING")
    wait_until(
        lambda: pipeline.status().sources[0].stats.connect_failures >= 2,
        what="the source to keep retrying",
    )
    started = time.monotonic()
    pipeline.terminate()
    assert time.monotonic() - started < 1.0
    assert pipeline.state == "TERMINATED" and pipeline.join(timeout=0)
    status = pipeline.status()
    assert "secret" not in str(status) and "secret" not in str(events.received)


@pytest.mark.rtsp
def test_terminate_returns_within_a_second_while_a_connection_attempt_hangs(
    rtsp_server: RtspServer, pipelines: PipelineFactory
) -> None:
    rtsp_server.freeze()  # it accepts the TCP connection and never answers
    events = EventRecorder()
    pipeline = pipelines(
        rtsp_server.url, "shape", RecordingSink(), registry=StandInModel(),
        status_update_handlers=[events], open_timeout_s=30.0,
    )  # fmt: skip
    pipeline.start(use_main_thread=False)
    events.wait_state(0, "CONNECTING")
    started = time.monotonic()
    pipeline.terminate()
    assert time.monotonic() - started < 1.0
    assert pipeline.state == "TERMINATED"


@pytest.mark.rtsp
def test_a_dead_camera_does_not_hold_up_a_flowing_one(
    rtsp_server: RtspServer, pipelines: PipelineFactory, fast_source_options: dict[str, Any]
) -> None:
    dead = f"rtsp://127.0.0.1:{free_port()}/dead"
    sink = RecordingSink()
    pipeline = pipelines(
        [dead, rtsp_server.url], "shape", sink, registry=StandInModel(), **fast_source_options
    )
    pipeline.start(use_main_thread=False)
    sink.wait_count(10)
    dead_status, live_status = pipeline.status().sources
    pipeline.terminate()
    # Two sources, SinkMode.ADAPTIVE: one list per round, None where the dead camera would be.
    assert all(frames[0] is None for frames in sink.frames), "no round waits for the dead one"
    assert {frames[1].source_id for frames in sink.frames} == {1}
    assert dead_status.stats.state == "CONNECTING" and dead_status.stats.connect_failures >= 1
    assert live_status.stats.state == "RUNNING" and live_status.frames_processed >= 10


def test_terminate_from_a_status_handler_on_a_source_thread_does_not_deadlock(
    pipelines: PipelineFactory,
) -> None:
    holder: list[Any] = []
    called = threading.Event()

    def stop_when_running(update: Any) -> None:  # runs on the source's decode thread
        if update.event_type == "SOURCE_STATE_UPDATE" and update.payload["new"] == "RUNNING":
            holder[0].terminate()
            called.set()

    pipeline = pipelines(
        "testpattern?fps=30&size=32x24", "shape", RecordingSink(), registry=StandInModel(),
        status_update_handlers=[stop_when_running],
    )  # fmt: skip
    holder.append(pipeline)
    pipeline.start(use_main_thread=False)
    assert called.wait(timeout=30)
    assert pipeline.join(timeout=30) and pipeline.state == "TERMINATED"
