"""The part of Roboflow's workflow JSON that sam3-stream runs: one ``sam3_video`` step.

``InferencePipeline.init_with_workflow`` accepts the specification of the SAM3 video example in
Roboflow's docs::

    {
        "version": "1.0",
        "inputs": [{"type": "InferenceImage", "name": "image"}],
        "steps": [{
            "type": "roboflow_core/sam3_video@v1",
            "name": "sam3",
            "images": "$inputs.image",
            "class_names": ["person", "forklift"],   # or "person, forklift"
            "model_id": "sam3video",
            "threshold": 0.5,
        }],
        "outputs": [
            {"type": "JsonField", "name": "predictions", "selector": "$steps.sam3.predictions"}
        ],
    }

What is supported, in one place (anything else is refused with a ``WorkflowError`` naming it):

- inputs: one image input (``InferenceImage`` / ``WorkflowImage``) named ``image_input_name``;
  parameters (``InferenceParameter`` / ``WorkflowParameter``, with an optional
  ``default_value``) that the step's fields may name as ``$inputs.<name>``, their values given by
  ``workflows_parameters``; ``WorkflowVideoMetadata`` inputs are accepted and unused (every frame
  carries its metadata anyway).
- steps: exactly one video step, in one of three forms:

  - ``roboflow_core/sam3_video@v1`` with ``tracking_mode`` "concept" (the default; text
    prompts). ``model_id`` ``sam3video`` (the default) and ``facebook/sam3`` mean
    ``facebook/sam3``; a local directory holding a SAM3 video checkpoint is taken as it is.
    ``class_names`` is required (Roboflow's rule); an empty list, ``""`` or only blanks give empty
    predictions on every frame without running the model, as Roboflow's block does. The visual
    fields with their defaults (``visual_model_id``, ``prompt_mode``, ``prompt_interval``,
    ``points: null``, ``boxes: null``) are accepted and, as in Roboflow's concept mode, ignored;
    ``points`` or ``boxes`` given, or ``model_id: "sam3trackervideo"``, are refused, pointing at
    ``tracking_mode: "visual"``.
  - ``roboflow_core/sam3_video@v1`` with ``tracking_mode: "visual"``, and
  - ``roboflow_core/segment_anything_2_video@v1`` (``model_id: "sam3trackervideo"`` only):
    box/point-prompted tracking with SAM3's visual tracker on the same weights; fields, defaults
    and ``prompt_mode`` as ``pipeline.compat.visual_workflow`` and
    ``pipeline.compat.prompt_schedule`` describe them. ``boxes`` / ``points`` come from a workflow
    input or a literal; a selector to an upstream step (a detector) is refused, naming it. The
    plan carries a ``VisualPrompter`` (``plan.prompter``) that prompts each stream's session;
    predictions are its objects, with the ids the registry gave them.
- outputs: ``JsonField`` outputs selecting ``$steps.<step>.predictions``; ``on_prediction``
  receives ``{output name: sv.Detections}``.

A workflow of SAM3's image blocks (``roboflow_core/sam3@v1``, ``sam3_interactive@v1``,
``polygon_visualization@v1``) is the other kind sam3-stream runs: ``pipeline.compat.image_workflow``
compiles it, and the two kinds do not mix in one workflow.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import supervision as sv

from pipeline.compat.prompt_schedule import PROMPT_MODES
from pipeline.compat.visual_prompter import VisualPrompter
from pipeline.compat.visual_workflow import (
    SAM2_VIDEO_BLOCK,
    SAM2_VIDEO_FIELDS,
    VISUAL_MODEL_ID,
    VisualStep,
    compile_sam2_video,
    compile_sam3_visual,
    upstream_selector,
)
from pipeline.errors import ConfigError
from tracker.inputs import check_threshold, normalise_class_names
from tracker.weights import REAL_MODEL

SAM3_VIDEO_BLOCK = "roboflow_core/sam3_video@v1"
VIDEO_BLOCKS = (SAM3_VIDEO_BLOCK, SAM2_VIDEO_BLOCK)
MODEL_ALIASES = {"sam3video": REAL_MODEL, REAL_MODEL: REAL_MODEL}
IMAGE_INPUT_TYPES = ("InferenceImage", "WorkflowImage")
PARAMETER_INPUT_TYPES = ("InferenceParameter", "WorkflowParameter")
IGNORED_INPUT_TYPES = ("WorkflowVideoMetadata",)
_SAM3_STEP_FIELDS = {
    "type",
    "name",
    "images",
    "class_names",
    "threshold",
    "model_id",
    "tracking_mode",
    "visual_model_id",
    "prompt_mode",
    "prompt_interval",
    "points",
    "boxes",
}
TRACKING_MODES = ("concept", "visual")
_OUTPUT_FIELDS = {"type", "name", "selector", "coordinates_system"}
_DEFAULT_THRESHOLD = 0.5


class WorkflowError(ConfigError):
    """The workflow specification uses something sam3-stream does not run."""


@dataclass(frozen=True)
class WorkflowPlan:
    """What a supported workflow asks for, resolved to plain values.

    Attributes:
        step_name: the ``sam3_video`` step's name.
        class_names: the concepts, normalised; empty: empty predictions, the model never runs.
        threshold: minimum detection score.
        model: the model to load (``facebook/sam3`` or a local directory).
        outputs: names of the outputs, each receiving the step's predictions.
        prompter: a visual step's prompts, put to each stream's session before its frames
            (``pipeline.loop.contracts.FramePrompter``); None for concept tracking. It holds
            per-stream state, so it takes no part in comparing plans: ``visual`` does.
        visual: the visual step the prompter runs, None for concept tracking.
    """

    step_name: str
    class_names: tuple[str, ...]
    threshold: float
    model: str
    outputs: tuple[str, ...]
    prompter: VisualPrompter | None = field(default=None, compare=False, repr=False)
    visual: VisualStep | None = None

    def result(self, detections: sv.Detections) -> dict[str, sv.Detections]:
        """The dict ``on_prediction`` receives for one frame: ``{output name: detections}``."""
        return {name: detections for name in self.outputs}


def compile_workflow(
    specification: Mapping[str, Any] | str,
    *,
    image_input_name: str = "image",
    parameters: Mapping[str, Any] | None = None,
) -> WorkflowPlan:
    """Check ``specification`` and resolve it to a ``WorkflowPlan``.

    Args:
        specification: the workflow dict (or its JSON text); ``{"specification": {...}}`` as the
            Roboflow HTTP API wraps it is accepted too.
        image_input_name: the input the frames are bound to (Roboflow's default: ``image``).
        parameters: values of the workflow's parameter inputs (``workflows_parameters``).

    Raises:
        WorkflowError: naming the first unsupported or invalid part.

    Examples:
        >>> plan = compile_workflow({
        ...     "inputs": [{"type": "InferenceImage", "name": "image"}],
        ...     "steps": [{"type": "roboflow_core/sam3_video@v1", "name": "sam3",
        ...                "images": "$inputs.image", "class_names": "person, forklift"}],
        ...     "outputs": [{"type": "JsonField", "name": "predictions",
        ...                  "selector": "$steps.sam3.predictions"}]})
        >>> plan.class_names, plan.model, plan.outputs
        (('person', 'forklift'), 'facebook/sam3', ('predictions',))
    """
    spec = specification_dict(specification)
    version = spec.get("version")
    if version is not None and not str(version).startswith("1"):
        raise WorkflowError(f"workflow version {version!r} is not supported (only 1.x)")
    unknown = sorted(set(spec) - {"version", "inputs", "steps", "outputs"})
    if unknown:
        raise WorkflowError(f"unsupported workflow section(s): {', '.join(unknown)}")
    values = _parameter_values(object_list(spec, "inputs"), image_input_name, parameters or {})
    step = _single_step(object_list(spec, "steps"))
    name = step["name"]
    images = step.get("images")
    if images != f"$inputs.{image_input_name}":
        raise WorkflowError(
            f"step {name!r}: images must be '$inputs.{image_input_name}', got {images!r}"
        )
    outputs = _outputs(object_list(spec, "outputs"), name)
    if step["type"] == SAM2_VIDEO_BLOCK or step.get("tracking_mode") == "visual":
        visual = _visual_step(step, values)
        return WorkflowPlan(
            step_name=name,
            class_names=(),
            threshold=visual.threshold,
            model=visual.model,
            outputs=outputs,
            prompter=VisualPrompter(visual),
            visual=visual,
        )
    _check_concept_mode(step)
    return WorkflowPlan(
        step_name=name,
        class_names=_class_names(name, _resolve(step.get("class_names"), values, name)),
        threshold=_threshold(name, _resolve(step.get("threshold"), values, name)),
        model=_model(name, _resolve(step.get("model_id"), values, name)),
        outputs=outputs,
    )


def _visual_step(step: Mapping[str, Any], values: Mapping[str, Any]) -> VisualStep:
    """A ``sam3_video`` step in visual mode or a ``segment_anything_2_video`` step, resolved."""
    name = step["name"]
    compile_step = compile_sam2_video if step["type"] == SAM2_VIDEO_BLOCK else compile_sam3_visual
    try:
        return compile_step(step, lambda value: _resolve(value, values, name))
    except ValueError as error:
        raise WorkflowError(f"step {name!r}: {error}") from None


def _check_concept_mode(step: Mapping[str, Any]) -> None:
    """Concept tracking: the visual fields' values checked and ignored (Roboflow's concept mode
    ignores them too); prompts given here are refused, pointing at visual mode."""
    name = step["name"]
    mode = step.get("tracking_mode", "concept")
    if mode not in TRACKING_MODES:
        raise WorkflowError(
            f"step {name!r}: tracking_mode {mode!r} is not supported (only 'concept': text "
            "prompts in class_names, or 'visual': points and boxes)"
        )
    for prompt in ("points", "boxes"):
        if step.get(prompt) is not None:
            raise WorkflowError(
                f"step {name!r}: {prompt} is read only with tracking_mode 'visual' (concept "
                f"mode would ignore it): set tracking_mode 'visual', or remove {prompt}"
            )
    if step.get("model_id") == VISUAL_MODEL_ID:
        raise WorkflowError(
            f"step {name!r}: model_id {VISUAL_MODEL_ID!r} is SAM3's visual tracker: for box and "
            "point prompts set tracking_mode 'visual' (its model is visual_model_id); concept "
            "mode runs 'sam3video'"
        )
    visual_model = step.get("visual_model_id")
    if visual_model is not None and not isinstance(visual_model, str):
        raise WorkflowError(
            f"step {name!r}: visual_model_id must be a model id or an '$inputs.' selector, got "
            f"{visual_model!r}"
        )
    prompt_mode = step.get("prompt_mode", PROMPT_MODES[0])
    if prompt_mode not in PROMPT_MODES:
        raise WorkflowError(
            f"step {name!r}: prompt_mode {prompt_mode!r} is not one of {', '.join(PROMPT_MODES)}"
        )
    interval = step.get("prompt_interval")
    if interval is not None and not _is_selector(interval) and not _is_positive_int(interval):
        raise WorkflowError(
            f"step {name!r}: prompt_interval must be an integer >= 1 or an '$inputs.' selector, "
            f"got {interval!r}"
        )


def _is_selector(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("$inputs.")


def _is_positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def specification_dict(specification: Mapping[str, Any] | str) -> Mapping[str, Any]:
    """The workflow dict from a dict, its JSON text, or ``{"specification": {...}}``."""
    if isinstance(specification, str):
        try:
            specification = json.loads(specification)
        except json.JSONDecodeError as error:
            raise WorkflowError(f"workflow specification is not valid JSON: {error}") from None
    if not isinstance(specification, Mapping):
        raise WorkflowError(
            f"workflow specification must be a dict, got {type(specification).__name__}"
        )
    if set(specification) == {"specification"}:
        return specification_dict(specification["specification"])
    return specification


def object_list(spec: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    """``spec[key]`` when it is a list of objects (``inputs``, ``steps``, ``outputs``)."""
    items = spec.get(key)
    if not isinstance(items, list) or not all(isinstance(item, Mapping) for item in items):
        raise WorkflowError(f"workflow {key!r} must be a list of objects")
    return items


def _parameter_values(
    inputs: list[Mapping[str, Any]], image_input_name: str, given: Mapping[str, Any]
) -> dict[str, Any]:
    """Values of the parameter inputs: ``workflows_parameters`` over each input's default."""
    values: dict[str, Any] = {}
    declared: set[str] = set()
    images = []
    for item in inputs:
        kind, name = item.get("type"), item.get("name")
        if not isinstance(name, str) or not name:
            raise WorkflowError(f"workflow input {dict(item)!r} has no name")
        declared.add(name)
        if kind in IMAGE_INPUT_TYPES:
            images.append(name)
        elif kind in PARAMETER_INPUT_TYPES:
            if name in given:
                values[name] = given[name]
            elif "default_value" in item:
                values[name] = item["default_value"]
        elif kind not in IGNORED_INPUT_TYPES:
            raise WorkflowError(f"workflow input {name!r} has unsupported type {kind!r}")
    if images != [image_input_name]:
        raise WorkflowError(
            f"the workflow needs exactly one image input named {image_input_name!r} "
            f"(image_input_name), found {images}"
        )
    unused = sorted(set(given) - declared)
    if unused:
        raise WorkflowError(
            f"workflows_parameters name(s) not declared as workflow inputs: {', '.join(unused)}"
        )
    return values


