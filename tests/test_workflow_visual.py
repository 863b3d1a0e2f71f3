"""Issue 15, 2(b): Roboflow's visual-tracking step forms run on ``init_with_workflow``.

- ``roboflow_core/sam3_video@v1`` with ``tracking_mode: "visual"`` (``points``, ``boxes``) and
  ``roboflow_core/segment_anything_2_video@v1`` (``boxes``, ``model_id: "sam3trackervideo"``)
  compile to a plan carrying a ``VisualPrompter``; what cannot run is refused by name (a detector
  step feeding ``boxes``, SAM2 model ids, bad boxes and points);
- ``prompt_mode`` / ``prompt_interval``: ``first_frame`` prompts each stream once; a re-prompt
  refines the object a box matches (IoU >= 0.5, same id), makes a new object for an unmatched box
  and ends an object no box matched.

The prompter tests drive the real registry on the tiny checkpoint frame by frame. Its random
weights put masks anywhere, so where the tracker "saw" each object (the boxes the next match
uses) is given to ``after_frame`` by the test; everything else is the real thing. The pipeline
tests run whole workflows on a clip through ``InferencePipeline.init_with_workflow``.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import supervision as sv

from pipeline import InferencePipeline
from pipeline.compat.box_matching import box_iou, match_boxes
from pipeline.compat.image_workflow import is_image_workflow
from pipeline.compat.prompt_schedule import PromptSchedule
from pipeline.compat.visual_prompter import VisualPrompter
from pipeline.compat.workflow import WorkflowError, WorkflowPlan, compile_workflow
from pipeline.video_frame import VideoFrame
from tests.sources_helpers import write_test_clip
from tests.waiting import RecordingSink
from tracker import SessionRegistry, VisualPrompt

pytestmark = pytest.mark.timeout(180)

SAM3_VIDEO = "roboflow_core/sam3_video@v1"
SAM2_VIDEO = "roboflow_core/segment_anything_2_video@v1"
WIDTH, HEIGHT = 96, 64
FULL = (0.0, 0.0, float(WIDTH), float(HEIGHT))


def workflow(step_type: str = SAM3_VIDEO, **fields: Any) -> dict[str, Any]:
    """A one-step video workflow with parameter inputs ``boxes`` and ``points``."""
    step: dict[str, Any] = {"type": step_type, "name": "tracker", "images": "$inputs.image"}
    if step_type == SAM3_VIDEO:
        step["tracking_mode"] = "visual"
    else:
        step["model_id"] = "sam3trackervideo"
    step.update(fields)
    return {
        "version": "1.0",
        "inputs": [
            {"type": "InferenceImage", "name": "image"},
            {"type": "WorkflowParameter", "name": "boxes", "kind": ["object_detection_prediction"]},
            {"type": "WorkflowParameter", "name": "points"},
        ],
        "steps": [step],
        "outputs": [
            {"type": "JsonField", "name": "predictions", "selector": "$steps.tracker.predictions"}
        ],
    }


def detections(*boxes: tuple[float, ...], confidence: float = 0.9, name: str = "car") -> Any:
    return sv.Detections(
        xyxy=np.array(boxes, dtype=np.float32).reshape(-1, 4),
        confidence=np.full(len(boxes), confidence, dtype=np.float32),
        class_id=np.zeros(len(boxes), dtype=int),
        data={"class_name": np.array([name] * len(boxes))},
    )


def visual_plan(spec: dict[str, Any], **parameters: Any) -> WorkflowPlan:
    plan = compile_workflow(spec, parameters=parameters)
    assert plan.visual is not None and plan.prompter is not None
    return plan


# ------------------------------------------------------------------ compiling the two forms


def test_sam3_visual_step_takes_input_detections_as_boxes_and_points_as_one_object() -> None:
    plan = visual_plan(
        workflow(boxes="$inputs.boxes", points="$inputs.points"),
        boxes=detections((10, 10, 40, 40), (50, 5, 90, 60)),
        points=[{"x": 30, "y": 20}, {"x": 5, "y": 5, "positive": False}],
    )
    step = plan.visual
    assert step is not None
    assert [(box.index, box.xyxy, box.class_name) for box in step.boxes] == [
        (0, (10.0, 10.0, 40.0, 40.0), "car"),
        (1, (50.0, 5.0, 90.0, 60.0), "car"),
    ]
    assert step.boxes[0].confidence == pytest.approx(0.9)
    assert (step.points, step.labels) == (((30.0, 20.0), (5.0, 5.0)), (1, 0))
    assert step.schedule == PromptSchedule("first_frame", 30), "Roboflow's defaults"
    assert (plan.class_names, plan.threshold, plan.model) == ((), 0.5, "facebook/sam3")
    assert plan.outputs == ("predictions",)


@pytest.mark.parametrize(
    ("boxes", "parameters"),
    [
        ("$inputs.boxes", {"boxes": [[10, 10, 40, 40], [50, 5, 90, 60]]}),
        ("$inputs.boxes", {"boxes": np.array([[10, 10, 40, 40], [50, 5, 90, 60]])}),
        ([[10, 10, 40, 40], [50, 5, 90, 60]], {}),
    ],
)
def test_boxes_may_be_a_list_of_xyxy_from_an_input_or_literal(
    boxes: Any, parameters: dict[str, Any]
) -> None:
    plan = visual_plan(workflow(SAM2_VIDEO, boxes=boxes), **parameters)
    assert plan.visual is not None
    assert [(box.xyxy, box.class_name, box.confidence) for box in plan.visual.boxes] == [
        ((10.0, 10.0, 40.0, 40.0), "foreground", 1.0),
        ((50.0, 5.0, 90.0, 60.0), "foreground", 1.0),
    ]


@pytest.mark.parametrize(
    "points",
    [[{"x": 3, "y": 4}, {"x": 5, "y": 6, "positive": False}], [[3, 4], [5, 6, False]]],
)
def test_points_without_positive_are_positive_as_in_roboflow(points: list[Any]) -> None:
    plan = visual_plan(workflow(points=points))
    assert plan.visual is not None
    assert plan.visual.labels == (1, 0)
    assert plan.visual.boxes == ()


def test_threshold_drops_boxes_below_it_with_each_blocks_default() -> None:
    low_and_high = detections((0, 0, 10, 10), confidence=0.3)
    sam3 = visual_plan(workflow(boxes="$inputs.boxes"), boxes=low_and_high)
    sam2 = visual_plan(workflow(SAM2_VIDEO, boxes="$inputs.boxes"), boxes=low_and_high)
    explicit = visual_plan(workflow(boxes="$inputs.boxes", threshold=0.2), boxes=low_and_high)
    assert sam3.visual is not None and sam2.visual is not None and explicit.visual is not None
    assert (sam3.threshold, len(sam3.visual.boxes)) == (0.5, 0), "sam3_video: 0.5"
    assert (sam2.threshold, len(sam2.visual.boxes)) == (0.0, 1), "segment_anything_2_video: 0.0"
    assert len(explicit.visual.boxes) == 1


def test_prompt_mode_and_an_input_prompt_interval_are_honoured() -> None:
    spec = workflow(SAM2_VIDEO, boxes=[[0, 0, 5, 5]], prompt_mode="every_n_frames")
    spec["steps"][0]["prompt_interval"] = "$inputs.every"
    spec["inputs"].append({"type": "WorkflowParameter", "name": "every", "default_value": 4})
    plan = visual_plan(spec)
    assert plan.visual is not None
    assert plan.visual.schedule == PromptSchedule("every_n_frames", 4)


def test_plans_compare_by_their_visual_step_not_their_prompter() -> None:
    spec = workflow(boxes=[[0, 0, 5, 5]])
    first, second = compile_workflow(spec), compile_workflow(spec)
    assert first == second
    assert first.prompter is not second.prompter, "each plan prompts its own streams"


def test_video_workflows_with_visual_steps_are_not_image_workflows() -> None:
    assert not is_image_workflow(workflow(boxes="$inputs.boxes"))
    assert not is_image_workflow(workflow(SAM2_VIDEO, boxes="$inputs.boxes"))


@pytest.mark.parametrize("step_type", [SAM3_VIDEO, SAM2_VIDEO])
def test_boxes_from_an_upstream_detector_are_refused_naming_the_step(step_type: str) -> None:
    spec = workflow(step_type, boxes="$steps.detector.predictions")
    spec["steps"].insert(
        0,
        {
            "type": "roboflow_core/roboflow_object_detection_model@v2",
            "name": "detector",
            "images": "$inputs.image",
            "model_id": "yolov8n-640",
        },
    )
    with pytest.raises(WorkflowError) as caught:
        compile_workflow(spec)
    message = str(caught.value)
    assert "step 'tracker': boxes: '$steps.detector.predictions'" in message
    assert "reads step 'detector', an upstream detector sam3-stream does not run" in message
    assert "$inputs.boxes" in message, "says what to do instead"


@pytest.mark.parametrize(
    "model_id", [None, "sam2video/small", "sam2video/tiny", "sam2video/large", "sam3video"]
)
def test_the_sam2_video_step_runs_only_sam3trackervideo(model_id: str | None) -> None:
    spec = workflow(SAM2_VIDEO, boxes=[[0, 0, 5, 5]])
    if model_id is None:
        del spec["steps"][0]["model_id"]
    else:
        spec["steps"][0]["model_id"] = model_id
    with pytest.raises(WorkflowError) as caught:
        compile_workflow(spec)
    message = str(caught.value)
    assert message.startswith("step 'tracker': model_id: ")
    assert repr(model_id or "sam2video/small") in message
    assert "'sam3trackervideo'" in message


BAD_STEPS = [
    (workflow(), {}, "visual mode requires points, boxes, or both"),
    (workflow(boxes=[[0, 0, 0, 5]]), {}, "boxes[0]: (0.0, 0.0, 0.0, 5.0) has zero area"),
    (workflow(boxes=[[0, 0, 5, 5], [-1, 0, 5, 5]]), {}, "boxes[1]: (-1.0, 0.0, 5.0, 5.0) has a"),
    (workflow(boxes=[[0, 0, 5]]), {}, "boxes[0]: must be 4 finite numbers"),
    (workflow(boxes="$inputs.boxes"), {"boxes": "0,0,5,5"}, "boxes: must be sv.Detections or"),
    (workflow(points=[{"x": 1}]), {}, "points[0]: needs 'x' and 'y'"),
    (workflow(points=[[1, 2, "no"]]), {}, "points[0]: positive must be true or false"),
    (workflow(points=[[1, 2, 3, 4]]), {}, "points[0]: must be"),
    (workflow(points="$inputs.points"), {"points": 5}, "points: must be a list of points"),
    (workflow(points=[[1, 1]], prompt_mode="often"), {}, "prompt_mode: 'often' is not one of"),
    (workflow(points=[[1, 1]], prompt_interval=0), {}, "prompt_interval: must be an integer >= 1"),
    (workflow(points=[[1, 1]], threshold=3), {}, "threshold must be in [0, 1]"),
    (workflow(points=[[1, 1]], visual_model_id="sam2video/small"), {}, "visual_model_id: 'sam2"),
    (workflow(SAM2_VIDEO, boxes=[[0, 0, 5, 5]], points=[[1, 1]]), {}, "unsupported field(s) poi"),
    (workflow(SAM2_VIDEO, boxes="$inputs.missing"), {}, "'$inputs.missing' has no value"),
]


@pytest.mark.parametrize(("spec", "parameters", "named"), BAD_STEPS)
def test_bad_visual_steps_are_refused_naming_the_field(
    spec: dict[str, Any], parameters: dict[str, Any], named: str
) -> None:
    with pytest.raises(WorkflowError) as caught:
        compile_workflow(spec, parameters=parameters)
    assert "'tracker'" in str(caught.value)
    assert named in str(caught.value)


def test_two_video_steps_are_refused() -> None:
    spec = workflow(boxes=[[0, 0, 5, 5]])
    spec["steps"].append(dict(spec["steps"][0], name="second"))
    with pytest.raises(WorkflowError, match="exactly one video step"):
        compile_workflow(spec)


# ------------------------------------------------------------------ the rules, as plain values


def test_the_prompt_schedule_picks_the_first_every_nth_or_every_frame() -> None:
    def picked(schedule: PromptSchedule) -> list[int]:
        return [index for index in range(7) if schedule.is_due(index)]

    assert picked(PromptSchedule("first_frame")) == [0]
    assert picked(PromptSchedule("every_n_frames", 3)) == [0, 3, 6]
    assert picked(PromptSchedule("every_n_frames", 1)) == list(range(7))
    assert picked(PromptSchedule("every_frame")) == list(range(7))


def test_matching_refines_overlapping_objects_makes_new_ones_and_ends_the_rest() -> None:
    tracked = {4: (0.0, 0.0, 10.0, 10.0), 5: (40.0, 40.0, 60.0, 60.0), 6: (0.0, 0.0, 11.0, 10.0)}
    boxes = [(0.0, 0.0, 11.0, 10.0), (80.0, 0.0, 90.0, 10.0), (1.0, 0.0, 11.0, 10.0)]
    match = match_boxes(boxes, tracked)
    assert match.refined == {0: 6, 2: 4}, "each box and object once, the best IoU first"
    assert (match.new, match.ended) == ((1,), (5,))
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3)
    half = match_boxes([(0.0, 0.0, 10.0, 10.0)], {1: (0.0, 0.0, 10.0, 5.0)})
    assert half.refined == {0: 1}, "IoU exactly 0.5 refines"


# ------------------------------------------------------------------ the prompter on the registry


@pytest.fixture
def registry(tiny_tracker: object) -> SessionRegistry:
    """The real registry on the tiny checkpoint, three objects per stream."""
    return SessionRegistry(tiny_tracker, max_objects=3)


def frame(frame_id: int, identifier: str = "cam-1") -> VideoFrame:
    image = np.full((HEIGHT, WIDTH, 3), 24 + 8 * frame_id, np.uint8)  # (H, W, 3) BGR
    return VideoFrame(image, frame_id, datetime.now(), video_identifier=identifier)


def step_frame(
    prompter: VisualPrompter, registry: SessionRegistry, video_frame: VideoFrame
) -> sv.Detections:
    """What the pipeline does with one frame: prompt, process, report."""
    prompter.before_frame(video_frame, registry)
    return process_and_report(prompter, registry, video_frame)


def process_and_report(
    prompter: VisualPrompter, registry: SessionRegistry, video_frame: VideoFrame
) -> sv.Detections:
    found = registry.process(
        video_frame.image,
        video_identifier=video_frame.video_identifier,
        frame_id=video_frame.frame_id,
        class_names=(),
        threshold=0.0,
    )
    prompter.after_frame(video_frame, found)
    return found


def seen_at(**boxes: tuple[float, float, float, float]) -> sv.Detections:
    """Detections saying where the tracker saw each object (``id_<n>=xyxy``)."""
    return sv.Detections(
        xyxy=np.array(list(boxes.values()), dtype=np.float32).reshape(-1, 4),
        tracker_id=np.array([int(key.removeprefix("id_")) for key in boxes], dtype=int),
    )


def test_first_frame_prompts_each_stream_once(registry: SessionRegistry) -> None:
    plan = visual_plan(workflow(boxes=[[0, 0, 40, 40], [50, 10, 90, 60]], points=[[70, 30]]))
    prompter = plan.prompter
    assert prompter is not None
    for frame_id in (1, 2, 3):
        for identifier in ("cam-1", "cam-2"):
            found = step_frame(prompter, registry, frame(frame_id, identifier))
            made = prompter.objects(identifier)
            assert set(found.tracker_id if found.tracker_id is not None else []) <= (
                made.tracker_ids
            )
    for identifier in ("cam-1", "cam-2"):
        made = prompter.objects(identifier)
        assert made.prompts == 1
        assert len(made.boxes) == 2 and made.point_object is not None
        assert registry.stats(identifier).visual_objects == 3


def test_a_reprompt_refines_matched_objects_makes_new_ones_and_ends_the_rest(
    registry: SessionRegistry,
) -> None:
    left, right = (0.0, 0.0, 48.0, 64.0), (48.0, 0.0, 96.0, 64.0)
    plan = visual_plan(
        workflow(
            boxes=[left, right], points=[[40, 30]], prompt_mode="every_n_frames", prompt_interval=2
        )
    )
    prompter = plan.prompter
    assert prompter is not None
    prompter.before_frame(frame(1), registry)
    first = prompter.objects("cam-1")
    a, b = sorted(first.boxes)
    assert first.boxes == {a: left, b: right}
    point = first.point_object
    process_and_report(prompter, registry, frame(1))
    step_frame(prompter, registry, frame(2))
    assert prompter.objects("cam-1").prompts == 1, "frame 2 is not due"
    # Where the tracker saw them on frame 2: a near its box, b far from the right half.
    seen = seen_at(**{f"id_{a}": (2, 0, 50, 64), f"id_{b}": (0, 0, 20, 20)})
    prompter.after_frame(frame(2), seen)

    prompter.before_frame(frame(3), registry)

    again = prompter.objects("cam-1")
    assert again.prompts == 2
    assert again.boxes[a] == left, "the left box refined a: same id"
    (c,) = set(again.boxes) - {a}
    assert again.boxes[c] == right, "the right box matched nothing: a new object"
    assert c not in (a, b, point) and c > max(a, b, point or 0), "a new id, never reused"
    assert again.point_object == point, "the points refine their object"
    found = process_and_report(prompter, registry, frame(3))
    with pytest.raises(KeyError):
        registry.remove_object("cam-1", b)  # already ended by the re-prompt
    assert b not in set(found.tracker_id if found.tracker_id is not None else [])
    assert registry.stats("cam-1").visual_objects == 3


def test_an_object_the_tracker_ended_is_prompted_again_under_a_new_id(
    registry: SessionRegistry,
) -> None:
    prompter = visual_plan(workflow(boxes=[FULL], prompt_mode="every_frame")).prompter
    assert prompter is not None
    step_frame(prompter, registry, frame(1))
    (old,) = prompter.objects("cam-1").boxes
    registry.remove_object("cam-1", old)  # as the lost rule would

    step_frame(prompter, registry, frame(2))

    (new,) = prompter.objects("cam-1").boxes
    assert new != old
    assert registry.stats("cam-1").visual_objects == 1


def test_a_box_off_the_frame_is_skipped_and_named_while_the_others_run(
    registry: SessionRegistry,
) -> None:
    prompter = visual_plan(workflow(boxes=[[0, 0, 40, 40], [50, 10, 120, 60]])).prompter
    assert prompter is not None
    with pytest.raises(ValueError) as caught:
        prompter.before_frame(frame(1), registry)
    assert str(caught.value).startswith("step 'tracker': boxes[1]: (50.0, 10.0, 120.0, 60.0) is")
    assert "outside the 96x64 frame" in str(caught.value)
    assert len(prompter.objects("cam-1").boxes) == 1
    assert registry.stats("cam-1").visual_objects == 1


def test_a_full_object_budget_is_named(tiny_tracker: object) -> None:
    registry = SessionRegistry(tiny_tracker, max_objects=1)
    prompter = visual_plan(workflow(boxes=[[0, 0, 40, 40], [50, 10, 90, 60]])).prompter
    assert prompter is not None
    with pytest.raises(ValueError, match=r"step 'tracker': boxes\[1\]: max_objects: "):
        prompter.before_frame(frame(1), registry)
    assert len(prompter.objects("cam-1").boxes) == 1


# ------------------------------------------------------------------ whole workflows on a clip


class RecordingRegistry(SessionRegistry):
    """The real registry, keeping what the workflow asked of it: ``("add", frame_id,
    tracker_id, ids)`` per prompt and ``("remove", tracker_id)`` per removal."""

    def __init__(self, tracker: object) -> None:
        super().__init__(tracker)
        self.asked: list[tuple[Any, ...]] = []

    def add_prompt(self, video_identifier: str, prompt: VisualPrompt) -> list[int]:
        ids = super().add_prompt(video_identifier, prompt)
        self.asked.append(("add", prompt.frame_id, prompt.tracker_id, tuple(ids)))
        return ids

    def remove_object(self, video_identifier: str, tracker_id: int) -> None:
        self.asked.append(("remove", tracker_id))
        super().remove_object(video_identifier, tracker_id)


def run_workflow(
    tmp_path: Path, tiny_tracker: object, spec: dict[str, Any], frames: int, **parameters: Any
) -> tuple[RecordingRegistry, dict[int, sv.Detections]]:
    """Run ``spec`` on a flat clip of ``frames`` frames; the registry and each frame's output."""
    clip = write_test_clip(tmp_path / "clip.mp4", frames=frames, size=(WIDTH, HEIGHT))
    registry, sink = RecordingRegistry(tiny_tracker), RecordingSink()
    pipeline = InferencePipeline.init_with_workflow(
        str(clip), spec, sink, registry=registry, max_objects=3, workflows_parameters=parameters
    )
    try:
        pipeline.start()  # returns when the clip has ended
    finally:
        pipeline.terminate()
    outputs = {frame.frame_id: result["predictions"] for result, frame in sink.received}
    assert sorted(outputs) == list(range(1, frames + 1))
    return registry, outputs


