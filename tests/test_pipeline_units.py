"""The small rules behind the pipeline, each tested where it lives: the dispatch queue policy,
process-unique identifiers, latency windows, progress lines, the per-source rate cap."""

from __future__ import annotations

import dataclasses
import inspect
import io
import pickle
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import ConfigError
from pipeline.loop.dispatch import Dispatch, DispatchQueue
from pipeline.loop.identifiers import claim_identifiers, release_identifiers
from pipeline.loop.inference_pipeline import InferencePipeline
from pipeline.loop.options import KEYWORD_OPTIONS, PipelineOptions, SinkMode, check_sink_mode
from pipeline.loop.progress import ProgressReporter, format_file_progress, format_live_status
from pipeline.loop.status import LatencySummary, LatencyWindow, SourceMetrics
from pipeline.loop.status_events import StatusUpdate, UpdateSeverity
from pipeline.sources import RoundRobinReader, SourceState, make_sources
from pipeline.video_frame import VideoFrame
from tests.pipeline_helpers import StandInModel, source_status
from tests.sources_helpers import write_test_clip
from tracker.weights import MODEL_ENV, resolve_model

pytestmark = pytest.mark.timeout(60)


def _dispatch(frame_id: int, live: bool) -> Dispatch:
    frame = VideoFrame(np.zeros((2, 2, 3), np.uint8), frame_id, datetime.now(UTC))
    return Dispatch(result=None, frame=frame, grabbed_at=0.0, live=live)


def test_a_full_dispatch_queue_drops_the_oldest_live_result_and_never_a_file_result() -> None:
    queue = DispatchQueue(capacity=2)
    assert queue.put(_dispatch(1, live=False)) is None
    assert queue.put(_dispatch(2, live=True)) is None
    dropped = queue.put(_dispatch(3, live=True))
    assert dropped is not None and dropped.frame.frame_id == 2
    dropped = queue.put(_dispatch(4, live=True))  # only file results besides: drop the oldest live
    assert dropped is not None and dropped.frame.frame_id == 3
    assert [queue.get(0).frame.frame_id for _ in range(2)] == [1, 4]


def test_a_round_lists_one_entry_per_source_and_is_live_only_when_all_its_frames_are() -> None:
    live, file = _dispatch(4, live=True), _dispatch(9, live=False)
    batch = Dispatch.batch([None, live, file])
    assert batch.result == [None, None, None] and batch.frame[0] is None
    assert [frame.frame_id for frame, _ in batch.frames()] == [4, 9], "None entries skipped"
    assert not batch.live, "a round holding a file frame is never dropped"
    assert Dispatch.batch([live, None]).live


def test_sink_mode_takes_a_member_or_its_value_in_any_case() -> None:
    assert check_sink_mode(SinkMode.SEQUENTIAL) is SinkMode.SEQUENTIAL
    assert check_sink_mode("ADAPTIVE") is SinkMode.ADAPTIVE
    assert PipelineOptions.from_keywords("clip.mp4", "p", None).sink_mode is SinkMode.ADAPTIVE


def test_a_file_result_waits_for_room_until_the_consumer_takes_one() -> None:
    queue = DispatchQueue(capacity=1)
    queue.put(_dispatch(1, live=False))
    waiting = threading.Thread(target=queue.put, args=(_dispatch(2, live=False),))
    waiting.start()
    waiting.join(timeout=0.2)
    assert waiting.is_alive(), "a file result never replaces another"
    assert queue.get(1).frame.frame_id == 1
    waiting.join(timeout=5)
    assert queue.get(1).frame.frame_id == 2


def test_stop_wakes_a_waiting_producer_and_consumer() -> None:
    queue = DispatchQueue(capacity=1)
    queue.put(_dispatch(1, live=False))
    producer = threading.Thread(target=queue.put, args=(_dispatch(2, live=False),))
    producer.start()
    assert queue.stop() == 1
    producer.join(timeout=5)
    assert not producer.is_alive() and queue.get() is None and queue.finished


def test_identifiers_derive_from_the_reference_redacted_and_get_a_suffix_when_taken() -> None:
    url = "rtsp://admin:hunter2@10.0.0.7/live"
    first = claim_identifiers([url, url])
    try:
        assert first == ["rtsp://admin:***@10.0.0.7/live", "rtsp://admin:***@10.0.0.7/live#2"]
        with pytest.raises(ConfigError, match="already used"):
            claim_identifiers(["other"], ["rtsp://admin:***@10.0.0.7/live"])
        given = claim_identifiers([url], ["dock"])
        assert given == ["dock"]
        release_identifiers(given)
    finally:
        release_identifiers(first)
    assert claim_identifiers([url]) == ["rtsp://admin:***@10.0.0.7/live"]
    release_identifiers(["rtsp://admin:***@10.0.0.7/live"])


