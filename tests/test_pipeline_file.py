"""InferencePipeline on files: every frame in order with its metadata, faults counted, controls.

The model here is a stand-in (``StandInModel``: records calls, can be slow or fail on purpose),
because these tests are about the loop, not about SAM3; ``test_pipeline_live`` and the workflow
test run the real tiny checkpoint.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import supervision as sv

from pipeline import InferencePipeline
from pipeline.errors import ConfigError, SourceError
from pipeline.loop.contracts import FrameProcessor
from tests.pipeline_helpers import EventRecorder, PipelineFactory, StandInModel
from tests.sources_helpers import level_of, write_test_clip
from tests.waiting import RecordingSink

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 frames at 20 fps, 64x48, frame i a flat gray of ``level_of(i)``."""
    return write_test_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", frames=30, fps=20)


def test_every_frame_of_a_file_reaches_the_sink_in_order_with_its_metadata(
    clip: Path, pipelines: PipelineFactory
) -> None:
    model, sink = StandInModel(), RecordingSink()
    pipeline = pipelines(str(clip), "square", sink, registry=model, video_identifiers=["shelf-cam"])
    pipeline.start()  # use_main_thread=True: blocks until the file ends

    frames = sink.frames
    assert [f.frame_id for f in frames] == list(range(1, 31))
    for index, frame in enumerate(frames):
        assert frame.image.shape == (48, 64, 3) and frame.image.dtype == np.uint8
        assert abs(int(frame.image[24, 32, 0]) - level_of(index)) <= 6, "frames out of order"
        assert (frame.source_id, frame.video_identifier, frame.epoch) == (0, "shelf-cam", 0)
        assert frame.comes_from_video_file and frame.fps == 20.0
        offset = (frame.frame_timestamp - frames[0].frame_timestamp).total_seconds()
        assert offset == pytest.approx(index / 20, abs=1e-3)  # from PTS, not the wall clock
    assert [call["frame_id"] for call in model.calls] == list(range(1, 31))
    assert {(c["video_identifier"], c["class_names"], c["epoch"]) for c in model.calls} == {
        ("shelf-cam", ("square",), 0)
    }
    assert model.closed == ["shelf-cam"], "the stream's session is freed when it ends"

    status = pipeline.status()
    json.dumps(status.to_dict())  # its JSON form is JSON-ready as it is
    source = status.sources[0]
    assert status.state == "ENDED" and status.frames_processed == 30
    stats = source.stats
    assert (stats.state, stats.frames_decoded, stats.frames_dropped) == ("ENDED", 30, 0)
    assert source.total_frames == 30
    for stage in ("decode", "inference", "sinks", "end_to_end"):
        latency = source.latency_s[stage]
        assert latency.count == 30
        assert latency.p50 is not None and latency.p95 is not None and latency.max is not None
        assert 0 <= latency.p50 <= latency.p95 <= latency.max


def test_max_fps_makes_a_file_wait_and_loses_no_frame(
    clip: Path, pipelines: PipelineFactory
) -> None:
    sink = RecordingSink()
    pipeline = pipelines(str(clip), "square", sink, registry=StandInModel(), max_fps=50)
    started = time.monotonic()
    pipeline.start()
    assert [f.frame_id for f in sink.frames] == list(range(1, 31))
    assert pipeline.status().sources[0].stats.frames_dropped == 0
    assert time.monotonic() - started >= 29 / 50 * 0.9  # capped: it cannot have gone faster


def test_an_inference_error_is_reported_and_counted_and_the_pipeline_goes_on(
    clip: Path, pipelines: PipelineFactory
) -> None:
    events, sink = EventRecorder(), RecordingSink()
    model = StandInModel(fail_on={3, 5})
    pipeline = pipelines(str(clip), "square", sink, registry=model, status_update_handlers=[events])
    pipeline.start()

    errors = events.of_type("INFERENCE_ERROR")
    assert [e.payload["frame_id"] for e in errors] == [3, 5]
    assert all(e.severity == "ERROR" and "stand-in failure" in e.payload["error"] for e in errors)
    assert [f.frame_id for f in sink.frames] == [i for i in range(1, 31) if i not in (3, 5)]
    assert pipeline.status().inference_errors == 2
    assert events.of_type("PIPELINE_ENDED")[0].payload["inference_errors"] == 2


class _ClosableSink:
    def __init__(self, fail: bool = False) -> None:
        self.fail, self.frames, self.closed = fail, 0, False

    def __call__(self, predictions: object, frame: object) -> None:
        if self.fail:
            raise RuntimeError("disk full")
        self.frames += 1

    def close(self) -> None:
        self.closed = True


