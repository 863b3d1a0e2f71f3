"""Roboflow workflows of SAM3's image blocks: compiled from the specification, run on one image.

``POST /workflows/run`` runs them on each posted image; ``InferencePipeline.init_with_workflow``
runs them on every frame (detection without tracking: each frame is a new image). The seed's
hosted example is the shape to follow::

    {"version": "1.0",
     "inputs": [{"type": "InferenceImage", "name": "image"}],
     "steps": [
        {"type": "roboflow_core/sam3@v1", "name": "sam", "images": "$inputs.image",
         "class_names": "dog"},
        {"type": "roboflow_core/polygon_visualization@v1", "name": "polygon_visualization",
         "image": "$inputs.image", "predictions": "$steps.sam.predictions"}],
     "outputs": [{"type": "JsonField", "name": "output", "coordinates_system": "own",
                  "selector": "$steps.polygon_visualization.image"}]}

What is supported, in one place (anything else is a ``WorkflowError`` naming it):

- inputs: exactly one image input (``InferenceImage`` / ``WorkflowImage``), parameters
  (``InferenceParameter`` / ``WorkflowParameter`` with an optional ``default_value``) that step
  fields may name as ``$inputs.<name>``.
- ``roboflow_core/sam3@v1`` (``SAM3_BLOCK``): ``class_names`` (a list, or a string split on
  ``,``), ``threshold`` (0.5), ``model_id``. One concept request, one text prompt per class,
  batched on one vision pass. An empty ``class_names`` is refused (Roboflow would run a text-less
  prompt that has nothing to find).
- ``roboflow_core/sam3_interactive@v1`` (``SAM3_INTERACTIVE_BLOCK``): ``points`` (``{x, y,
  positive}`` dicts or ``[x, y(, positive)]`` lists), ``boxes`` (``$steps.<s>.predictions`` of a
  step above: one centre-anchored box prompt per detection, its class kept), ``threshold`` (0.0),
  ``multimask_output`` (true; the best proposal is kept). Points give class ``foreground``, id -1.
- ``roboflow_core/polygon_visualization@v1`` (``POLYGON_VISUALIZATION_BLOCKS``): ``image``,
  ``predictions``, ``copy_image``, ``color_palette`` (``DEFAULT`` or ``CUSTOM``), ``palette_size``,
  ``custom_colors``, ``color_axis`` (``INDEX``/``CLASS``/``TRACK``), ``thickness``.
- outputs: ``JsonField`` selecting ``$steps.<step>.<output>`` or ``$steps.<step>.*``.

As Roboflow's blocks do, each polygon of each predicted mask becomes one detection: its box is the
polygon's extent, its ``data["polygon"]`` the (K, 2) int points, and its mask (when asked for)
the polygon filled.
"""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import cv2
import numpy as np
import supervision as sv

from pipeline.compat.workflow import (
    IMAGE_INPUT_TYPES,
    PARAMETER_INPUT_TYPES,
    WorkflowError,
    object_list,
    specification_dict,
)
from tracker.image import MAX_PROMPTS
from tracker.inputs import check_threshold, normalise_class_names
from tracker.weights import REAL_MODEL

SAM3_BLOCK = "roboflow_core/sam3@v1"
SAM3_INTERACTIVE_BLOCK = "roboflow_core/sam3_interactive@v1"
POLYGON_VISUALIZATION_BLOCKS = ("roboflow_core/polygon_visualization@v1", "PolygonVisualization")
IMAGE_BLOCKS = (SAM3_BLOCK, SAM3_INTERACTIVE_BLOCK, *POLYGON_VISUALIZATION_BLOCKS)
CONCEPT_MODEL_IDS = ("sam3/sam3_final", "sam3", "facebook/sam3")
INTERACTIVE_MODEL_IDS = (*CONCEPT_MODEL_IDS, "sam3/sam3_interactive")
"""Roboflow's names for the one SAM3 checkpoint; a step names it, the loaded model runs."""

MAX_CLASSES = MAX_PROMPTS
"""A concept step's classes run as one request, one prompt each, batched on one vision pass."""

