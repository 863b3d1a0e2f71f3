"""Roboflow's status events, timestamps and error logging, with only the imports changed.

Roboflow code reads ``StatusUpdate`` objects (``SOURCE_STATE_UPDATE`` with ``previous_state`` /
``new_state``, ``VIDEO_CONSUMPTION_*``, ``INFERENCE_THREAD_*``, ``severity.value`` a logging
level) and does ``datetime.now() - video_frame.frame_timestamp``. These tests run that code on
real PyAV clips and the test pattern; the model is the stand-in (``StandInModel``), since they
are about the loop's events, not about SAM3.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pipeline.loop.status_events import (
    EventType,
    StatusUpdate,
    StreamState,
    UpdateSeverity,
)
from pipeline.service.manager import _status_forwarder
from pipeline.service.sse import EventHub
from sinks.errors import SinkError
from sinks.jsonl import JsonlSink
from sinks.log_throttle import KeyedLogThrottle, LogThrottle
from sinks.worker import SinkWorker
from tests.fixtures_rtsp import RtspServer
from tests.pipeline_helpers import EventRecorder, PipelineFactory, StandInModel
from tests.sources_helpers import write_test_clip
from tests.waiting import RecordingSink

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 frames at 20 fps, 64x48."""
    return write_test_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", frames=3, fps=20)


def _types(events: EventRecorder) -> list[str]:
    return [event.event_type for event in events.received]


# ------------------------------------------------------------------------------- R10: events


def test_a_file_run_emits_roboflows_event_vocabulary_in_order(
    clip: Path, pipelines: PipelineFactory
) -> None:
    events = EventRecorder()
    pipeline = pipelines(
        str(clip),
        "thing",
        RecordingSink(),
        registry=StandInModel(),
        status_update_handlers=[events],
    )
    pipeline.start()
    pipeline.join()

    updates = events.of_type("SOURCE_STATE_UPDATE")
    assert [u.payload["new_state"] for u in updates] == [
        StreamState.INITIALISING,
        StreamState.RUNNING,
        StreamState.ENDED,
    ]
    assert updates[0].payload["previous_state"] is StreamState.NOT_STARTED
    assert [u.payload["previous_state"] for u in updates[1:]] == [
        StreamState.INITIALISING,
        StreamState.RUNNING,
    ]
    assert all(u.payload["source_id"] == 0 and u.context == "video_source" for u in updates)
    assert updates[0].payload["old"] is None and updates[-1].payload["new"] == "ENDED"  # ours kept

    types = _types(events)
    assert types.count("VIDEO_CONSUMPTION_STARTED") == 1
    assert types.count("VIDEO_CONSUMPTION_FINISHED") == 1
    assert types.index("VIDEO_CONSUMPTION_STARTED") < types.index("VIDEO_CONSUMPTION_FINISHED")
    assert events.of_type("VIDEO_CONSUMPTION_STARTED")[0].payload["source_id"] == 0
    assert types.index("INFERENCE_THREAD_STARTED") < types.index("INFERENCE_THREAD_FINISHED")
    assert types.index("INFERENCE_THREAD_FINISHED") < types.index("PIPELINE_ENDED")
    assert all(
        events.of_type(t)[0].context == "inference_pipeline"
        for t in ("INFERENCE_THREAD_STARTED", "INFERENCE_THREAD_FINISHED")
    )

    assert {e.severity.value for e in events.received} <= {10, 20, 30, 40}
    assert all(isinstance(e.severity.value, int) for e in events.received)
    # Roboflow's watchdog filter runs unchanged.
    debug = [e for e in events.received if e.severity.value <= UpdateSeverity.DEBUG.value]
    assert all(e.severity is UpdateSeverity.DEBUG for e in debug)
    assert all(isinstance(e.timestamp, datetime) and e.timestamp.tzinfo is None for e in updates)


