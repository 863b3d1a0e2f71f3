"""Roboflow code beyond the docs example: its data keys, its sam3_video step fields, its options.

Issue 13 rows, each run as Roboflow code would call it, with only the imports changed:

- R14: ``detections.data["detection_id"]``, ``["prediction_type"]`` and the parent/image keys on
  every result, from ``init`` and from ``init_with_workflow`` (tiny SAM3 checkpoint, PyAV clip);
- R15: a ``sam3_video`` step that spells out the block's defaulted fields runs; ``class_names: []``
  gives empty predictions without running the model; visual fields misused in concept mode are
  refused, saying what to set (visual tracking itself: ``tests/test_workflow_visual.py``);
- W6: ``api_key`` and the harmless Roboflow options are accepted, the others refused by name
  with the reason and what to use instead.

The "model never called" tests use ``StandInModel``, a stand-in that records calls (it is not
SAM3): the point is that it receives no call at all. Everything else runs the tiny checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import supervision as sv

from pipeline import InferencePipeline
from pipeline.compat.roboflow_fields import ROBOFLOW_DATA_KEYS, add_roboflow_fields
from pipeline.compat.roboflow_options import ACCEPTED_NO_OPS, ROBOFLOW_ONLY_OPTIONS
from pipeline.compat.workflow import WorkflowError, compile_workflow
from pipeline.errors import ConfigError
from tests.pipeline_helpers import StandInModel
from tests.sources_helpers import write_test_clip
from tests.waiting import RecordingSink

pytestmark = pytest.mark.timeout(180)

CLIP_SIZE = (96, 64)  # (width, height)
_OTHER_ROWS: set[str] = set()
"""Refused options whose message need not name an alternative (none since sink_mode landed)."""


def sam3_workflow(**step_fields: Any) -> dict[str, Any]:
    """Roboflow's SAM3 video workflow, its step's fields overridden by ``step_fields``."""
    step = {
        "type": "roboflow_core/sam3_video@v1",
        "name": "sam3",
        "images": "$inputs.image",
        "class_names": ["person", "forklift"],
        "model_id": "sam3video",
        "threshold": 0.0,
    }
    step.update(step_fields)
    return {
        "version": "1.0",
        "inputs": [{"type": "InferenceImage", "name": "image"}],
        "steps": [step],
        "outputs": [
            {"type": "JsonField", "name": "predictions", "selector": "$steps.sam3.predictions"}
        ],
    }


@pytest.fixture
def clip(tmp_path: Path) -> str:
    return str(write_test_clip(tmp_path / "clip.mp4", frames=3, size=CLIP_SIZE))


@pytest.fixture
def tiny_registry(tiny_tracker: object) -> Any:
    """The real registry on the tiny checkpoint, emitting tracks at once (random weights,
    threshold 0: objects on every frame)."""
    from tracker import SessionRegistry

    return SessionRegistry(tiny_tracker, confirm_frames=1)


def run(pipeline: InferencePipeline) -> None:
    try:
        pipeline.start()  # blocks until the clip ends
    finally:
        pipeline.terminate()


def assert_roboflow_fields(detections: sv.Detections, *, parent_id: str) -> None:
    """What Roboflow's sam3_video block puts in ``data``, checked the way its code reads it."""
    count = len(detections)
    width, height = CLIP_SIZE
    for key in ROBOFLOW_DATA_KEYS:
        assert len(detections.data[key]) == count, key
    ids = list(detections.data["detection_id"])
    assert all(isinstance(each, str) and each for each in ids)
    assert len(set(ids)) == count, "detection ids are unique within a frame"
    assert list(detections.data["prediction_type"]) == ["instance-segmentation"] * count
    assert list(detections.data["parent_id"]) == [parent_id] * count
    assert list(detections.data["root_parent_id"]) == [parent_id] * count
    for key in (
        "image_dimensions",
        "parent_dimensions",
        "root_parent_dimensions",
    ):
        assert np.asarray(detections.data[key]).tolist() == [[height, width]] * count, key
    for key in ("parent_coordinates", "root_parent_coordinates"):
        assert np.asarray(detections.data[key]).tolist() == [[0, 0]] * count, key