def test_latency_windows_report_percentiles_over_recent_samples_only() -> None:
    window = LatencyWindow(size=100)
    assert window.summary() == LatencySummary(p50=None, p95=None, max=None, count=0)
    for value in [10.0] * 100 + [0.1] * 100:  # the old, slow samples have left the window
        window.add(value)
    assert window.summary() == LatencySummary(p50=0.1, p95=0.1, max=0.1, count=200)


def test_processed_fps_follows_a_slow_model_without_flickering_to_zero() -> None:
    metrics = SourceMetrics()
    for index in range(5):
        metrics.processed(index, at=4.0 * index)  # one frame every 4 s
    assert metrics.processed_fps(now=16.0 + 3.0) == pytest.approx(0.25)
    assert metrics.processed_fps(now=16.0 + 13.0) == 0.0  # three intervals without a frame


def test_status_updates_are_json_ready() -> None:
    update = StatusUpdate.now(UpdateSeverity.WARNING, "SOURCE_STATE_UPDATE", {"a": 1}, "source/0")
    data = update.to_dict()
    assert data["severity"] == "WARNING" and data["context"] == "source/0"
    assert datetime.fromisoformat(data["timestamp"]).tzinfo is not None


FILE = source_status(
    video_identifier="clip.mp4",
    total_frames=40,
    frames_processed=10,
    inference_errors=0,
    processed_fps=2.0,
    state=SourceState.RUNNING,
    is_live=False,
)
LIVE = source_status(
    video_identifier="rtsp://admin:***@cam/1",
    state=SourceState.RECONNECTING,
    epoch=2,
    measured_fps=0.0,
    processed_fps=0.0,
    frames_dropped=5,
    reconnects=2,
    is_live=True,
    latency_s={"end_to_end": LatencySummary(p50=None, p95=None, max=None, count=0)},
)


def test_file_progress_shows_frames_rate_and_eta() -> None:
    assert format_file_progress(FILE) == (
        "clip.mp4 [#####---------------] 10/40 25% 2.0 fps ETA 0:15"
    )
    assert format_file_progress(dataclasses.replace(FILE, frames_processed=40)).endswith(
        "40/40 100% 2.0 fps done"
    )
    assert (
        format_file_progress(dataclasses.replace(FILE, total_frames=None))
        == "clip.mp4 10 frames 2.0 fps"
    )


def test_live_status_lines_say_state_epoch_and_drops() -> None:
    line = format_live_status(LIVE)
    assert line.startswith("rtsp://admin:***@cam/1 RECONNECTING epoch 2:")
    assert "dropped 5" in line and "e2e" not in line


def test_the_reporter_prints_lines_when_stderr_is_not_a_terminal() -> None:
    stream = io.StringIO()
    reporter = ProgressReporter(lambda: [FILE, LIVE], stream=stream, live_every_s=60)
    reporter.start()
    reporter.stop()  # the final tick prints both, once
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("clip.mp4 [#####") and lines[1].startswith("rtsp://admin:***")


def test_max_fps_spaces_out_the_frames_of_each_source(tmp_path: Path) -> None:
    clips = [write_test_clip(tmp_path / f"{name}.mp4", frames=30) for name in ("a", "b")]
    sources = make_sources([str(clip) for clip in clips])
    reader = RoundRobinReader(sources, max_fps=40)
    for source in sources:
        source.start()
    served: dict[int, list[float]] = {0: [], 1: []}
    for _ in range(12):
        frame = reader.read(timeout=5)
        assert frame is not None
        served[frame.source_id].append(time.monotonic())
    for source in sources:
        source.stop()
    for times in served.values():
        assert len(times) == 6  # still in turn
        assert min(np.diff(times)) >= 0.9 / 40  # never faster than the cap (a lower bound)
    with pytest.raises(ConfigError, match="max_fps"):
        RoundRobinReader(sources, max_fps=0)


def test_the_default_model_can_be_pointed_at_a_local_directory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(MODEL_ENV, raising=False)
    assert resolve_model("facebook/sam3") == "facebook/sam3"
    monkeypatch.setenv(MODEL_ENV, "/models/sam3")
    assert resolve_model("facebook/sam3") == "/models/sam3"
    assert resolve_model("/other/model") == "/other/model"


