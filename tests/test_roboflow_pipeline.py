"""Roboflow's ``InferencePipeline`` loop surface, run as Roboflow code calls it (imports changed).

Issue 13 rows:

- R7: ``sink_mode`` (``SinkMode.ADAPTIVE`` default, ``BATCH``, ``SEQUENTIAL``): with several
  sources a Roboflow-style sink that zips the lists of predictions and frames works;
- R8: an exception inside ``on_prediction`` is reported as ``INFERENCE_RESULTS_DISPATCHING_ERROR``
  and logged with its traceback, once per distinct error;
- R11: ``pause_stream`` / ``mute_stream`` / ``resume_stream`` on a source that is not there are
  ignored;
- R12: ``exec_session_id=`` on both factories;
- R13: ``start(); join(); start(); join()`` runs the file again, frame ids continuing;
- ``on_prediction=None`` discards the results.

The model is mostly ``StandInModel``, a stand-in that records calls (it is not SAM3): these
rows are about the loop, which frames reach which call and when, not about what SAM3 finds. The
rerun's tracker ids are checked on the tiny SAM3 checkpoint. The sources are real PyAV clips.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

import pytest
import supervision as sv

from pipeline import InferencePipeline, SinkMode, VideoFrame
from pipeline.errors import ConfigError
from sinks import SinkError
from tests.pipeline_helpers import EventRecorder, PipelineFactory, StandInModel
from tests.sources_helpers import write_test_clip
from tests.waiting import RecordingSink

pytestmark = pytest.mark.timeout(120)

_LOGGER = "pipeline.loop.inference_pipeline"


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[int, str]:
    """PyAV clips of 3, 5 and 10 frames, keyed by their length."""
    folder = tmp_path_factory.mktemp("clips")
    return {n: str(write_test_clip(folder / f"clip{n}.mp4", frames=n)) for n in (3, 5, 10)}


def _workflow() -> dict[str, Any]:
    """Roboflow's SAM3 video workflow with its one ``sam3_video`` step."""
    return {
        "version": "1.0",
        "inputs": [{"type": "InferenceImage", "name": "image"}],
        "steps": [
            {
                "type": "roboflow_core/sam3_video@v1",
                "name": "sam3",
                "images": "$inputs.image",
                "class_names": ["person"],
            }
        ],
        "outputs": [
            {"type": "JsonField", "name": "predictions", "selector": "$steps.sam3.predictions"}
        ],
    }