def ids_in(found: sv.Detections) -> set[int]:
    return set() if found.tracker_id is None else {int(i) for i in found.tracker_id}


def test_a_first_frame_workflow_prompts_once_and_its_objects_keep_their_ids(
    tmp_path: Path, tiny_tracker: object
) -> None:
    spec = workflow(boxes="$inputs.boxes", points="$inputs.points")
    registry, outputs = run_workflow(
        tmp_path,
        tiny_tracker,
        spec,
        frames=4,
        boxes=detections((4, 4, 40, 40), (50, 10, 90, 60), name="parcel"),
        points=[{"x": 70, "y": 30}],
    )

    adds = [entry for entry in registry.asked if entry[0] == "add"]
    assert [(frame_id, refines) for _, frame_id, refines, _ in adds] == [(1, None)] * 3
    assert registry.asked == adds, "nothing removed"
    box_a, box_b, point = (ids[0] for *_, ids in adds)
    made = {box_a, box_b, point}
    assert len(made) == 3
    seen = set().union(*(ids_in(found) for found in outputs.values()))
    assert seen and seen <= made, f"outputs carry the prompted ids only, saw {seen}"
    for found in outputs.values():
        names = dict(zip(ids_in(found), found.data.get("class_name", []), strict=False))
        assert all(names[i] == "parcel" for i in names if i in (box_a, box_b))
        assert list(found.data["prediction_type"]) == ["instance-segmentation"] * len(found)