@pytest.mark.rtsp
def test_a_camera_that_drops_reports_restarting_and_a_new_consumption(
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
    rtsp_server.kill()
    lost = events.wait_state(0, "RECONNECTING", after=mark)
    assert lost.payload["new_state"] is StreamState.RESTARTING
    assert lost.payload["previous_state"] is StreamState.RUNNING
    rtsp_server.restart()
    events.wait_state(0, "RUNNING", after=mark)
    pipeline.terminate()

    after = [e.event_type for e in events.received[mark:]]
    finished = after.index("VIDEO_CONSUMPTION_FINISHED")
    assert "VIDEO_CONSUMPTION_STARTED" in after[finished:], "a reconnect is a new consumption"
    started = events.of_type("VIDEO_CONSUMPTION_STARTED")
    assert [e.payload["epoch"] for e in started][:2] == [0, 1]


def test_our_earlier_event_name_is_an_alias_of_roboflows() -> None:
    import pipeline

    assert (pipeline.StreamState, pipeline.UpdateSeverity) == (StreamState, UpdateSeverity)
    assert EventType.SOURCE_STATE_CHANGED is EventType.SOURCE_STATE_UPDATE
    assert EventType.SOURCE_STATE_CHANGED == "SOURCE_STATE_UPDATE"
    assert StreamState.RESTARTING is StreamState.RECONNECTING
    assert StreamState.INITIALISING.value == "CONNECTING"


def test_update_severity_is_a_logging_level_that_still_equals_its_name() -> None:
    assert [s.value for s in UpdateSeverity] == [
        logging.DEBUG,
        logging.INFO,
        logging.WARNING,
        logging.ERROR,
    ]
    assert UpdateSeverity.ERROR == "ERROR" and UpdateSeverity.ERROR != "WARNING"
    assert UpdateSeverity.ERROR != 40, "a plain Enum, as Roboflow's: compare .value"
    assert UpdateSeverity(20) is UpdateSeverity.INFO
    assert UpdateSeverity.DEBUG < UpdateSeverity.INFO <= UpdateSeverity.INFO < UpdateSeverity.ERROR
    assert hash(UpdateSeverity.WARNING) == hash("WARNING")
    update = StatusUpdate.now(UpdateSeverity.WARNING, "SOURCE_STATE_UPDATE", {}, "video_source")
    data = update.to_dict()
    assert data["severity"] == "WARNING"
    assert datetime.fromisoformat(data["timestamp"]).utcoffset() == timedelta(0)


def test_inference_errors_carry_roboflows_keys_and_ours(
    clip: Path, pipelines: PipelineFactory
) -> None:
    events = EventRecorder()
    model = StandInModel(fail_on={2})
    pipeline = pipelines(
        str(clip), "thing", RecordingSink(), registry=model, status_update_handlers=[events]
    )
    pipeline.start()
    pipeline.join()

    (error,) = events.of_type("INFERENCE_ERROR")
    assert error.severity is UpdateSeverity.ERROR and error.severity.value == logging.ERROR
    assert error.payload["error_type"] == "InferenceError"
    assert "stand-in failure on frame 2" in error.payload["error_message"]
    assert error.payload["error_context"] == "inference_thread"
    assert error.payload["error"] == error.payload["error_message"]  # our key kept
    assert error.payload["frame_id"] == 2


def test_service_status_events_show_severity_by_name_and_utc_time(
    clip: Path, pipelines: PipelineFactory
) -> None:
    loop = asyncio.new_event_loop()
    try:
        hub = EventHub()
        subscription = hub.subscribe("none", loop)
        pipeline = pipelines(
            str(clip),
            "thing",
            RecordingSink(),
            registry=StandInModel(),
            status_update_handlers=[_status_forwarder("stream-1", hub)],
        )
        pipeline.start()
        pipeline.join()
        hub.close()
        sent: list[dict[str, Any]] = []
        while (item := loop.run_until_complete(subscription.get(1.0))) is not None:
            sent.append(json.loads(item[2]))
    finally:
        loop.close()

    update = next(e for e in sent if e["event_type"] == "SOURCE_STATE_UPDATE")
    assert update["stream_id"] == "stream-1" and update["severity"] == "INFO"
    assert update["payload"]["previous_state"] == "NOT_STARTED"
    assert update["payload"]["new_state"] == "CONNECTING"
    assert datetime.fromisoformat(update["timestamp"]).utcoffset() == timedelta(0)
    assert {e["severity"] for e in sent} <= {"DEBUG", "INFO", "WARNING", "ERROR"}
    assert "INFERENCE_COMPLETED" not in {e["event_type"] for e in sent}


# --------------------------------------------------------------------------- R9: timestamps


@pytest.mark.parametrize("kind", ["file", "testpattern"])
def test_frame_timestamps_are_naive_local_time_as_roboflows(
    kind: str, clip: Path, pipelines: PipelineFactory
) -> None:
    reference = str(clip) if kind == "file" else "testpattern?fps=30&size=64x48"
    ages: list[float] = []

    def on_prediction(predictions: Any, video_frame: Any) -> None:  # Roboflow's render_statistics
        ages.append((datetime.now() - video_frame.frame_timestamp).total_seconds())
        if len(ages) == 3:
            pipeline.terminate()

    pipeline = pipelines(reference, "thing", on_prediction, registry=StandInModel())
    pipeline.start(use_main_thread=False)
    pipeline.join()

    assert len(ages) >= 3
    assert all(-5.0 < age < 5.0 for age in ages)


def test_json_records_keep_the_utc_instant_of_a_naive_timestamp(
    clip: Path, pipelines: PipelineFactory, tmp_path: Path
) -> None:
    frames = RecordingSink()
    jsonl = JsonlSink(tmp_path / "out.jsonl", mask_format="none")
    pipeline = pipelines(str(clip), "thing", [frames, jsonl], registry=StandInModel())
    pipeline.start()
    pipeline.join()

    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 3
    for record, frame in zip(records, frames.frames, strict=True):
        assert frame.frame_timestamp.tzinfo is None
        assert record["timestamp"].endswith("+00:00")
        instant = datetime.fromisoformat(record["timestamp"])
        assert instant == frame.frame_timestamp.astimezone(UTC)


# ------------------------------------------------------------------ W5: throttled error logs


def test_keyed_throttle_lets_each_distinct_key_through_once_per_interval() -> None:
    throttle = KeyedLogThrottle(interval_s=3600.0)
    assert [throttle.allow("a"), throttle.allow("a"), throttle.allow("b")] == [0, None, 0]
    assert throttle.allow(("sink", "ValueError", "boom")) == 0

    expiring = KeyedLogThrottle(interval_s=0.0)
    assert [expiring.allow("a"), expiring.allow("a")] == [0, 0]

    single = LogThrottle(interval_s=3600.0)
    assert [single.allow(), single.allow()] == [0, None]


def test_keyed_throttle_memory_and_new_key_rate_are_bounded() -> None:
    lru = KeyedLogThrottle(interval_s=3600.0, max_keys=2)
    assert [lru.allow(k) for k in ("a", "b", "c")] == [0, 0, 0]
    assert lru.allow("a") == 0, "the least recently seen key was forgotten"
    assert lru.allow("c") is None

    capped = KeyedLogThrottle(interval_s=3600.0, max_new_keys=3)
    assert [capped.allow(f"frame {i}") for i in range(5)] == [0, 0, 0, None, None]
    assert capped.take_overflow() == 2 and capped.take_overflow() == 0


def test_keyed_throttle_logs_the_traceback_once_then_counts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="tests.throttle")
    log = logging.getLogger("tests.throttle")
    throttle = KeyedLogThrottle(interval_s=3600.0)
    for _ in range(5):
        try:
            raise ValueError("boom")
        except ValueError as error:
            throttle.log(log, logging.ERROR, ("ValueError", "boom"), "x: %s", error, exc_info=error)
    try:
        raise KeyError("other")
    except KeyError as error:
        throttle.log(log, logging.ERROR, ("KeyError", "other"), "x: %s", error, exc_info=error)

    assert [r.getMessage() for r in caplog.records] == ["x: boom", "x: 'other'"]
    assert all(r.exc_info is not None for r in caplog.records)

    caplog.clear()
    summarising = KeyedLogThrottle(interval_s=0.0)  # every occurrence is past the interval
    for _ in range(2):
        summarising.log(log, logging.ERROR, "k", "y: %s", "boom", exc_info=ValueError("boom"))
    first, again = caplog.records
    assert first.exc_info is not None and first.getMessage() == "y: boom"
    assert again.exc_info is None and again.getMessage().startswith("y: boom (again, 0 more")


def test_a_failing_sink_worker_logs_each_distinct_error_once_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="sinks.worker")
    calls: list[int] = []

    def sink(predictions: Any, frame: Any) -> None:
        calls.append(1)
        if len(calls) <= 4:
            raise ValueError("boom")
        raise SinkError("DISPLAY is not set: run under a display")

    worker = SinkWorker(sink, "flaky")
    for _ in range(8):
        worker.submit(None, None)
    assert worker.flush(timeout=10.0)
    worker.close()

    records = [r for r in caplog.records if r.name == "sinks.worker"]
    assert len(records) == 2, [r.getMessage() for r in records]
    assert "boom" in records[0].getMessage() and records[0].exc_info is not None
    assert "DISPLAY is not set" in records[1].getMessage() and records[1].exc_info is None
    assert worker.stats.errors == 8