def test_init_takes_exactly_the_keyword_options_of_pipeline_options() -> None:
    parameters = inspect.signature(InferencePipeline.init).parameters.values()
    keywords = {p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY}
    assert keywords == KEYWORD_OPTIONS


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"threshold": 2}, "threshold"),
        ({"max_fps": -1}, "max_fps"),
        ({"watchdog": object()}, "watchdog"),
        ({"status_interval_s": 0}, "status_interval_s"),
        ({"max_objects": 0}, "max_objects"),
        ({"max_objects": 2.5}, "max_objects"),
        ({"max_objects": True}, "max_objects"),
        ({"sink_mode": "tiles"}, "sink_mode"),
        ({"exec_session_id": 7}, "exec_session_id"),
    ],
)
def test_a_bad_option_names_its_field_and_keeps_it_across_processes(
    override: dict, field: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        PipelineOptions.from_keywords("clip.mp4", "person", print, **override)
    assert caught.value.field == field
    assert pickle.loads(pickle.dumps(caught.value)).field == field


class BudgetedStandIn(StandInModel):
    """A stand-in registry that takes an object budget per identifier, as ``SessionRegistry``."""

    def __init__(self) -> None:
        super().__init__()
        self.budgets: list[tuple[str, int | None]] = []

    def set_max_objects(self, video_identifier: str, max_objects: int | None) -> None:
        self.budgets.append((video_identifier, max_objects))


def test_max_objects_goes_to_a_shared_registry_for_the_pipelines_identifiers_only(
    tmp_path: Path, pipelines
) -> None:
    clip = write_test_clip(tmp_path / "clip.mp4", frames=3)
    registry = BudgetedStandIn()
    pipeline = pipelines(
        str(clip), "person", lambda *_: None, registry=registry, video_identifiers=["dock"],
        max_objects=4,
    )  # fmt: skip
    assert registry.budgets == [("dock", 4)], "set before the first frame"
    pipeline.start(use_main_thread=False)
    assert pipeline.join(timeout=30)
    assert registry.budgets == [("dock", 4), ("dock", None)], "the registry's default is back"

    untouched = BudgetedStandIn()
    pipelines(str(clip), "person", lambda *_: None, registry=untouched)
    assert untouched.budgets == [], "no max_objects: the registry keeps its own budget"


def test_max_objects_with_a_registry_that_has_no_budget_is_refused(tmp_path: Path) -> None:
    clip = write_test_clip(tmp_path / "clip.mp4", frames=3)
    with pytest.raises(ConfigError) as caught:
        InferencePipeline.init(
            str(clip), "person", lambda *_: None, registry=StandInModel(), max_objects=4
        )
    assert caught.value.field == "max_objects"


LIBRARY_MISUSE = [
    ({"video_identifiers": 5}, "video_identifiers", "video_identifiers must be a list"),
    ({"video_identifiers": [3]}, "video_identifiers", "video_identifiers must be a list"),
    ({"stall_timeout_s": "x"}, "stall_timeout_s", "stall_timeout_s must be a number, got 'x'"),
    ({"registry": 5}, "registry", "registry must be a tracker.SessionRegistry"),
    ({"tracker": "x"}, "tracker", "tracker must be a tracker.Sam3VideoTracker"),
    ({"av_options": 5}, "av_options", "av_options must be a mapping"),
    ({"av_options": {"rtsp_flags": 1}}, "av_options", "av_options must be a mapping"),
    ({"realtime": "yes"}, "realtime", "realtime must be True or False, got 'yes'"),
    ({"file_buffer_frames": 2.5}, "file_buffer_frames", "file_buffer_frames must be an integer"),
    ({"max_reconnect_attempts": "3"}, "max_reconnect_attempts", "an integer or None"),
    (
        {"model_options": {"trust_remote_code": True}},
        "model_options",
        "trust_remote_code are not Sam3VideoConfig fields",
    ),
    ({"model_options": {"output_loading_info": True}}, "model_options", "output_loading_info"),
    ({"model_options": 5}, "model_options", "must be a mapping of Sam3VideoConfig fields"),
]


@pytest.mark.parametrize(("keywords", "field", "message"), LIBRARY_MISUSE)
def test_a_wrong_type_is_refused_at_construction_naming_the_argument(
    keywords: dict, field: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as raised:
        PipelineOptions.from_keywords("clip.mp4", "person", print, **keywords)
    assert raised.value.field == field
    with pytest.raises(ConfigError, match=message):  # init: before anything is opened
        InferencePipeline.init("clip.mp4", "person", print, **keywords)


def test_model_options_that_are_sam3_video_config_fields_pass_through() -> None:
    options = PipelineOptions.from_keywords(
        "clip.mp4", "person", print, model_options={"new_det_thresh": 0.6, "max_num_objects": 4}
    )
    assert options.model_options == {"new_det_thresh": 0.6, "max_num_objects": 4}
    identifiers = PipelineOptions.from_keywords(
        ["a.mp4", "b.mp4"], "person", print, video_identifiers=["cam", None]
    ).video_identifiers
    assert identifiers == ("cam", None)