def _single_step(steps: list[Mapping[str, Any]]) -> Mapping[str, Any]:
    video = [step for step in steps if step.get("type") in VIDEO_BLOCKS]
    if len(video) == 1:  # say why its detector cannot run before refusing the detector's type
        reason = upstream_selector(video[0])
        if reason is not None:
            raise WorkflowError(f"step {video[0].get('name')!r}: {reason}")
    for step in steps:
        if step.get("type") not in VIDEO_BLOCKS:
            raise WorkflowError(
                f"workflow step {step.get('name')!r} has type {step.get('type')!r}: sam3-stream "
                f"runs only {SAM3_VIDEO_BLOCK} or {SAM2_VIDEO_BLOCK} (video), or SAM3's image "
                "blocks (see pipeline.compat.image_workflow)"
            )
    if len(steps) != 1:
        raise WorkflowError(
            f"the workflow must have exactly one video step ({SAM3_VIDEO_BLOCK} or "
            f"{SAM2_VIDEO_BLOCK}), found {len(steps)}"
        )
    step = steps[0]
    if not isinstance(step.get("name"), str) or not step["name"]:
        raise WorkflowError(f"the {step['type']} step has no name")
    allowed = SAM2_VIDEO_FIELDS if step["type"] == SAM2_VIDEO_BLOCK else _SAM3_STEP_FIELDS
    unknown = sorted(set(step) - allowed)
    if unknown:
        raise WorkflowError(
            f"step {step['name']!r}: unsupported field(s) {', '.join(unknown)}; supported: "
            f"{', '.join(sorted(allowed))}"
        )
    return step