def test_a_list_of_sinks_is_fanned_out_isolated_reported_and_closed_at_the_end(
    clip: Path, pipelines: PipelineFactory
) -> None:
    events = EventRecorder()
    good, bad = _ClosableSink(), _ClosableSink(fail=True)
    pipeline = pipelines(
        str(clip), "square", [good, bad], registry=StandInModel(), status_update_handlers=[events]
    )
    pipeline.start()

    assert good.frames == 30, "a failing sink must not cost the others a frame"
    assert good.closed and bad.closed, "sinks given as a list belong to the pipeline"
    errors = events.of_type("SINK_ERROR")
    assert len(errors) == 30 and errors[0].payload["error"] == "disk full"
    status = pipeline.status()
    assert status.sink_errors == 30 and status.sinks is not None
    assert [counters.errors for counters in status.sinks.values()] == [0, 30]


def test_an_exception_from_on_prediction_is_a_sink_error_not_a_crash(
    clip: Path, pipelines: PipelineFactory
) -> None:
    events = EventRecorder()

    def flaky(predictions: object, frame: object) -> None:
        if frame.frame_id % 10 == 0:  # type: ignore[attr-defined]
            raise ValueError("bad frame for this sink")

    pipeline = pipelines(
        str(clip), "square", flaky, registry=StandInModel(), status_update_handlers=[events]
    )
    pipeline.start()
    assert pipeline.status().frames_processed == 30
    errors = events.of_type("INFERENCE_RESULTS_DISPATCHING_ERROR")  # Roboflow's event (issue 13)
    assert [e.payload["sink"] for e in errors] == ["flaky"] * 3


def test_class_names_and_threshold_change_at_runtime_from_the_next_frame(
    clip: Path, pipelines: PipelineFactory
) -> None:
    events, model = EventRecorder(), StandInModel()
    holder: list[InferencePipeline] = []

    def switch(predictions: object, frame: object) -> None:
        if frame.frame_id == 5:  # type: ignore[attr-defined]
            holder[0].set_class_names(["pallet", "forklift"])
            holder[0].set_threshold(0.25)

    pipeline = pipelines(
        str(clip), "square", switch, registry=model, status_update_handlers=[events]
    )
    holder.append(pipeline)
    pipeline.start()

    settings = [(c["class_names"], c["threshold"]) for c in model.calls]
    switched = settings.index((("pallet", "forklift"), 0.25))
    assert 5 <= switched < 30
    assert settings == [(("square",), 0.5)] * switched + [(("pallet", "forklift"), 0.25)] * (
        30 - switched
    )
    assert len(events.of_type("SETTINGS_CHANGED")) == 2
    assert pipeline.status().class_names == ("pallet", "forklift")
    with pytest.raises(ConfigError, match="class_names"):
        pipeline.set_class_names(" , ")
    with pytest.raises(ConfigError, match="threshold"):
        pipeline.set_threshold(1.5)


def test_a_paused_file_waits_where_it_is_and_resumes_without_losing_a_frame(
    clip: Path, pipelines: PipelineFactory
) -> None:
    events, sink = EventRecorder(), RecordingSink()
    pipeline = pipelines(
        str(clip), "square", sink, registry=StandInModel(), status_update_handlers=[events]
    )
    pipeline.pause_stream()
    pipeline.start(use_main_thread=False)
    events.wait_state(0, "PAUSED")
    assert not pipeline.join(timeout=0.3), "a paused file must not end"
    pipeline.resume_stream(0)
    assert pipeline.join(timeout=60)
    assert [f.frame_id for f in sink.frames] == list(range(1, 31))
    pipeline.mute_stream(3)  # no such source: ignored, as in Roboflow (issue 13)
    assert pipeline.status().sources[0].stats.state == "ENDED"


def test_video_identifiers_are_unique_in_the_process(
    clip: Path, pipelines: PipelineFactory
) -> None:
    first = pipelines(str(clip), "square", RecordingSink(), registry=StandInModel())
    second = pipelines(str(clip), "square", RecordingSink(), registry=StandInModel())
    assert second.video_identifiers == [first.video_identifiers[0] + "#2"]
    with pytest.raises(ConfigError, match="already used"):
        taken = first.video_identifiers
        pipelines(str(clip), "x", print, registry=StandInModel(), video_identifiers=taken)
    first.terminate()  # its name is free again
    third = pipelines(str(clip), "square", RecordingSink(), registry=StandInModel())
    assert third.video_identifiers == first.video_identifiers


def test_lifecycle_calls_are_safe_in_every_order(clip: Path, pipelines: PipelineFactory) -> None:
    pipeline = pipelines(str(clip), "square", RecordingSink(), registry=StandInModel())
    assert pipeline.join(timeout=0) is True  # never started: nothing to wait for
    pipeline.terminate()
    pipeline.terminate()
    assert pipeline.state == "TERMINATED" and pipeline.join(timeout=0)
    pipeline.start()  # a terminated pipeline runs again, as Roboflow's does (issue 13)
    assert pipeline.state == "ENDED"

    done = pipelines(str(clip), "square", RecordingSink(), registry=StandInModel())
    done.start()
    done.terminate()
    assert done.state == "ENDED", "terminate after the end changes nothing"


