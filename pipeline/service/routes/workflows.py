"""``POST /workflows/run``: a Roboflow workflow of SAM3's image blocks, on the posted image(s).

Shaped as Roboflow's endpoint so ``inference-sdk``'s ``client.run_workflow(specification=...,
images=...)`` works unchanged: ``{"specification": {...}, "inputs": {name: image | value}}`` in,
``{"outputs": [{output name: value} per image], "profiler_trace": null}`` out, images as
``{"type": "base64", "value": <JPEG>}``. Fields the client adds (``use_cache``,
``enable_profiling``, ``api_key``...) are ignored, as Roboflow does. What a workflow may contain is
``pipeline.compat.image_workflow``'s list; anything else is a 422 naming the step.

The handler is synchronous (FastAPI's threadpool): decoding, URL fetching and the forward passes
never block the event loop, and each forward pass takes the model's one lock, shared with every
stream.
"""

from __future__ import annotations

from typing import Any

import cv2
from fastapi import APIRouter
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field

from pipeline.compat.image_workflow import (
    ImageWorkflowPlan,
    Segmenters,
    compile_image_workflow,
    serialise_outputs,
)
from pipeline.compat.workflow import WorkflowError
from pipeline.service.api_errors import ServiceError
from pipeline.service.dependencies import EngineDep, ManagerDep
from pipeline.service.images import ImageInputError, InferenceRequestImage, request_image_bytes
from pipeline.service.models import ErrorBody
from pipeline.service.routes.sam3 import accepted_model_ids
from tracker.image import load_rgb
from tracker.weights import REAL_MODEL

router = APIRouter(tags=["workflows"])

MAX_IMAGES_PER_REQUEST = 16
"""Images one request may carry in its image input (a batch runs one image after another)."""

WORKFLOW_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing or wrong API key."},
    413: {"model": ErrorBody, "description": "The body is over the image endpoints' cap."},
    422: {"model": ErrorBody, "description": "A field or step is invalid; `detail` names it."},
    503: {"model": ErrorBody, "description": "The model is still loading."},
}


class WorkflowRunRequest(BaseModel):
    """Roboflow's ``WorkflowSpecificationInferenceRequest``; unknown fields ignored."""

    model_config = ConfigDict(extra="ignore")

    specification: dict[str, Any]
    inputs: dict[str, Any]
    api_key: str | None = None
    excluded_fields: list[str] | None = None


class WorkflowRunResponse(BaseModel):
    """One dict of outputs per input image, in order; no profiling (``profiler_trace`` null)."""

    outputs: list[dict[str, Any]]
    profiler_trace: list[Any] | None = Field(default=None)


class WorkflowModelError(ServiceError):
    """The model failed on a valid workflow (a bug or the device): 500, no traceback."""

    status_code = 500


@router.post("/workflows/run", response_model=WorkflowRunResponse, responses=WORKFLOW_ERRORS)
def run_workflow(
    request: WorkflowRunRequest, engine: EngineDep, manager: ManagerDep
) -> WorkflowRunResponse:
    """Run the workflow on each image of its image input; outputs as Roboflow serialises them."""
    try:
        plan = compile_image_workflow(request.specification, parameters=request.inputs)
    except WorkflowError as error:
        raise _unprocessable(("specification",), str(error)) from None
    if plan.model != REAL_MODEL and plan.model not in accepted_model_ids(engine):
        raise _unprocessable(
            ("specification",),
            f"model_id {plan.model!r}: this server serves one model; use sam3/sam3_final",
        )
    images = _images(plan, request.inputs, manager.access.allow_private_network)
    segmenters = Segmenters.from_tracker(engine.tracker, concept=engine.concept_segmenter)
    excluded = set(request.excluded_fields or ())
    outputs = []
    for bgr in images:
        try:
            values = plan.run(bgr, segmenters, with_masks=False)
        except ServiceError:
            raise
        except ValueError as error:
            raise _unprocessable(("specification",), str(error)) from None
        except Exception as error:
            raise WorkflowModelError(
                f"the workflow failed on this image: {type(error).__name__}"
            ) from None
        serialised = serialise_outputs(values, plan.image_input, bgr.shape[:2])
        outputs.append({k: v for k, v in serialised.items() if k not in excluded})
    return WorkflowRunResponse(outputs=outputs, profiler_trace=None)


def _images(plan: ImageWorkflowPlan, inputs: dict[str, Any], allow_private: bool) -> list[Any]:
    """(H, W, 3) uint8 BGR arrays of the image input (one image, or a list = a batch)."""
    name = plan.image_input
    if name not in inputs:
        raise _unprocessable(("inputs", name), f"the workflow's image input {name!r} is missing")
    raw = inputs[name]
    items = raw if isinstance(raw, list) else [raw]
    if not items or len(items) > MAX_IMAGES_PER_REQUEST:
        raise _unprocessable(
            ("inputs", name), f"give 1 to {MAX_IMAGES_PER_REQUEST} images, got {len(items)}"
        )
    images = []
    for index, item in enumerate(items):
        loc: tuple[str | int, ...] = (
            ("inputs", name) if len(items) == 1 else ("inputs", name, index)
        )
        if not isinstance(item, dict) or "type" not in item:
            raise _unprocessable(loc, 'an image must be {"type": "base64" | "url", "value": ...}')
        try:
            data = request_image_bytes(
                InferenceRequestImage.model_validate(item), allow_private_network=allow_private
            )
            rgb = load_rgb(data)
        except ImageInputError as error:
            raise _unprocessable((*loc, *error.loc[1:]), error.reason) from None
        except ValueError as error:
            raise _unprocessable(loc, str(error)) from None
        images.append(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return images


def _unprocessable(loc: tuple[str | int, ...], message: str) -> RequestValidationError:
    """A 422 in the service's one shape (``error_responses``), naming ``body.<loc>``."""
    return RequestValidationError(
        [{"loc": ("body", *loc), "msg": " ".join(message.split()), "type": "value_error"}]
    )