MAX_BOX_PROMPTS = 64
"""Detections an interactive step takes as box prompts: each is one mask-decoder pass."""

FOREGROUND = "foreground"
COLOR_AXES = ("INDEX", "CLASS", "TRACK")
_COMMON_FIELDS = {"type", "name"}
_STEP_FIELDS = {
    SAM3_BLOCK: {"images", "class_names", "threshold", "model_id"},
    SAM3_INTERACTIVE_BLOCK: {
        "images",
        "points",
        "boxes",
        "threshold",
        "multimask_output",
        "model_id",
    },
    **{
        kind: {
            "image",
            "predictions",
            "copy_image",
            "color_palette",
            "palette_size",
            "custom_colors",
            "color_axis",
            "thickness",
        }
        for kind in POLYGON_VISUALIZATION_BLOCKS
    },
}
_STEP_OUTPUTS = {
    SAM3_BLOCK: ("predictions",),
    SAM3_INTERACTIVE_BLOCK: ("predictions",),
    **{kind: ("image",) for kind in POLYGON_VISUALIZATION_BLOCKS},
}


class ConceptSegmenter(Protocol):
    """``tracker.SegmentAnything3``'s call this module makes."""

    def segment_image(
        self, image: Any, prompts: Sequence[Any], output_prob_thresh: float = ..., format: str = ...
    ) -> Any: ...