def _resolve(value: Any, values: Mapping[str, Any], step: str) -> Any:
    """A ``$inputs.<name>`` reference becomes the parameter's value."""
    if isinstance(value, str) and value.startswith("$"):
        prefix, _, name = value.partition(".")
        if prefix != "$inputs":
            raise WorkflowError(f"step {step!r}: selector {value!r} is not supported here")
        if name not in values:
            raise WorkflowError(
                f"step {step!r}: {value!r} has no value: declare it as a parameter input with a "
                "default_value, or pass it in workflows_parameters"
            )
        return values[name]
    return value


def _class_names(step: str, value: Any) -> tuple[str, ...]:
    """Required, as in Roboflow's block; ``[]``, ``""`` or blanks are a valid empty list."""
    if value is None:
        raise WorkflowError(
            f"step {step!r}: concept mode requires class_names (a list, or 'a, b'); an empty "
            "list gives empty predictions"
        )
    try:
        return normalise_class_names(value)
    except (ValueError, TypeError) as error:
        raise WorkflowError(f"step {step!r}: class_names: {error}") from None


def _threshold(step: str, value: Any) -> float:
    if value is None:
        return _DEFAULT_THRESHOLD
    try:
        return check_threshold(value)
    except ValueError as error:
        raise WorkflowError(f"step {step!r}: {error}") from None