class ZippingSink:
    """A sink written for Roboflow's multi-source pipeline: it zips the two lists it is given."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, Any]] = []
        self.ids: dict[int, list[int]] = {}

    def __call__(self, predictions: Any, video_frames: Any) -> None:
        self.calls.append((predictions, video_frames))
        for prediction, frame in zip(predictions, video_frames, strict=True):  # Roboflow's loop
            if frame is None:
                continue
            assert prediction is not None
            self.ids.setdefault(frame.source_id, []).append(frame.frame_id)


# ---------------------------------------------------------------- R7 sink_mode


def test_two_sources_hand_a_roboflow_sink_lists_it_can_zip(
    clips: dict[int, str], pipelines: PipelineFactory
) -> None:
    sink = ZippingSink()
    pipeline = pipelines([clips[3], clips[5]], "person", sink, registry=StandInModel())
    pipeline.start()

    assert sink.calls and all(
        isinstance(p, list) and isinstance(f, list) and len(p) == len(f) == 2 for p, f in sink.calls
    ), "ADAPTIVE with two sources: one list entry per source"
    for _, frames in sink.calls:
        assert any(frame is not None for frame in frames), "a round is never empty"
        for index, frame in enumerate(frames):
            assert frame is None or frame.source_id == index, "entries in source_id order"
    assert sink.ids == {0: [1, 2, 3], 1: [1, 2, 3, 4, 5]}, "each frame once, in order"
    assert any(frames[0] is None for _, frames in sink.calls), "after clip 0 ended: None"
    assert pipeline.status().frames_processed == 8


def test_sequential_mode_calls_once_per_frame_with_single_objects(
    clips: dict[int, str], pipelines: PipelineFactory
) -> None:
    sink = RecordingSink()
    pipeline = pipelines(
        [clips[3], clips[5]], "person", sink, registry=StandInModel(),
        sink_mode=SinkMode.SEQUENTIAL,
    )  # fmt: skip
    pipeline.start()
    assert len(sink.received) == 8
    assert all(isinstance(p, sv.Detections) for p, _ in sink.received)
    assert all(isinstance(frame, VideoFrame) for frame in sink.frames)


def test_batch_mode_with_one_source_hands_lists_of_one(
    clips: dict[int, str], pipelines: PipelineFactory
) -> None:
    sink = RecordingSink()
    pipeline = pipelines(clips[3], "person", sink, registry=StandInModel(), sink_mode="batch")
    pipeline.start()
    assert [[frame.frame_id for frame in frames] for frames in sink.frames] == [[1], [2], [3]]
    assert all(isinstance(p, list) and len(p) == 1 for p, _ in sink.received)


def test_one_source_in_adaptive_mode_gets_single_objects(
    clips: dict[int, str], pipelines: PipelineFactory
) -> None:
    sink = RecordingSink()
    pipelines(clips[3], "person", sink, registry=StandInModel()).start()
    assert [frame.frame_id for frame in sink.frames] == [1, 2, 3]


def test_an_unknown_sink_mode_is_refused_naming_the_option(clips: dict[int, str]) -> None:
    with pytest.raises(ConfigError) as caught:
        InferencePipeline.init(clips[3], "person", print, registry=StandInModel(), sink_mode="x")
    assert caught.value.field == "sink_mode" and "adaptive" in str(caught.value)


def test_a_workflow_on_two_sources_hands_lists_of_result_dicts(
    clips: dict[int, str], pipelines: PipelineFactory
) -> None:
    sink = ZippingSink()
    pipeline = InferencePipeline.init_with_workflow(
        video_reference=[clips[3], clips[5]],
        workflow_specification=_workflow(),
        on_prediction=sink,
        registry=StandInModel(),
    )
    pipelines.made.append(pipeline)
    pipeline.start()
    assert sink.ids == {0: [1, 2, 3], 1: [1, 2, 3, 4, 5]}
    results = [result for predictions, _ in sink.calls for result in predictions if result]
    assert len(results) == 8
    assert all(isinstance(result["predictions"], sv.Detections) for result in results)


# ---------------------------------------------------------------- R8 on_prediction errors


def test_an_exception_in_on_prediction_is_roboflows_event_and_logged_once_with_its_traceback(
    clips: dict[int, str], pipelines: PipelineFactory, caplog: pytest.LogCaptureFixture
) -> None:
    events = EventRecorder()

    def on_prediction(predictions: Any, video_frame: VideoFrame) -> None:
        if video_frame.frame_id <= 7:
            raise ValueError("boom")
        raise KeyError("detection_id")

    pipeline = pipelines(
        clips[10], "person", on_prediction, registry=StandInModel(),
        status_update_handlers=[events],
    )  # fmt: skip
    with caplog.at_level(logging.ERROR, logger=_LOGGER):
        pipeline.start()

    errors = events.of_type("INFERENCE_RESULTS_DISPATCHING_ERROR")
    assert len(errors) == 10, "an event for every failure"
    assert [e.payload["error_type"] for e in errors] == ["ValueError"] * 7 + ["KeyError"] * 3
    assert errors[0].payload["error_message"] == "boom"
    assert {e.payload["error_context"] for e in errors} == {"inference_results_dispatching"}
    assert {e.context for e in errors} == {"inference_pipeline"}
    assert all(e.severity.value == logging.ERROR for e in errors)
    records = [r for r in caplog.records if r.name == _LOGGER and r.levelno == logging.ERROR]
    assert len(records) == 2, "logged once per distinct error, not once per frame"
    assert "boom" in records[0].getMessage() and records[0].exc_info is not None
    assert "detection_id" in records[1].getMessage() and records[1].exc_info is not None
    assert pipeline.status().frames_processed == 10 and pipeline.status().sink_errors == 10


def test_a_sink_error_is_logged_as_its_one_line_without_a_traceback(
    clips: dict[int, str], pipelines: PipelineFactory, caplog: pytest.LogCaptureFixture
) -> None:
    def headless(predictions: Any, video_frame: VideoFrame) -> None:
        raise SinkError("cannot open a window: DISPLAY is not set")

    with caplog.at_level(logging.DEBUG, logger=_LOGGER):
        pipelines(clips[5], "person", headless, registry=StandInModel()).start()
    lines = [r for r in caplog.records if r.name == _LOGGER and "DISPLAY" in r.getMessage()]
    assert len(lines) == 1 and lines[0].exc_info is None


# ---------------------------------------------------------------- R11 unknown source ids


def test_controls_on_a_source_that_is_not_there_are_ignored(
    clips: dict[int, str], pipelines: PipelineFactory, caplog: pytest.LogCaptureFixture
) -> None:
    events, sink = EventRecorder(), ZippingSink()
    pipeline = pipelines(
        [clips[3], clips[5]], "person", sink, registry=StandInModel(),
        status_update_handlers=[events],
    )  # fmt: skip
    with caplog.at_level(logging.WARNING, logger=_LOGGER):
        assert pipeline.pause_stream(source_id=5) is None
        assert pipeline.mute_stream(source_id="1") is None  # type: ignore[arg-type]
        assert pipeline.mute_stream(source_id="1") is None  # type: ignore[arg-type]
        assert pipeline.resume_stream(source_id=-1) is None
    assert len(events.received) == 0, "no source changed state"
    warnings = [r.getMessage() for r in caplog.records if r.name == _LOGGER]
    assert len(warnings) == 3, "one warning per method and id"
    assert "mute_stream(source_id='1'): no such source" in warnings[1]
    pipeline.start()
    assert sink.ids == {0: [1, 2, 3], 1: [1, 2, 3, 4, 5]}, "both sources ran untouched"


# ---------------------------------------------------------------- R12 exec_session_id


def test_exec_session_id_is_kept_as_given_or_minted(
    clips: dict[int, str], pipelines: PipelineFactory
) -> None:
    for factory in (InferencePipeline.init, InferencePipeline.init_with_workflow):
        assert inspect.signature(factory).parameters["exec_session_id"].default is None
    events = EventRecorder()
    given = pipelines(
        clips[3], "person", print, registry=StandInModel(), exec_session_id="camera-7",
        status_update_handlers=[events],
    )  # fmt: skip
    assert given.exec_session_id == "camera-7"
    minted = [pipelines(clips[3], "p", print, registry=StandInModel()) for _ in range(2)]
    empty = pipelines(clips[3], "p", print, registry=StandInModel(), exec_session_id="")
    ids = [pipeline.exec_session_id for pipeline in (*minted, empty)]
    assert all(ids) and len(set(ids)) == 3, ids
    nanoseconds, _, suffix = ids[0].partition("_")
    assert nanoseconds.isdigit() and len(suffix) == 4, "Roboflow's '<time_ns>_<hex4>' format"
    workflow = InferencePipeline.init_with_workflow(
        clips[3], _workflow(), print, registry=StandInModel(), exec_session_id="wf-1"
    )
    pipelines.made.append(workflow)
    assert workflow.exec_session_id == "wf-1"

    given.start()
    (started,) = events.of_type("INFERENCE_THREAD_STARTED")
    assert started.payload["exec_session_id"] == "camera-7"
    order = [e.event_type for e in events.received]
    assert order.index("INFERENCE_THREAD_STARTED") < order.index("INFERENCE_THREAD_FINISHED")
    assert order.index("INFERENCE_THREAD_FINISHED") < order.index("PIPELINE_ENDED")
    (pipeline_started,) = events.of_type("PIPELINE_STARTED")
    assert pipeline_started.payload["exec_session_id"] == "camera-7"
    assert given.status().to_dict()["exec_session_id"] == "camera-7"


# ---------------------------------------------------------------- R13 start again


def test_start_join_start_join_runs_the_file_again_with_ids_continuing(
    clips: dict[int, str], pipelines: PipelineFactory
) -> None:
    events, model, sink = EventRecorder(), StandInModel(), RecordingSink()
    pipeline = pipelines(clips[5], "person", sink, registry=model, status_update_handlers=[events])
    pipeline.start()
    pipeline.join()
    pipeline.start()
    pipeline.join()

    assert [frame.frame_id for frame in sink.frames] == list(range(1, 11))
    assert [call["epoch"] for call in model.calls] == [0] * 5 + [1] * 5, "a rerun reseeds"
    assert len(events.of_type("PIPELINE_ENDED")) == 2
    assert pipeline.state == "ENDED" and pipeline.status().frames_processed == 10
    assert model.closed == pipeline.video_identifiers * 2, "each run frees its session"


def test_a_rerun_on_the_tiny_checkpoint_reseeds_and_continues_tracker_ids(
    clips: dict[int, str], tiny_tracker: Any, pipelines: PipelineFactory
) -> None:
    sink = RecordingSink()
    pipeline = pipelines(clips[5], "shape", sink, tracker=tiny_tracker, threshold=0.0)
    pipeline.start()
    pipeline.start()
    runs: dict[int, list[int]] = {0: [], 1: []}
    for detections, frame in sink.received:
        runs[frame.epoch].extend(int(i) for i in detections.tracker_id)
    assert len(sink.received) == 10 and runs[0] and runs[1], "threshold 0 finds objects"
    assert min(runs[1]) > max(runs[0]), "ids never reused across a rerun"


def test_a_terminated_pipeline_starts_again_and_a_running_one_refuses(
    clips: dict[int, str], pipelines: PipelineFactory
) -> None:
    model, sink = StandInModel(delay_s=0.02), RecordingSink()
    pipeline = pipelines(clips[10], "person", sink, registry=model)
    pipeline.start(use_main_thread=False)
    with pytest.raises(RuntimeError, match="already running"):
        pipeline.start()
    sink.wait_count(1)
    pipeline.terminate()
    assert pipeline.join(timeout=30)
    first_run = len(model.calls)
    pipeline.start()
    assert pipeline.state == "ENDED"
    second = model.calls[first_run:]
    assert len(second) == 10 and {call["epoch"] for call in second} == {1}
    assert second[0]["frame_id"] > model.calls[first_run - 1]["frame_id"], "ids continue"


class _ClosableSink:
    def __init__(self) -> None:
        self.frames = 0

    def __call__(self, predictions: Any, video_frame: Any) -> None:
        self.frames += 1

    def close(self) -> None:
        """Closed by the pipeline that owns it."""


def test_a_rerun_refuses_sinks_the_pipeline_closed_and_reruns_plain_functions(
    clips: dict[int, str], pipelines: PipelineFactory
) -> None:
    owned = pipelines(clips[3], "person", [_ClosableSink()], registry=StandInModel())
    owned.start()
    with pytest.raises(RuntimeError, match=r"closed the sinks it owned.*multi_sink"):
        owned.start()

    first, second = RecordingSink(), RecordingSink()
    functions = pipelines(clips[3], "person", [first, second], registry=StandInModel())
    functions.start()
    functions.start()
    assert [frame.frame_id for frame in second.frames] == list(range(1, 7))


# ---------------------------------------------------------------- on_prediction=None


def test_without_on_prediction_the_results_are_discarded(
    clips: dict[int, str], pipelines: PipelineFactory
) -> None:
    model = StandInModel()
    pipeline = InferencePipeline.init(video_reference=clips[5], class_names="p", registry=model)
    pipelines.made.append(pipeline)
    pipeline.start()
    assert len(model.calls) == 5 and pipeline.status().frames_processed == 5