# ------------------------------------------------------------------ R14: data keys


def test_init_results_carry_roboflow_detection_ids_and_prediction_type(
    clip: str, tiny_registry: Any
) -> None:
    sink = RecordingSink()
    run(InferencePipeline.init(clip, "person", sink, registry=tiny_registry, threshold=0.0))

    assert [frame.frame_id for frame in sink.frames] == [1, 2, 3]
    results = [detections for detections, _ in sink.received]
    assert sum(len(each) for each in results) > 0, "threshold 0 on random weights finds objects"
    for detections in results:
        assert_roboflow_fields(detections, parent_id="image")
    every_id = [i for detections in results for i in detections.data["detection_id"]]
    assert len(set(every_id)) == len(every_id), "a new detection_id per detection per frame"


def test_workflow_results_carry_the_image_input_name_as_parent_id(
    clip: str, tiny_registry: Any
) -> None:
    spec = sam3_workflow(images="$inputs.frame")
    spec["inputs"] = [{"type": "WorkflowImage", "name": "frame"}]
    sink = RecordingSink()
    run(
        InferencePipeline.init_with_workflow(
            clip, spec, sink, registry=tiny_registry, image_input_name="frame"
        )
    )

    assert len(sink.received) == 3
    results = [result["predictions"] for result, _ in sink.received]
    assert sum(len(each) for each in results) > 0
    for detections in results:
        assert_roboflow_fields(detections, parent_id="frame")


def test_an_empty_result_has_every_roboflow_key_as_an_empty_array() -> None:
    frame = type("Frame", (), {"image": np.zeros((64, 96, 3), np.uint8)})()
    detections = add_roboflow_fields(sv.Detections.empty(), frame)
    assert all(len(detections.data[key]) == 0 for key in ROBOFLOW_DATA_KEYS)
    assert np.asarray(detections.data["image_dimensions"]).shape == (0, 2)


# ------------------------------------------------------------------ R15: step fields


def test_a_step_spelling_out_roboflows_defaulted_fields_runs_on_the_tiny_checkpoint(
    clip: str, tiny_registry: Any
) -> None:
    spec = sam3_workflow(
        tracking_mode="concept",
        prompt_mode="first_frame",
        prompt_interval=30,
        visual_model_id="sam3trackervideo",
        points=None,
        boxes=None,
    )
    sink = RecordingSink()
    run(InferencePipeline.init_with_workflow(clip, spec, sink, registry=tiny_registry))

    assert [frame.frame_id for frame in sink.frames] == [1, 2, 3]
    found = [result["predictions"] for result, _ in sink.received]
    assert sum(len(each) for each in found) > 0
    assert {name for each in found for name in each.data["class_name"]} <= {"person", "forklift"}


@pytest.mark.parametrize(
    "fields",
    [
        {"prompt_mode": "every_n_frames", "prompt_interval": "$inputs.every"},
        {"prompt_mode": "every_frame", "visual_model_id": "$inputs.tracker_model"},
    ],
)
def test_visual_fields_may_be_selectors_and_are_ignored_in_concept_mode(fields: dict) -> None:
    plan = compile_workflow(sam3_workflow(**fields))
    assert plan == compile_workflow(sam3_workflow())


@pytest.mark.parametrize("empty", [[], "", " , ", ["", " "]])
def test_empty_class_names_compile_to_a_plan_with_no_concepts(empty: Any) -> None:
    assert compile_workflow(sam3_workflow(class_names=empty)).class_names == ()


def test_empty_class_names_give_empty_predictions_without_calling_the_model(clip: str) -> None:
    model, sink = StandInModel(), RecordingSink()
    pipeline = InferencePipeline.init_with_workflow(
        clip, sam3_workflow(class_names=[]), sink, registry=model
    )
    run(pipeline)

    assert model.calls == [], "the stand-in model was never asked"
    assert [frame.frame_id for frame in sink.frames] == [1, 2, 3]
    for result, _ in sink.received:
        assert set(result) == {"predictions"}
        assert len(result["predictions"]) == 0
        assert_roboflow_fields(result["predictions"], parent_id="image")
    assert pipeline.status().sources[0].frames_processed == 3


