"""``/sam3/*``: single-image SAM3 on the server's one model, shaped as Roboflow's endpoints.

- ``POST /sam3/concept_segment``: text and/or exemplar-box prompts -> every instance of each.
- ``POST /sam3/embed_image``: the vision pass of an image, cached under an ``image_id``.
- ``POST /sam3/visual_segment``: point/box prompts -> one mask each, on an image or a cached id.

Decoding, URL fetching and the forward pass run on worker threads (at most ``IMAGE_WORKERS``
per app; the JSON body is parsed on one too), never on the event loop. The model is the streams'
model (``ModelEngine.concept_segmenter`` / ``interactive_segmenter``), and each forward pass
holds its lock, so an image request waits for a frame in flight and the other way round. A
``ValueError`` of the model side names its field (``prompts[0].boxes[1] ...``): it is answered
as a 422 whose ``loc`` is that field.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import anyio.to_thread
from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from pipeline.service.api_errors import ServiceError
from pipeline.service.dependencies import EngineDep, ManagerDep
from pipeline.service.engine import ModelEngine
from pipeline.service.images import ImageInputError, InferenceRequestImage, request_image_bytes
from pipeline.service.models import ErrorBody
from pipeline.service.sam3_requests import (
    Sam3EmbeddingRequest,
    Sam3SegmentationRequest,
    Sam3VisualSegmentationRequest,
    Sam3VisualSegmentationResponse,
)
from tracker.image import (
    Sam3EmbeddingResponse,
    Sam3SegmentationPrediction,
    Sam3SegmentationResponse,
)
from tracker.image.loading import ROBOFLOW_MODEL_IDS
from tracker.image.masks import encode_mask

logger = logging.getLogger(__name__)

IMAGE_WORKERS = 4
"""Image requests of one app worked on at once (URL fetch, decoding, the model's turn)."""

_T = TypeVar("_T")


class _OffLoopJsonRequest(Request):
    """A request whose JSON body is parsed on a worker thread, not on the event loop.

    These bodies carry a base64 image of up to 85 MiB; ``json.loads`` of that takes ~0.1-0.3 s,
    which on the event loop would stall every other request (``/healthz``, SSE) meanwhile.
    """

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            self._json = await anyio.to_thread.run_sync(json.loads, body)
        return self._json


class _OffLoopJsonRoute(APIRoute):
    """FastAPI's documented custom-route hook, so the handler sees ``_OffLoopJsonRequest``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def off_loop_json(request: Request) -> Response:
            return await handler(_OffLoopJsonRequest(request.scope, request.receive))

        return off_loop_json


router = APIRouter(tags=["sam3"], route_class=_OffLoopJsonRoute)

IMAGE_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing or wrong API key."},
    413: {"model": ErrorBody, "description": "The body is over the image endpoints' cap."},
    422: {"model": ErrorBody, "description": "A field is invalid; `detail[].loc` names it."},
    503: {"model": ErrorBody, "description": "The model is still loading."},
}

_FIELD_PATH = re.compile(r"^([A-Za-z_]+)((?:\[\d+\]|\.[A-Za-z_]+)*)")
_PATH_STEP = re.compile(r"\[(\d+)\]|\.([A-Za-z_]+)")
_REQUEST_FIELDS = frozenset(
    {"image", "image_id", "prompts", "format", "output_prob_thresh", "nms_iou_threshold"}
)


class ImageModelError(ServiceError):
    """The model failed on a valid request (a bug or the device): 500, no traceback."""

    status_code = 500


@router.post(
    "/sam3/concept_segment", response_model=Sam3SegmentationResponse, responses=IMAGE_ERRORS
)
async def concept_segment(
    body: Sam3SegmentationRequest, engine: EngineDep, manager: ManagerDep, request: Request
) -> Sam3SegmentationResponse:
    """Find every instance of each prompt (text, exemplar boxes, or text narrowed by them).

    Boxes are top-left anchored pixels; ``box_labels`` (1 positive, 0 negative) are required
    with them. All prompts share one vision pass.
    """
    allow = manager.access.allow_private_network
    return await _in_image_worker(request, _concept_segment, body, engine, allow)


@router.post("/sam3/embed_image", response_model=Sam3EmbeddingResponse, responses=IMAGE_ERRORS)
async def embed_image(
    body: Sam3EmbeddingRequest, engine: EngineDep, manager: ManagerDep, request: Request
) -> Sam3EmbeddingResponse:
    """Cache the image's embedding; ``visual_segment`` then takes its ``image_id`` alone."""
    allow = manager.access.allow_private_network
    return await _in_image_worker(request, _embed_image, body, engine, allow)


@router.post(
    "/sam3/visual_segment", response_model=Sam3VisualSegmentationResponse, responses=IMAGE_ERRORS
)
async def visual_segment(
    body: Sam3VisualSegmentationRequest, engine: EngineDep, manager: ManagerDep, request: Request
) -> Sam3VisualSegmentationResponse:
    """One mask per prompt (points and/or a centre-anchored box), the best of its proposals.

    With ``image``, it is embedded first (cached under ``image_id`` when given); without it,
    ``image_id`` must name an embedding ``/sam3/embed_image`` cached.
    """
    allow = manager.access.allow_private_network
    return await _in_image_worker(request, _visual_segment, body, engine, allow)


async def _in_image_worker(request: Request, work: Callable[..., _T], *args: Any) -> _T:
    """Run ``work`` on a thread, at most ``IMAGE_WORKERS`` image requests of this app at once.

    The others wait here, as coroutines: they hold none of the threadpool's threads, which the
    stream routes need, while the model (one forward pass at a time) works through them.
    """
    limiter = getattr(request.app.state, "sam3_image_workers", None)
    if limiter is None:
        limiter = request.app.state.sam3_image_workers = anyio.CapacityLimiter(IMAGE_WORKERS)
    return await anyio.to_thread.run_sync(functools.partial(work, *args), limiter=limiter)


def _concept_segment(
    request: Sam3SegmentationRequest, engine: ModelEngine, allow_private_network: bool
) -> Sam3SegmentationResponse:
    segmenter = engine.concept_segmenter
    _check_model_id(request.model_id, engine)
    data = _image_bytes(request.image, allow_private_network)
    threshold = 0.5 if request.output_prob_thresh is None else request.output_prob_thresh
    with _model_errors_as_http():
        return segmenter.segment_image(
            data,
            request.prompts,
            output_prob_thresh=threshold,
            format=request.format or "polygon",
            nms_iou_threshold=request.nms_iou_threshold,
        )


def _embed_image(
    request: Sam3EmbeddingRequest, engine: ModelEngine, allow_private_network: bool
) -> Sam3EmbeddingResponse:
    started = time.perf_counter()
    segmenter = engine.interactive_segmenter
    data = _image_bytes(request.image, allow_private_network)
    with _model_errors_as_http():
        _, _, image_id = segmenter.embed_image(data, request.image_id)
    return Sam3EmbeddingResponse(image_id=image_id, time=time.perf_counter() - started)


def _visual_segment(
    request: Sam3VisualSegmentationRequest, engine: ModelEngine, allow_private_network: bool
) -> Sam3VisualSegmentationResponse:
    started = time.perf_counter()
    segmenter = engine.interactive_segmenter
    image_id = request.image_id
    if request.image is not None:
        data = _image_bytes(request.image, allow_private_network)
        with _model_errors_as_http():
            _, _, image_id = segmenter.embed_image(data, image_id)
    elif image_id is None:
        raise _unprocessable(("image",), "give an image, or an image_id from /sam3/embed_image")
    reported = "rle" if request.format == "rle" else "polygon"
    predictions = []
    for index, prompt in enumerate(request.prompts):
        with _model_errors_as_http(prompt_index=index):
            masks, scores, _ = segmenter.segment_image(
                image_id=image_id,
                prompts=prompt.model_dump(exclude_none=True),
                multimask_output=request.multimask_output,
            )
        best = int(scores.argmax())
        predictions.append(
            Sam3SegmentationPrediction(
                masks=encode_mask(masks[best], reported),
                confidence=float(scores[best]),
                format=reported,
            )
        )
    return Sam3VisualSegmentationResponse(
        predictions=predictions, time=time.perf_counter() - started
    )


def accepted_model_ids(engine: ModelEngine) -> frozenset[str]:
    """Roboflow's SAM3 ids and the names of the checkpoint this server loaded."""
    return frozenset({*ROBOFLOW_MODEL_IDS, engine.model_name, str(engine.tracker.name)})


def _check_model_id(model_id: str | None, engine: ModelEngine) -> None:
    """One model per server: a request naming another (a fine-tune) is refused, not reloaded."""
    if model_id is None:
        return
    if model_id not in accepted_model_ids(engine):
        raise _unprocessable(
            ("model_id",),
            f"this server serves one model: use {ROBOFLOW_MODEL_IDS[0]} or leave model_id out",
        )


def _image_bytes(image: InferenceRequestImage, allow_private_network: bool) -> bytes:
    try:
        return request_image_bytes(image, allow_private_network=allow_private_network)
    except ImageInputError as error:
        raise _unprocessable(error.loc, error.reason) from None


def _unprocessable(loc: tuple[str | int, ...], message: str) -> RequestValidationError:
    """A 422 in the service's one shape (``error_responses``), naming ``body.<loc>``."""
    return RequestValidationError(
        [{"loc": ("body", *loc), "msg": " ".join(message.split()), "type": "value_error"}]
    )


@contextmanager
def _model_errors_as_http(prompt_index: int | None = None) -> Iterator[None]:
    """A model-side ``ValueError`` -> 422 at the field it names; any other failure -> 500.

    ``prompt_index``: the visual prompt being run; the model side calls it ``prompts``.
    """
    try:
        yield
    except ServiceError:
        raise
    except ValueError as error:
        loc, message = _field_of(str(error))
        if prompt_index is not None and loc[0] == "prompts":
            loc = ("prompts", prompt_index, *loc[1:])
        raise _unprocessable(loc, message) from None
    except Exception as error:
        logger.exception("an image request failed inside the model")  # the operator's log only
        raise ImageModelError(f"the model failed on this image: {type(error).__name__}") from None


def _field_of(message: str) -> tuple[tuple[str | int, ...], str]:
    """The request field a model-side message starts with (``prompts[0].boxes[1] ...``)."""
    match = _FIELD_PATH.match(message)
    if match is None or match.group(1) not in _REQUEST_FIELDS:
        return ("prompts",), message
    loc: list[str | int] = [match.group(1)]
    for number, name in _PATH_STEP.findall(match.group(2)):
        loc.append(int(number) if number else name)
    return tuple(loc), message