BAD_REFERENCES = [
    ("/no/such/clip.mp4", "video file not found"),
    (".", "is a directory"),
    ("ftp://example.com/clip.mp4", "unknown scheme 'ftp'"),
    ("", "empty video reference"),
    ("rtsp://user:secret@:554/stream", "has no host"),
    ("testpattern?fps=0", "fps=0 must be between"),
    ("testpattern?colour=red", "unknown test pattern parameter 'colour'"),
    (True, "got bool"),
    ([], "non-empty list"),
]


@pytest.mark.parametrize(("reference", "message"), BAD_REFERENCES)
def test_every_bad_reference_gets_its_error(reference: object, message: str) -> None:
    with pytest.raises((SourceError, ConfigError), match=message) as caught:
        InferencePipeline.init(reference, "person", print, registry=StandInModel())
    assert "secret" not in str(caught.value)


def test_a_file_that_is_not_a_video_gets_its_error(tmp_path: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(SourceError, match="cannot decode"):
        InferencePipeline.init(str(text), "person", print, registry=StandInModel())


BAD_ARGUMENTS = [
    ({"class_names": ""}, "class_names is empty"),
    ({"class_names": ["person", 3]}, "class names must be strings"),
    ({"threshold": 1.5}, "threshold must be in"),
    ({"threshold": "high"}, "threshold must be a number"),
    ({"max_fps": 0}, "max_fps must be a number > 0"),
    ({"device": "gpu"}, "device must be"),
    ({"on_prediction": "print"}, "on_prediction must be a callable"),
    ({"on_prediction": []}, "on_prediction must be a callable"),
    ({"status_update_handlers": [3]}, "status_update_handlers"),
    ({"status_interval_s": 0}, "status_interval_s must be > 0"),
    ({"video_identifiers": ["a", "b"]}, "2 video identifiers for 1 sources"),
    ({"video_identifiers": [" "]}, "must not be empty"),
    ({"stall_timeout_s": -1}, "stall_timeout_s must be > 0"),
    ({"stall_timeout": 5}, "unknown source option"),
    ({"watchdog": object()}, "watchdog= is not supported"),
    ({"tracker": object()}, "give tracker= or registry=, not both"),
]


@pytest.mark.parametrize(("override", "message"), BAD_ARGUMENTS)
def test_every_bad_argument_gets_its_error(clip: Path, override: dict, message: str) -> None:
    arguments = {
        "video_reference": str(clip),
        "class_names": "person",
        "on_prediction": print,
        "registry": StandInModel(),
        **override,
    }
    with pytest.raises(ConfigError, match=message):
        InferencePipeline.init(**arguments)
    # A failed init leaves nothing claimed behind: the same identifier is free.
    InferencePipeline.init(str(clip), "person", print, registry=StandInModel()).terminate()


def test_a_class_change_ends_the_old_class_and_new_ids_continue_above_the_old_ones(
    tmp_path: Path, tiny_tracker: object, pipelines: PipelineFactory
) -> None:
    from tracker import SessionRegistry

    clip = write_test_clip(tmp_path / "short.mp4", frames=5, size=(96, 64))
    holder: list[InferencePipeline] = []
    # Emit at once: the assertion below expects a detection on every frame.
    real = SessionRegistry(tiny_tracker, confirm_frames=1)

    class SwitchAfterFrameTwo(FrameProcessor):
        """The real registry; after frame 2 it changes the classes, as a user at that moment."""

        def process(
            self,
            image: np.ndarray,
            *,
            video_identifier: str,
            frame_id: int,
            class_names: tuple[str, ...],
            threshold: float,
            epoch: int,
        ) -> sv.Detections:
            detections = real.process(
                image,
                video_identifier=video_identifier,
                frame_id=frame_id,
                class_names=class_names,
                threshold=threshold,
                epoch=epoch,
            )
            if frame_id == 2:
                holder[0].set_class_names("circle")
            return detections

        def close(self, video_identifier: str) -> None:
            real.close(video_identifier)

    sink = RecordingSink()
    pipeline = pipelines(str(clip), "square", sink, registry=SwitchAfterFrameTwo(), threshold=0.0)
    holder.append(pipeline)
    pipeline.start()

    ids: dict[str, list[int]] = {"square": [], "circle": []}
    for detections, frame in sink.received:
        names = set(detections.data["class_name"])
        assert names == ({"square"} if frame.frame_id <= 2 else {"circle"}), frame.frame_id
        ids[names.pop()].extend(int(i) for i in detections.tracker_id)
    assert min(ids["circle"]) > max(ids["square"]), "ids continue above the old ones"