def test_class_names_null_or_absent_is_refused_as_roboflow_does() -> None:
    absent = sam3_workflow()
    del absent["steps"][0]["class_names"]
    for spec in (sam3_workflow(class_names=None), absent):
        with pytest.raises(WorkflowError, match="concept mode requires class_names"):
            compile_workflow(spec)


def test_init_still_refuses_empty_class_names(clip: str) -> None:
    with pytest.raises(ConfigError) as caught:
        InferencePipeline.init(clip, [], print, registry=StandInModel())
    assert caught.value.field == "class_names"


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"tracking_mode": "visual"}, "visual mode requires points, boxes, or both"),
        ({"points": [{"x": 1, "y": 1, "positive": True}]}, "set tracking_mode 'visual'"),
        ({"boxes": [[0, 0, 5, 5]]}, "set tracking_mode 'visual'"),
        ({"boxes": "$steps.detector.predictions"}, "reads step 'detector', an upstream detector"),
        ({"model_id": "sam3trackervideo"}, "is SAM3's visual tracker"),
    ],
)
def test_visual_fields_misused_are_refused_saying_what_to_set(
    clip: str, fields: dict, named: str
) -> None:
    with pytest.raises(WorkflowError) as caught:
        InferencePipeline.init_with_workflow(
            clip, sam3_workflow(**fields), print, registry=StandInModel()
        )
    assert named in str(caught.value)


# ------------------------------------------------------------------ W6: options


def test_api_key_is_accepted_by_both_factories(clip: str) -> None:
    model, sink = StandInModel(), RecordingSink()
    run(InferencePipeline.init(clip, "person", sink, registry=model, api_key="rf_key"))
    run(
        InferencePipeline.init_with_workflow(
            clip, json.dumps(sam3_workflow()), sink, api_key="rf_key", registry=model
        )
    )
    assert len(sink.received) == 6


@pytest.mark.parametrize("name", sorted(ACCEPTED_NO_OPS))
def test_harmless_roboflow_options_are_accepted_by_both_factories(clip: str, name: str) -> None:
    value = {
        "api_key": "rf_key",
        "video_metadata_input_name": "video_metadata",
        "disable_sinks": True,
    }.get(name, 4)
    options: dict[str, Any] = {name: value}
    model, sink = StandInModel(), RecordingSink()
    run(InferencePipeline.init(clip, "person", sink, registry=model, **options))
    run(
        InferencePipeline.init_with_workflow(clip, sam3_workflow(), sink, registry=model, **options)
    )
    assert len(sink.received) == 6


@pytest.mark.parametrize("name", sorted(ROBOFLOW_ONLY_OPTIONS))
def test_roboflow_only_options_are_refused_naming_the_option_and_what_to_do(
    clip: str, name: str
) -> None:
    for factory, arguments in (
        (InferencePipeline.init, (clip, "person", print)),
        (InferencePipeline.init_with_workflow, (clip, sam3_workflow(), print)),
    ):
        with pytest.raises(ConfigError) as caught:
            options: dict[str, Any] = {name: object()}
            factory(*arguments, registry=StandInModel(), **options)
        assert caught.value.field == name
        message = str(caught.value)
        assert message.startswith(f"{name}= is not supported: ")
        if name not in _OTHER_ROWS:
            assert ";" in message, "the reason, then what to use instead"


def test_batch_collection_timeout_points_at_sink_mode() -> None:
    reason = ROBOFLOW_ONLY_OPTIONS["batch_collection_timeout"]
    assert "sink_mode" in reason and "never with multi-source" not in reason


@pytest.mark.parametrize(
    ("factory", "instead"),
    [("init_with_yolo_world", "class_names=classes"), ("init_with_custom_logic", "on_prediction")],
)
def test_roboflows_other_factories_are_refused_naming_what_to_call(
    clip: str, factory: str, instead: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        getattr(InferencePipeline, factory)(video_reference=clip, classes=["person"])
    assert caught.value.field == factory
    assert str(caught.value).startswith(f"{factory}() is not supported: ")
    assert instead in str(caught.value)