def _model(step: str, value: Any) -> str:
    if value is None:
        return REAL_MODEL
    if isinstance(value, str) and value in MODEL_ALIASES:
        return MODEL_ALIASES[value]
    if isinstance(value, str) and os.path.isdir(value):
        return value
    raise WorkflowError(
        f"step {step!r}: model_id {value!r} is not supported: use 'sam3video' (facebook/sam3) "
        "or a local directory holding a SAM3 video checkpoint"
    )


def _outputs(outputs: list[Mapping[str, Any]], step: str) -> tuple[str, ...]:
    names = []
    for output in outputs:
        name = output.get("name")
        if output.get("type") != "JsonField":
            raise WorkflowError(
                f"workflow output {name!r} has type {output.get('type')!r}: only JsonField"
            )
        unknown = sorted(set(output) - _OUTPUT_FIELDS)
        if unknown:
            raise WorkflowError(f"workflow output {name!r}: unsupported field(s) {unknown}")
        if output.get("selector") != f"$steps.{step}.predictions":
            raise WorkflowError(
                f"workflow output {name!r}: selector {output.get('selector')!r} is not supported "
                f"(only '$steps.{step}.predictions')"
            )
        if not isinstance(name, str) or not name or name in names:
            raise WorkflowError(f"workflow output name {name!r} is missing or repeated")
        names.append(name)
    if not names:
        raise WorkflowError("the workflow has no outputs: add a JsonField output")
    return tuple(names)