def test_an_every_n_frames_workflow_refines_matches_makes_new_objects_and_ends_the_rest(
    tmp_path: Path, tiny_tracker: object
) -> None:
    small = (8.0, 8.0, 24.0, 24.0)
    spec = workflow(
        SAM2_VIDEO, boxes="$inputs.boxes", prompt_mode="every_n_frames", prompt_interval=2
    )
    registry, outputs = run_workflow(
        tmp_path, tiny_tracker, spec, frames=5, boxes=[list(FULL), list(small)]
    )

    (_, _, _, (a,)), (_, _, _, (b,)) = registry.asked[:2]
    assert registry.asked[:2] == [("add", 1, None, (a,)), ("add", 1, None, (b,))]
    # The premise of what follows: the tiny checkpoint's masks fill these flat frames, so on
    # frame 2 both objects were seen covering the frame (the full box matches a, not b).
    frame_2 = dict(zip(ids_in(outputs[2]), outputs[2].xyxy, strict=False))
    assert {a, b} <= set(frame_2), "premise: both objects seen on frame 2"
    assert all(box_iou(tuple(frame_2[i]), FULL) > 0.9 for i in (a, b)), "premise: full masks"

    c, d = b + 1, b + 2  # the next ids the stream hands out
    assert registry.asked[2:] == [
        ("remove", b),  # frame 3: no box matches b any more
        ("add", 3, a, (a,)),  # the full box refines a: same id
        ("add", 3, None, (c,)),  # the small box matches nothing: a new object
        ("remove", c),  # frame 5: the same again for c
        ("add", 5, a, (a,)),
        ("add", 5, None, (d,)),
    ]
    assert all(b not in ids_in(outputs[k]) for k in (3, 4, 5)), "an ended object stays ended"
    assert c not in ids_in(outputs[5])
    assert a in set().union(*(ids_in(outputs[k]) for k in (3, 4, 5))), "a keeps its id"
