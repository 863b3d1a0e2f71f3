"""Roboflow's SAM3 video workflow: the docs example runs unchanged but for its imports.

``ROBOFLOW_EXAMPLE`` is the example script as a Roboflow user has it (workflow JSON of the
``roboflow_core/sam3_video@v1`` block, ``InferencePipeline.init_with_workflow``,
``render_boxes``). The test swaps its two imports for ours, points its video at a local clip (as
a user's own reference would be), and runs it on the tiny checkpoint: ``model_id`` "sam3video"
means ``facebook/sam3``, which ``$SAM3_STREAM_MODEL`` points at the tiny directory.
``render_boxes`` needs a display, so it is replaced by a sink that records what it was given.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
import supervision as sv

import sinks
from pipeline import InferencePipeline
from pipeline.compat.workflow import WorkflowError, compile_workflow
from pipeline.errors import ConfigError
from tests.pipeline_helpers import StandInModel
from tests.sources_helpers import write_test_clip
from tests.waiting import RecordingSink

pytestmark = pytest.mark.timeout(180)

ROBOFLOW_EXAMPLE = textwrap.dedent(
    """
    # import the InferencePipeline interface
    from inference import InferencePipeline
    # import a built-in sink called render_boxes (sinks are the logic that happens after inference)
    from inference.core.interfaces.stream.sinks import render_boxes

    api_key = "YOUR_ROBOFLOW_API_KEY"

    workflow = {
        "version": "1.0",
        "inputs": [{"type": "InferenceImage", "name": "image"}],
        "steps": [
            {
                "type": "roboflow_core/sam3_video@v1",
                "name": "sam3",
                "images": "$inputs.image",
                "class_names": ["person", "forklift"],
                "model_id": "sam3video",
                "threshold": 0.5,
            }
        ],
        "outputs": [
            {"type": "JsonField", "name": "predictions", "selector": "$steps.sam3.predictions"}
        ],
    }

    # create an inference pipeline object
    pipeline = InferencePipeline.init_with_workflow(
        video_reference="https://media.roboflow.com/inference/people-walking.mp4",
        workflow_specification=workflow,
        on_prediction=render_boxes,
        api_key=api_key,
    )
    pipeline.start()  # start the pipeline
    pipeline.join()  # wait for the pipeline thread to finish
    """
)

OUR_IMPORTS = {
    "from inference import InferencePipeline": "from pipeline import InferencePipeline",
    "from inference.core.interfaces.stream.sinks import render_boxes": (
        "from sinks import render_boxes"
    ),
}
EXAMPLE_WORKFLOW = {
    "version": "1.0",
    "inputs": [{"type": "InferenceImage", "name": "image"}],
    "steps": [
        {
            "type": "roboflow_core/sam3_video@v1",
            "name": "sam3",
            "images": "$inputs.image",
            "class_names": ["person", "forklift"],
            "model_id": "sam3video",
            "threshold": 0.5,
        }
    ],
    "outputs": [
        {"type": "JsonField", "name": "predictions", "selector": "$steps.sam3.predictions"}
    ],
}


@pytest.fixture(scope="module")
def tiny_checkpoint_capped(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny checkpoint with ``max_num_objects: 3`` in its config, as the example cannot pass
    model options; random weights otherwise add objects every frame and slow the CPU down."""
    target = tmp_path_factory.mktemp("tiny-capped")
    for item in tiny_model_dir.iterdir():
        (target / item.name).symlink_to(item)
    (target / "config.json").unlink()
    config = json.loads((tiny_model_dir / "config.json").read_text())
    config["max_num_objects"] = 3
    (target / "config.json").write_text(json.dumps(config))
    return target