class InteractiveSegmenter(Protocol):
    """``tracker.Sam3ForInteractiveImageSegmentation``'s calls this module makes."""

    def embed_image(self, image: Any, image_id: str | None = None) -> tuple[Any, Any, str]: ...

    def segment_image(
        self,
        image: Any = None,
        image_id: str | None = None,
        prompts: Mapping[str, Any] | None = None,
        multimask_output: bool = False,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...


@dataclass(frozen=True)
class Segmenters:
    """The two image models a run may use, both on the one loaded checkpoint.

    ``interactive`` is a factory: each run embeds its image under its own id in a fresh one-entry
    cache, so concurrent runs never evict each other's embedding.
    """

    concept: ConceptSegmenter
    interactive: Callable[[], InteractiveSegmenter]

    @classmethod
    def from_tracker(cls, tracker: Any, concept: ConceptSegmenter | None = None) -> Segmenters:
        """Both segmenters on an already-loaded ``Sam3VideoTracker`` (no weights loaded).

        ``concept``: one already built on ``tracker`` (the server keeps one), else a new one.
        """
        from tracker import Sam3ForInteractiveImageSegmentation, SegmentAnything3

        return cls(
            concept=concept if concept is not None else SegmentAnything3.from_tracker(tracker),
            interactive=lambda: Sam3ForInteractiveImageSegmentation.from_tracker(
                tracker, cache_entries=1
            ),
        )


@dataclass(frozen=True)
class WorkflowImage:
    """An image a step made (Roboflow's ``WorkflowImageData``: ``numpy_image`` is BGR)."""

    numpy_image: np.ndarray  # (H, W, 3) uint8 BGR

    @property
    def base64_image(self) -> str:
        """JPEG, base64: what Roboflow's serialiser sends."""
        ok, encoded = cv2.imencode(".jpg", self.numpy_image)
        if not ok:  # pragma: no cover - OpenCV encodes any uint8 BGR image
            raise RuntimeError("JPEG encoding failed")
        return base64.b64encode(encoded.tobytes()).decode("ascii")


@dataclass(frozen=True)
class _Step:
    kind: str
    name: str
    fields: Mapping[str, Any]

    def depends_on(self) -> set[str]:
        return {
            _step_of(value)
            for value in self.fields.values()
            if isinstance(value, str) and value.startswith("$steps.")
        }


@dataclass(frozen=True)
class ImageWorkflowPlan:
    """A checked image workflow: steps in the order they run, and what each output selects.

    Attributes:
        image_input: the name of the workflow's image input.
        steps: in dependency order, parameters resolved.
        outputs: ``(output name, step name, step output or "*")``.
        class_names: every concept step's classes (for the model's text-length check).
        model: the checkpoint the steps name: ``facebook/sam3`` for Roboflow's ids, else the
            directory a step's ``model_id`` gives.
    """

    image_input: str
    steps: tuple[_Step, ...]
    outputs: tuple[tuple[str, str, str], ...]
    class_names: tuple[str, ...] = field(default=())
    model: str = REAL_MODEL

    def run(
        self, image: np.ndarray, segmenters: Segmenters, *, with_masks: bool = True
    ) -> dict[str, Any]:
        """Run every step on ``image`` ((H, W, 3) uint8 BGR); ``{output name: value}``.

        Values: ``sv.Detections`` for predictions, ``WorkflowImage`` for images, a dict of both
        for a ``$steps.<s>.*`` output. ``with_masks=False`` leaves ``mask`` None (the HTTP
        answer needs only polygons; N full-size masks would cost N x H x W bytes).

        Raises:
            ValueError: naming the step and field when the image rejects a value (a point
                outside it, say).
        """
        results: dict[str, dict[str, Any]] = {}
        interactive: InteractiveSegmenter | None = None
        image_id: str | None = None
        for step in self.steps:
            if step.kind == SAM3_BLOCK:
                results[step.name] = {
                    "predictions": _run_concept(step, image, segmenters.concept, with_masks)
                }
            elif step.kind == SAM3_INTERACTIVE_BLOCK:
                if interactive is None:
                    interactive = segmenters.interactive()
                    _, _, image_id = interactive.embed_image(image, f"workflow-{uuid.uuid4()}")
                assert image_id is not None
                boxes = step.fields.get("boxes")
                source = results[_step_of(boxes)]["predictions"] if boxes else None
                results[step.name] = {
                    "predictions": _run_interactive(
                        step, image, interactive, image_id, source, with_masks
                    )
                }
            else:
                predictions = results[_step_of(step.fields["predictions"])]["predictions"]
                results[step.name] = {"image": _draw_polygons(step, image, predictions)}
        return {
            name: dict(results[step]) if output == "*" else results[step][output]
            for name, step, output in self.outputs
        }


def is_image_workflow(specification: Mapping[str, Any] | str) -> bool:
    """Whether any step is one of SAM3's image blocks (else ``compile_workflow`` handles it)."""
    try:
        steps = specification_dict(specification).get("steps")
    except WorkflowError:
        return False
    return isinstance(steps, list) and any(
        isinstance(step, Mapping) and step.get("type") in IMAGE_BLOCKS for step in steps
    )


def compile_image_workflow(
    specification: Mapping[str, Any] | str,
    *,
    parameters: Mapping[str, Any] | None = None,
    image_input_name: str | None = None,
) -> ImageWorkflowPlan:
    """Check ``specification`` and resolve its parameters to an ``ImageWorkflowPlan``.

    Args:
        specification: the workflow dict or its JSON text.
        parameters: values of parameter inputs (the HTTP ``inputs`` besides the image, or
            ``workflows_parameters``); unknown names are ignored, as Roboflow's runtime does.
        image_input_name: when given, the image input must have this name.

    Raises:
        WorkflowError: naming the step (type and name) or field at fault.

    Examples:
        >>> plan = compile_image_workflow({
        ...     "inputs": [{"type": "InferenceImage", "name": "image"}],
        ...     "steps": [{"type": "roboflow_core/sam3@v1", "name": "sam",
        ...                "images": "$inputs.image", "class_names": "dog,cat"}],
        ...     "outputs": [{"type": "JsonField", "name": "out",
        ...                  "selector": "$steps.sam.predictions"}]})
        >>> plan.class_names, plan.outputs
        (('dog', 'cat'), (('out', 'sam', 'predictions'),))
    """
    spec = specification_dict(specification)
    version = spec.get("version")
    if version is not None and not str(version).startswith("1"):
        raise WorkflowError(f"workflow version {version!r} is not supported (only 1.x)")
    image_input, values = _inputs(object_list(spec, "inputs"), parameters or {}, image_input_name)
    steps = _order(
        [_step(raw, image_input, values) for raw in object_list(spec, "steps")], image_input
    )
    classes: list[str] = []
    for step in steps:
        if step.kind == SAM3_BLOCK:
            classes.extend(step.fields["class_names"])
    directories: set[str] = {
        model
        for model in (step.fields.get("model_id") for step in steps)
        if model is not None and model not in INTERACTIVE_MODEL_IDS
    }
    if len(directories) > 1:
        raise WorkflowError(
            f"the workflow's steps name different checkpoints {sorted(directories)}: one model "
            "serves every step"
        )
    return ImageWorkflowPlan(
        image_input=image_input,
        steps=tuple(steps),
        outputs=_outputs(object_list(spec, "outputs"), {s.name: s.kind for s in steps}),
        class_names=tuple(dict.fromkeys(classes)),
        model=directories.pop() if directories else REAL_MODEL,
    )


# ---------------------------------------------------------------------------- compiling


def _inputs(
    inputs: list[Mapping[str, Any]], given: Mapping[str, Any], wanted: str | None
) -> tuple[str, dict[str, Any]]:
    images: list[str] = []
    values: dict[str, Any] = {}
    for item in inputs:
        kind, name = item.get("type"), item.get("name")
        if not isinstance(name, str) or not name:
            raise WorkflowError(f"workflow input {dict(item)!r} has no name")
        if kind in IMAGE_INPUT_TYPES:
            images.append(name)
        elif kind in PARAMETER_INPUT_TYPES:
            if name in given:
                values[name] = given[name]
            elif "default_value" in item:
                values[name] = item["default_value"]
        else:
            raise WorkflowError(f"workflow input {name!r} has unsupported type {kind!r}")
    if len(images) != 1 or (wanted is not None and images != [wanted]):
        expected = f"named {wanted!r}" if wanted is not None else ""
        raise WorkflowError(
            f"the workflow needs exactly one image input {expected}, found {images}"
        )
    return images[0], values


def _step(raw: Mapping[str, Any], image_input: str, values: Mapping[str, Any]) -> _Step:
    kind, name = raw.get("type"), raw.get("name")
    if kind not in IMAGE_BLOCKS:
        raise WorkflowError(
            f"workflow step {name!r} has type {kind!r}: image workflows run only "
            f"{', '.join(IMAGE_BLOCKS)}"
        )
    if not isinstance(name, str) or not name or name.startswith("$"):
        raise WorkflowError(f"a {kind} step has no valid name")
    allowed = _STEP_FIELDS[kind] | _COMMON_FIELDS
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise WorkflowError(
            f"step {name!r} ({kind}): unsupported field(s) {', '.join(unknown)}; supported: "
            f"{', '.join(sorted(allowed - _COMMON_FIELDS))}"
        )
    fields = {key: _resolve(value, values, name, key) for key, value in raw.items()}
    image_field = "images" if kind in (SAM3_BLOCK, SAM3_INTERACTIVE_BLOCK) else "image"
    if fields.get(image_field) != f"$inputs.{image_input}":
        raise WorkflowError(
            f"step {name!r}: {image_field} must be '$inputs.{image_input}', got "
            f"{fields.get(image_field)!r}"
        )
    if kind == SAM3_BLOCK:
        return _Step(kind, name, _concept_fields(name, fields))
    if kind == SAM3_INTERACTIVE_BLOCK:
        return _Step(kind, name, _interactive_fields(name, fields))
    return _Step(kind, name, _visualization_fields(name, fields))


def _resolve(value: Any, values: Mapping[str, Any], step: str, key: str) -> Any:
    """``$inputs.<parameter>`` becomes its value; ``$steps.`` selectors stay for ``_order``."""
    if isinstance(value, str) and value.startswith("$inputs."):
        name = value.partition(".")[2]
        if name in values:
            return values[name]
        return value  # an image input; checked by the field that takes it
    if isinstance(value, str) and value.startswith("$") and not value.startswith("$steps."):
        raise WorkflowError(f"step {step!r}: {key}: selector {value!r} is not supported")
    return value


def _concept_fields(step: str, fields: dict[str, Any]) -> dict[str, Any]:
    raw = fields.get("class_names")
    try:
        classes = normalise_class_names(raw)
    except (ValueError, TypeError) as error:
        raise WorkflowError(f"step {step!r}: class_names: {error}") from None
    if not classes:
        raise WorkflowError(
            f"step {step!r}: class_names is empty: give at least one concept, e.g. 'dog' or "
            "['dog', 'cat'] (a prompt without text has nothing to find)"
        )
    if len(classes) > MAX_CLASSES:
        raise WorkflowError(
            f"step {step!r}: class_names has {len(classes)} classes; at most {MAX_CLASSES} run "
            "in one request"
        )
    _check_model(step, fields.get("model_id"), CONCEPT_MODEL_IDS)
    return {
        **fields,
        "class_names": classes,
        "threshold": _unit(step, "threshold", fields.get("threshold"), 0.5),
    }


def _interactive_fields(step: str, fields: dict[str, Any]) -> dict[str, Any]:
    points = _points(step, fields.get("points"))
    boxes = fields.get("boxes")
    if boxes is not None and not _is_predictions_selector(boxes):
        raise WorkflowError(
            f"step {step!r}: boxes must select a step's predictions ('$steps.<name>.predictions'), "
            f"got {boxes!r}"
        )
    if not points and boxes is None:
        raise WorkflowError(f"step {step!r}: give points and/or boxes: the step has no prompt")
    multimask = fields.get("multimask_output", True)
    if not isinstance(multimask, bool):
        raise WorkflowError(f"step {step!r}: multimask_output must be true or false")
    _check_model(step, fields.get("model_id"), INTERACTIVE_MODEL_IDS)
    return {
        **fields,
        "points": points,
        "multimask_output": multimask,
        "threshold": _unit(step, "threshold", fields.get("threshold"), 0.0),
    }


def _points(step: str, raw: Any) -> list[dict[str, Any]]:
    """``{x, y, positive}`` dicts or ``[x, y]`` / ``[x, y, positive]`` lists -> dicts."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise WorkflowError(f"step {step!r}: points must be a list, got {type(raw).__name__}")
    points = []
    for index, point in enumerate(raw):
        if isinstance(point, Mapping):
            x, y, positive = point.get("x"), point.get("y"), point.get("positive", True)
        elif isinstance(point, list | tuple) and len(point) in (2, 3):
            x, y = point[0], point[1]
            positive = point[2] if len(point) == 3 else True
        else:
            x = y = positive = None
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (x, y)):
            raise WorkflowError(
                f"step {step!r}: points[{index}] must be {{x, y, positive}} or [x, y(, positive)]"
            )
        points.append({"x": float(x), "y": float(y), "positive": bool(positive)})  # type: ignore[arg-type]
    return points


def _visualization_fields(step: str, fields: dict[str, Any]) -> dict[str, Any]:
    if not _is_predictions_selector(fields.get("predictions")):
        raise WorkflowError(
            f"step {step!r}: predictions must be '$steps.<name>.predictions', got "
            f"{fields.get('predictions')!r}"
        )
    palette = fields.get("color_palette", "DEFAULT")
    custom = fields.get("custom_colors", [])
    if palette not in ("DEFAULT", "CUSTOM"):
        raise WorkflowError(
            f"step {step!r}: color_palette {palette!r} is not supported (DEFAULT or CUSTOM)"
        )
    try:
        colors = [sv.Color.from_hex(value) for value in custom or []]
    except (ValueError, TypeError, AttributeError):
        raise WorkflowError(f"step {step!r}: custom_colors must be '#rrggbb' strings") from None
    if palette == "CUSTOM" and not colors:
        raise WorkflowError(f"step {step!r}: color_palette CUSTOM needs custom_colors")
    size = fields.get("palette_size", 10)
    thickness = fields.get("thickness", 2)
    for key, value in (("palette_size", size), ("thickness", thickness)):
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 100:
            raise WorkflowError(f"step {step!r}: {key} must be an integer in [1, 100]")
    axis = fields.get("color_axis", "CLASS")
    if axis not in COLOR_AXES:
        raise WorkflowError(f"step {step!r}: color_axis must be one of {', '.join(COLOR_AXES)}")
    copy_image = fields.get("copy_image", True)
    if not isinstance(copy_image, bool):
        raise WorkflowError(f"step {step!r}: copy_image must be true or false")
    default = [sv.ColorPalette.DEFAULT.by_idx(i) for i in range(size)]
    return {
        **fields,
        "colors": colors if palette == "CUSTOM" else default,
        "color_axis": axis,
        "thickness": thickness,
    }


def _check_model(step: str, model_id: Any, known: tuple[str, ...]) -> None:
    """Roboflow's ids for SAM3, or a local directory holding a SAM3 checkpoint."""
    if model_id is None or model_id in known:
        return
    if isinstance(model_id, str) and os.path.isdir(model_id):
        return
    raise WorkflowError(
        f"step {step!r}: model_id {model_id!r} is not served here: use one of {', '.join(known)} "
        "or a local directory holding a SAM3 checkpoint"
    )


def _unit(step: str, key: str, value: Any, default: float) -> float:
    if value is None:
        return default
    try:
        return check_threshold(value)
    except ValueError as error:
        raise WorkflowError(f"step {step!r}: {key}: {error}") from None


def _is_predictions_selector(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("$steps.") and value.endswith(".predictions")


def _step_of(selector: str) -> str:
    return selector.split(".")[1]


def _order(steps: list[_Step], image_input: str) -> list[_Step]:
    """Steps in an order where each runs after those it selects from; cycles refused."""
    by_name: dict[str, _Step] = {}
    for step in steps:
        if step.name in by_name:
            raise WorkflowError(f"workflow step name {step.name!r} is repeated")
        by_name[step.name] = step
    for step in steps:
        for needed in step.depends_on():
            if needed not in by_name:
                raise WorkflowError(f"step {step.name!r} selects from unknown step {needed!r}")
            if by_name[needed].kind in POLYGON_VISUALIZATION_BLOCKS:
                raise WorkflowError(
                    f"step {step.name!r}: step {needed!r} gives an image, not predictions"
                )
    ordered: list[_Step] = []
    done: set[str] = set()
    while len(ordered) < len(steps):
        ready = [s for s in steps if s.name not in done and s.depends_on() <= done]
        if not ready:
            raise WorkflowError("the workflow's steps select from each other in a cycle")
        ordered.extend(ready)
        done.update(s.name for s in ready)
    if not ordered:
        raise WorkflowError("the workflow has no steps")
    return ordered


def _outputs(
    outputs: list[Mapping[str, Any]], kinds: Mapping[str, str]
) -> tuple[tuple[str, str, str], ...]:
    found: list[tuple[str, str, str]] = []
    for output in outputs:
        name = output.get("name")
        if output.get("type") != "JsonField":
            raise WorkflowError(
                f"workflow output {name!r} has type {output.get('type')!r}: only JsonField"
            )
        unknown = sorted(set(output) - {"type", "name", "selector", "coordinates_system"})
        if unknown:
            raise WorkflowError(f"workflow output {name!r}: unsupported field(s) {unknown}")
        if not isinstance(name, str) or not name or name in (n for n, _, _ in found):
            raise WorkflowError(f"workflow output name {name!r} is missing or repeated")
        selector = output.get("selector")
        parts = selector.split(".") if isinstance(selector, str) else []
        if len(parts) != 3 or parts[0] != "$steps" or parts[1] not in kinds:
            raise WorkflowError(
                f"workflow output {name!r}: selector {selector!r} must be "
                "'$steps.<step>.<output>' of a step in the workflow"
            )
        step, wanted = parts[1], parts[2]
        if wanted != "*" and wanted not in _STEP_OUTPUTS[kinds[step]]:
            raise WorkflowError(
                f"workflow output {name!r}: step {step!r} has no output {wanted!r} (it gives "
                f"{', '.join(_STEP_OUTPUTS[kinds[step]])})"
            )
        found.append((name, step, wanted))
    if not found:
        raise WorkflowError("the workflow has no outputs: add a JsonField output")
    return tuple(found)


# ---------------------------------------------------------------------------- running


def _run_concept(
    step: _Step, image: np.ndarray, concept: ConceptSegmenter, with_masks: bool
) -> sv.Detections:
    from tracker import Sam3Prompt

    classes: tuple[str, ...] = step.fields["class_names"]
    threshold: float = step.fields["threshold"]
    response = concept.segment_image(
        image,
        [Sam3Prompt(type="text", text=name) for name in classes],
        output_prob_thresh=threshold,
        format="polygon",
    )
    rows = [
        (polygon, prediction.confidence, index, classes[index])
        for index, result in enumerate(response.prompt_results)
        for prediction in result.predictions
        if prediction.confidence >= threshold
        for polygon in prediction.masks
    ]
    return polygon_detections(rows, image.shape[:2], with_masks)


def _run_interactive(
    step: _Step,
    image: np.ndarray,
    interactive: InteractiveSegmenter,
    image_id: str,
    boxes: sv.Detections | None,
    with_masks: bool,
) -> sv.Detections:
    """One prompt of all points (class ``foreground``, id -1) and one prompt per box."""
    prompts: list[tuple[dict[str, Any], int, str]] = []
    if step.fields["points"]:
        prompts.append(({"points": step.fields["points"]}, -1, FOREGROUND))
    if boxes is not None:
        if len(boxes) > MAX_BOX_PROMPTS:
            raise ValueError(
                f"step {step.name!r}: boxes selects {len(boxes)} detections; at most "
                f"{MAX_BOX_PROMPTS} run per image (raise the box step's threshold)"
            )
        names = boxes.data.get("class_name", [FOREGROUND] * len(boxes))
        class_ids = boxes.class_id if boxes.class_id is not None else [-1] * len(boxes)
        for (x0, y0, x1, y1), class_id, name in zip(boxes.xyxy, class_ids, names, strict=True):
            box = {"x": (x0 + x1) / 2, "y": (y0 + y1) / 2, "width": x1 - x0, "height": y1 - y0}
            prompts.append(({"box": box}, int(class_id), str(name)))
    rows = []
    for prompt, class_id, name in prompts:
        try:
            masks, scores, _ = interactive.segment_image(
                image_id=image_id,
                prompts=prompt,
                multimask_output=step.fields["multimask_output"],
            )
        except ValueError as error:
            raise ValueError(f"step {step.name!r}: {error}") from None
        best = int(np.argmax(scores))
        if float(scores[best]) < step.fields["threshold"]:
            continue
        for polygon in sv.mask_to_polygons(masks[best]):
            rows.append((polygon.astype(int).tolist(), float(scores[best]), class_id, name))
    return polygon_detections(rows, image.shape[:2], with_masks)


def polygon_detections(
    rows: Sequence[tuple[Sequence[Sequence[int]], float, int, str]],
    shape: tuple[int, int],
    with_masks: bool,
) -> sv.Detections:
    """One detection per ``(polygon, confidence, class_id, class_name)`` row with >= 3 points.

    ``data["polygon"]`` holds each (K, 2) int32 polygon; ``mask`` is (N, H, W) bool, each polygon
    filled, when ``with_masks`` (else None).
    """
    kept = [(np.asarray(p, dtype=np.int32).reshape(-1, 2), c, i, n) for p, c, i, n in rows]
    kept = [row for row in kept if len(row[0]) >= 3]
    height, width = shape
    if not kept:
        empty = sv.Detections.empty()
        if with_masks:
            empty.mask = np.zeros((0, height, width), dtype=bool)
        empty.class_id = np.zeros(0, dtype=int)
        empty.data = {"class_name": np.array([], dtype=object), "polygon": _objects([])}
        return empty
    polygons = [row[0] for row in kept]
    xyxy = np.array(
        [[p[:, 0].min(), p[:, 1].min(), p[:, 0].max(), p[:, 1].max()] for p in polygons],
        dtype=np.float32,
    )  # (N, 4)
    masks = (
        np.stack([sv.polygon_to_mask(p, (width, height)).astype(bool) for p in polygons])
        if with_masks
        else None
    )  # (N, H, W) bool
    return sv.Detections(
        xyxy=xyxy,
        mask=masks,
        confidence=np.array([row[1] for row in kept], dtype=np.float32),
        class_id=np.array([row[2] for row in kept], dtype=int),
        data={
            "class_name": np.array([row[3] for row in kept], dtype=object),
            "polygon": _objects(polygons),
        },
    )


def _objects(items: list[Any]) -> np.ndarray:
    array = np.empty(len(items), dtype=object)
    for index, item in enumerate(items):
        array[index] = item
    return array


def _draw_polygons(step: _Step, image: np.ndarray, detections: sv.Detections) -> WorkflowImage:
    """Each detection's outline (its polygon, else its mask's contours, else its box)."""
    canvas = image.copy() if step.fields.get("copy_image", True) else image
    colors: list[sv.Color] = step.fields["colors"]
    axis = step.fields["color_axis"]
    thickness = step.fields["thickness"]
    for index in range(len(detections)):
        if axis == "CLASS" and detections.class_id is not None:
            key = int(detections.class_id[index])
        elif axis == "TRACK" and detections.tracker_id is not None:
            key = int(detections.tracker_id[index])
        else:
            key = index
        color = colors[key % len(colors)].as_bgr()
        outlines = _outlines(detections, index)
        cv2.polylines(canvas, outlines, True, color, thickness)
    return WorkflowImage(numpy_image=canvas)


def _outlines(detections: sv.Detections, index: int) -> list[np.ndarray]:
    polygons = detections.data.get("polygon")
    if polygons is not None:
        return [np.asarray(polygons[index], dtype=np.int32)]
    if detections.mask is not None:
        return [p.astype(np.int32) for p in sv.mask_to_polygons(detections.mask[index])]
    x0, y0, x1, y1 = detections.xyxy[index].astype(int)
    return [np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.int32)]


# ---------------------------------------------------------------------------- serialising


def serialise_outputs(
    outputs: Mapping[str, Any], parent_id: str, image_shape: tuple[int, int]
) -> dict[str, Any]:
    """One image's outputs as Roboflow's ``/workflows/run`` writes them (JSON-ready).

    Args:
        outputs: what ``ImageWorkflowPlan.run`` returned.
        parent_id: the image input's name (Roboflow's ``parent_id`` of every detection).
        image_shape: (height, width) of the image the outputs came from.
    """
    return {name: _serialise(value, parent_id, image_shape) for name, value in outputs.items()}


def _serialise(value: Any, parent_id: str, shape: tuple[int, int]) -> Any:
    if isinstance(value, WorkflowImage):
        return {"type": "base64", "value": value.base64_image, "video_metadata": None}
    if isinstance(value, sv.Detections):
        return serialise_detections(value, parent_id, shape)
    if isinstance(value, Mapping):
        return {key: _serialise(item, parent_id, shape) for key, item in value.items()}
    return value


def serialise_detections(
    detections: sv.Detections, parent_id: str, shape: tuple[int, int]
) -> dict[str, Any]:
    """Roboflow's instance-segmentation JSON: centre box, ``points``, ``class``, ids."""
    predictions = []
    polygons = detections.data.get("polygon")
    names = detections.data.get("class_name")
    for index, (x0, y0, x1, y1) in enumerate(detections.xyxy.tolist()):
        if polygons is not None:
            points = np.asarray(polygons[index]).reshape(-1, 2)
        elif detections.mask is not None:
            found = sv.mask_to_polygons(detections.mask[index])
            points = max(found, key=len) if found else np.zeros((0, 2))
        else:
            points = np.zeros((0, 2))
        predictions.append(
            {
                "width": x1 - x0,
                "height": y1 - y0,
                "x": (x0 + x1) / 2,
                "y": (y0 + y1) / 2,
                "confidence": float(detections.confidence[index])
                if detections.confidence is not None
                else 1.0,
                "class_id": int(detections.class_id[index])
                if detections.class_id is not None
                else 0,
                "points": [{"x": float(x), "y": float(y)} for x, y in points.tolist()],
                "class": str(names[index]) if names is not None else FOREGROUND,
                "detection_id": str(uuid.uuid4()),
                "parent_id": parent_id,
            }
        )
    height, width = shape
    return {"image": {"width": width, "height": height}, "predictions": predictions}