def test_the_docs_example_runs_on_the_tiny_checkpoint_with_only_its_imports_changed(
    tiny_checkpoint_capped: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clip = write_test_clip(tmp_path / "people-walking.mp4", frames=4, size=(96, 64))
    script = ROBOFLOW_EXAMPLE
    for theirs, ours in OUR_IMPORTS.items():
        assert theirs in script
        script = script.replace(theirs, ours)
    script = script.replace("https://media.roboflow.com/inference/people-walking.mp4", str(clip))
    changed = [
        (a, b)
        for a, b in zip(ROBOFLOW_EXAMPLE.splitlines(), script.splitlines(), strict=True)
        if a != b
    ]
    assert len(changed) == 3, "two imports and the video reference, nothing else"

    shown = RecordingSink()
    monkeypatch.setattr(sinks, "render_boxes", shown)  # no display here: record instead
    monkeypatch.setenv("SAM3_STREAM_MODEL", str(tiny_checkpoint_capped))
    exec(compile(script, "roboflow_example.py", "exec"), {"__name__": "__main__"})

    assert [frame.frame_id for frame in shown.frames] == [1, 2, 3, 4]
    for result, _ in shown.received:
        assert set(result) == {"predictions"}
        assert isinstance(result["predictions"], sv.Detections)
        assert set(result["predictions"].data.get("class_name", [])) <= {"person", "forklift"}


def test_workflow_results_are_keyed_by_output_name(tmp_path: Path) -> None:
    clip = write_test_clip(tmp_path / "clip.mp4", frames=3)
    spec = json.loads(json.dumps(EXAMPLE_WORKFLOW))
    spec["steps"][0]["class_names"] = "$inputs.concepts"
    spec["inputs"].append({"type": "WorkflowParameter", "name": "concepts", "default_value": "a"})
    spec["outputs"].append(
        {"type": "JsonField", "name": "masks", "selector": "$steps.sam3.predictions"}
    )
    sink, model = RecordingSink(), StandInModel()
    pipeline = InferencePipeline.init_with_workflow(
        str(clip), spec, sink, registry=model, workflows_parameters={"concepts": "pallet, box"}
    )
    pipeline.start()
    assert [set(result) for result, _ in sink.received] == [{"predictions", "masks"}] * 3
    assert {(c["class_names"], c["threshold"]) for c in model.calls} == {(("pallet", "box"), 0.5)}


def test_the_example_workflow_compiles_to_its_plan() -> None:
    plan = compile_workflow(EXAMPLE_WORKFLOW)
    assert (plan.step_name, plan.class_names, plan.threshold) == (
        "sam3",
        ("person", "forklift"),
        0.5,
    )
    assert (plan.model, plan.outputs) == ("facebook/sam3", ("predictions",))
    assert compile_workflow({"specification": EXAMPLE_WORKFLOW}) == plan
    assert compile_workflow(json.dumps(EXAMPLE_WORKFLOW)) == plan


def _edit(path: str, value: Any) -> dict:
    """The example workflow with one value replaced (``None`` deletes it)."""
    spec = json.loads(json.dumps(EXAMPLE_WORKFLOW))
    target: Any = spec
    *parents, last = path.split(".")
    for key in parents:
        target = target[int(key)] if key.isdigit() else target[key]
    if value is None:
        del target[int(last) if last.isdigit() else last]
    elif last.isdigit():
        target[int(last) : int(last) + 1] = [value]
    else:
        target[last] = value
    return spec


UNSUPPORTED = [
    (_edit("steps.0.type", "roboflow_core/sam2_video@v1"), "roboflow_core/sam2_video@v1"),
    (
        _edit("steps.1", {"type": "roboflow_core/bounding_box_visualization@v1", "name": "viz"}),
        "bounding_box_visualization",
    ),
    (_edit("steps.0.tracking_mode", "visual"), "visual mode requires points, boxes"),
    (_edit("steps.0.tracking_mode", "both"), "tracking_mode 'both' is not supported"),
    (_edit("steps.0.boxes", "$steps.detector.predictions"), "boxes: '$steps.detector"),
    (_edit("steps.0.points", [{"x": 1, "y": 1}]), "points is read only with tracking_mode"),
    (_edit("steps.0.model_id", "sam3trackervideo"), "'sam3trackervideo' is SAM3's visual"),
    (_edit("steps.0.class_names", None), "concept mode requires class_names"),
    (_edit("steps.0.class_names", 7), "class_names:"),
    (_edit("steps.0.prompt_mode", "sometimes"), "prompt_mode 'sometimes' is not one of"),
    (_edit("steps.0.prompt_interval", 0), "prompt_interval must be an integer >= 1"),
    (_edit("steps.0.prompt_interval", True), "prompt_interval must be an integer >= 1"),
    (_edit("steps.0.visual_model_id", 3), "visual_model_id must be"),
    (_edit("steps.0.colour", "red"), "unsupported field(s) colour"),
    (_edit("steps.0.threshold", 2), "threshold must be in"),
    (_edit("steps.0.images", "$inputs.frame"), "images must be '$inputs.image'"),
    (_edit("steps.0.class_names", "$inputs.classes"), "'$inputs.classes' has no value"),
    (_edit("inputs.0.type", "InferenceVideo"), "unsupported type 'InferenceVideo'"),
    (_edit("outputs.0.selector", "$steps.sam3.*"), "selector '$steps.sam3.*'"),
    (_edit("outputs.0.type", "CsvField"), "only JsonField"),
    (_edit("outputs", []), "no outputs"),
    (_edit("version", "2.0"), "version '2.0'"),
    (_edit("metadata", {"x": 1}), "unsupported workflow section(s): metadata"),
]


@pytest.mark.parametrize(("spec", "named"), UNSUPPORTED)
def test_anything_unsupported_is_refused_with_an_error_naming_it(spec: dict, named: str) -> None:
    with pytest.raises(WorkflowError) as caught:
        compile_workflow(spec)
    assert named in str(caught.value)


def test_workflow_arguments_that_do_not_apply_are_refused_by_name(tmp_path: Path) -> None:
    clip = str(write_test_clip(tmp_path / "clip.mp4", frames=2))
    with pytest.raises(WorkflowError, match="workflows_parameters name"):
        InferencePipeline.init_with_workflow(
            clip, EXAMPLE_WORKFLOW, print, registry=StandInModel(), workflows_parameters={"x": 1}
        )
    for name, value in (("threshold", 0.2), ("workflow_id", "my-flow")):
        with pytest.raises(ConfigError, match=f"{name}="):
            InferencePipeline.init_with_workflow(
                clip, EXAMPLE_WORKFLOW, print, registry=StandInModel(), **{name: value}
            )
