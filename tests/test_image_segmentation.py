"""Single-image SAM3 on the tiny checkpoint: concept segmentation and interactive segmentation.

The tiny model's weights are random, so masks mean nothing; what is specified here is exact:
shapes, formats, which inputs reach the model, how many vision passes run, the cache bounds, and
that every bad input is a ``ValueError`` naming its field.
"""

from __future__ import annotations

import io
import pathlib
from collections.abc import Iterator
from contextlib import contextmanager

import cv2
import numpy as np
import pytest
import supervision as sv
from PIL import Image

from tracker import (
    ModelLoadError,
    Sam3ForInteractiveImageSegmentation,
    Sam3Prompt,
    Sam3VideoTracker,
    SegmentAnything3,
)
from tracker.image import MAX_PROMPTS

HEIGHT, WIDTH = 120, 160


@pytest.fixture(scope="module")
def bgr() -> np.ndarray:
    """A (120, 160, 3) uint8 BGR image with some structure."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    cv2.rectangle(image, (20, 30), (70, 90), (0, 0, 255), -1)
    return image


@pytest.fixture(scope="module")
def concept(tiny_tracker: Sam3VideoTracker) -> SegmentAnything3:
    return SegmentAnything3.from_tracker(tiny_tracker)


@pytest.fixture
def interactive(tiny_tracker: Sam3VideoTracker) -> Sam3ForInteractiveImageSegmentation:
    return Sam3ForInteractiveImageSegmentation.from_tracker(tiny_tracker)


@contextmanager
def vision_passes(tracker: Sam3VideoTracker) -> Iterator[list[int]]:
    """Count forward calls of the vision backbone (a real forward hook, not a mock)."""
    calls: list[int] = []
    handle = tracker.model.detector_model.vision_encoder.backbone.register_forward_hook(
        lambda module, args, output: calls.append(1)
    )
    try:
        yield calls
    finally:
        handle.remove()


def text(value: str, **fields: object) -> Sam3Prompt:
    return Sam3Prompt(type="text", text=value, **fields)


def exemplar(label: int, text_value: str | None = None) -> Sam3Prompt:
    return Sam3Prompt(
        type="visual" if text_value is None else "text",
        text=text_value,
        boxes=[Sam3Prompt.Box(x=20, y=30, width=50, height=60)],
        box_labels=[label],
    )


def confidences(response: object, index: int = 0) -> list[float]:
    return [p.confidence for p in response.prompt_results[index].predictions]  # type: ignore[attr-defined]


# Concept segmentation -------------------------------------------------------------------------


def test_text_prompt_answers_roboflow_shaped_polygons(concept: SegmentAnything3, bgr) -> None:
    response = concept.segment_image(bgr, [text("cat")], output_prob_thresh=0.0)
    (result,) = response.prompt_results
    assert result.prompt_index == 0 and result.echo.text == "cat" and result.echo.type == "text"
    assert result.echo.num_boxes == 0 and response.time > 0
    assert result.predictions, "thresholds at 0 on the tiny model always find something"
    scores = [p.confidence for p in result.predictions]
    assert scores == sorted(scores, reverse=True)
    for prediction in result.predictions:
        assert prediction.format == "polygon"
        assert isinstance(prediction.masks, list) and prediction.masks
        for polygon in prediction.masks:
            points = np.asarray(polygon)
            assert points.ndim == 2 and points.shape[1] == 2 and points.dtype.kind == "i"
            assert points[:, 0].min() >= 0 and points[:, 0].max() < WIDTH
            assert points[:, 1].min() >= 0 and points[:, 1].max() < HEIGHT
        # what the seed's raw-HTTP example draws with
        cv2.polylines(bgr.copy(), [np.asarray(p, np.int32) for p in prediction.masks], True, 255)


def test_rle_format_is_coco_compressed_at_image_size(concept: SegmentAnything3, bgr) -> None:
    response = concept.segment_image(bgr, [text("cat")], output_prob_thresh=0.0, format="rle")
    for prediction in response.prompt_results[0].predictions:
        assert prediction.format == "rle"
        assert prediction.masks["size"] == [HEIGHT, WIDTH]
        mask = sv.rle_to_mask(prediction.masks["counts"], (WIDTH, HEIGHT))
        assert mask.shape == (HEIGHT, WIDTH) and mask.any()


def test_json_format_answers_polygons_as_roboflow_does(concept: SegmentAnything3, bgr) -> None:
    response = concept.segment_image(bgr, [text("cat")], output_prob_thresh=0.0, format="json")
    assert {p.format for p in response.prompt_results[0].predictions} == {"polygon"}


def test_path_numpy_pil_and_bytes_give_the_same_result(
    concept: SegmentAnything3, bgr, tmp_path: pathlib.Path
) -> None:
    path = tmp_path / "image.png"
    cv2.imwrite(str(path), bgr)
    rgb_pil = Image.fromarray(bgr[:, :, ::-1])
    forms = [bgr, path, str(path), rgb_pil, path.read_bytes()]
    results = [
        confidences(concept.segment_image(f, [text("cat")], output_prob_thresh=0.0)) for f in forms
    ]
    for other in results[1:]:
        np.testing.assert_allclose(other, results[0], atol=1e-5)


def test_positive_and_negative_exemplars_reach_the_model(concept: SegmentAnything3, bgr) -> None:
    positive = concept.segment_image(bgr, [exemplar(1)], output_prob_thresh=0.0)
    negative = concept.segment_image(bgr, [exemplar(0)], output_prob_thresh=0.0)
    assert positive.prompt_results[0].echo.type == "visual"
    assert positive.prompt_results[0].echo.num_boxes == 1
    assert confidences(positive) != confidences(negative)


def test_text_narrowed_by_exemplars_differs_from_text_alone(concept: SegmentAnything3, bgr) -> None:
    alone = concept.segment_image(bgr, [text("cat")], output_prob_thresh=0.0)
    narrowed = concept.segment_image(bgr, [exemplar(0, "cat")], output_prob_thresh=0.0)
    assert narrowed.prompt_results[0].echo.text == "cat"
    assert confidences(alone) != confidences(narrowed)


def test_xyxy_and_top_left_xywh_boxes_are_the_same_exemplar(concept: SegmentAnything3, bgr) -> None:
    xywh = exemplar(1)
    xyxy = Sam3Prompt(
        type="visual", boxes=[Sam3Prompt.BoxXYXY(x0=20, y0=30, x1=70, y1=90)], box_labels=[True]
    )
    first = concept.segment_image(bgr, [xywh], output_prob_thresh=0.0)
    second = concept.segment_image(bgr, [xyxy], output_prob_thresh=0.0)
    assert confidences(first) == confidences(second)


def test_prompts_of_one_request_share_one_vision_pass(tiny_tracker: Sam3VideoTracker, bgr) -> None:
    concept = SegmentAnything3.from_tracker(tiny_tracker)  # an empty cache
    prompts = [text("cat"), text("dog"), exemplar(1), exemplar(0, "bird")]
    with vision_passes(tiny_tracker) as calls:
        response = concept.segment_image(bgr, prompts, output_prob_thresh=0.0)
    assert len(calls) == 1
    assert [r.echo.text for r in response.prompt_results] == ["cat", "dog", None, "bird"]


def test_cached_features_give_the_ports_own_forward(
    concept: SegmentAnything3, tiny_tracker: Sam3VideoTracker, bgr
) -> None:
    """The backbone-cache path equals ``Sam3Model(pixel_values=..., input_ids=...)`` end to end."""
    import torch

    ours = concept.segment_image(bgr, [text("cat")], output_prob_thresh=0.0)
    processor = tiny_tracker.processor
    rgb = bgr[:, :, ::-1].copy()
    with torch.inference_mode():
        pixels = processor(images=rgb, return_tensors="pt").pixel_values
        tokens = processor.tokenizer(
            ["cat"], return_tensors="pt", padding="max_length", max_length=32
        )
        outputs = tiny_tracker.model.detector_model(
            pixel_values=pixels, input_ids=tokens.input_ids, attention_mask=tokens.attention_mask
        )
        (port,) = processor.image_processor.post_process_instance_segmentation(
            outputs, threshold=0.0, mask_threshold=0.5, target_sizes=[(HEIGHT, WIDTH)]
        )
    expected = sorted(
        (
            float(score)
            for score, mask in zip(port["scores"], port["masks"], strict=True)
            if mask.any()
        ),
        reverse=True,
    )
    np.testing.assert_allclose(confidences(ours), expected, atol=1e-4)


def test_batched_prompts_match_one_request_per_prompt(concept: SegmentAnything3, bgr) -> None:
    prompts = [text("cat"), text("dog"), exemplar(1), exemplar(0, "bird")]
    batched = concept.segment_image(bgr, prompts, output_prob_thresh=0.0)
    for index, prompt in enumerate(prompts):
        alone = concept.segment_image(bgr, [prompt], output_prob_thresh=0.0)
        np.testing.assert_allclose(confidences(batched, index), confidences(alone), atol=1e-4)


def test_prompt_threshold_overrides_the_request_threshold(concept: SegmentAnything3, bgr) -> None:
    response = concept.segment_image(
        bgr, [text("cat", output_prob_thresh=0.0), text("cat")], output_prob_thresh=1.0
    )
    assert response.prompt_results[0].predictions
    assert response.prompt_results[1].predictions == []


def test_cross_prompt_nms_drops_duplicates_of_a_better_instance(
    concept: SegmentAnything3, bgr
) -> None:
    prompts = [text("cat"), text("cat")]
    plain = concept.segment_image(bgr, prompts, output_prob_thresh=0.0)
    assert len(confidences(plain, 0)) == len(confidences(plain, 1)) > 0
    nms = concept.segment_image(bgr, prompts, output_prob_thresh=0.0, nms_iou_threshold=0.5)
    # the same prompt twice: every instance of the second is a duplicate of the first's
    assert len(confidences(nms, 0)) + len(confidences(nms, 1)) == len(confidences(plain, 0))


# Interactive segmentation ---------------------------------------------------------------------

POINT = {"x": 40, "y": 60, "positive": True}


def test_embed_image_returns_features_shape_and_a_stable_id(interactive, bgr) -> None:
    embedding, shape, image_id = interactive.embed_image(bgr)
    assert shape == (HEIGHT, WIDTH)
    assert all(t.shape[0] == 1 and t.ndim == 3 for t in embedding)  # (1, h*w, C)
    assert interactive.embed_image(bgr.copy())[2] == image_id
    assert interactive.embed_image(bgr, image_id="mine")[2] == "mine"


@pytest.mark.parametrize(
    "prompts",
    [
        {"points": [POINT]},
        {"points": [POINT, {"x": 100, "y": 20, "positive": False}]},
        {"box": {"x": 45, "y": 60, "width": 50, "height": 60}},
        {"points": [POINT], "box": {"x": 45, "y": 60, "width": 50, "height": 60}},
        {"prompts": [{"points": [POINT]}]},
    ],
    ids=["point", "negative-point", "box", "points-and-box", "prompt-set"],
)
def test_points_and_boxes_give_one_mask_at_image_size(interactive, bgr, prompts) -> None:
    _, _, image_id = interactive.embed_image(bgr)
    masks, scores, logits = interactive.segment_image(image_id=image_id, prompts=prompts)
    assert masks.shape == (1, HEIGHT, WIDTH) and masks.dtype == bool
    assert scores.shape == (1,) and scores.dtype == np.float32
    assert logits.ndim == 3 and logits.shape[0] == 1 and logits.dtype == np.float32


@pytest.mark.parametrize(
    ("prompts", "port_inputs"),
    [
        ({"points": [POINT]}, {"input_points": [[[[40, 60]]]], "input_labels": [[[1]]]}),
        (
            {"box": {"x": 60, "y": 50, "width": 40, "height": 30}},
            {"input_boxes": [[[40, 35, 80, 65]]]},
        ),
    ],
    ids=["point", "box"],
)
def test_interactive_path_equals_the_ports_sam3_tracker_model(
    interactive, tiny_tracker: Sam3VideoTracker, bgr, prompts, port_inputs
) -> None:
    """The port's ``Sam3TrackerModel`` given the video model's weights answers the same."""
    import torch
    from transformers import Sam3TrackerModel

    video = tiny_tracker.model
    port = Sam3TrackerModel(video.config).eval()
    for name in ("prompt_encoder", "mask_decoder", "shared_image_embedding"):
        getattr(port, name).load_state_dict(getattr(video.tracker_model, name).state_dict())
    port.no_memory_embedding.data.copy_(video.tracker_model.no_memory_embedding.data)
    port.vision_encoder.backbone.load_state_dict(
        video.detector_model.vision_encoder.backbone.state_dict()
    )
    port.vision_encoder.neck.load_state_dict(video.tracker_neck.state_dict())
    size = video.tracker_model.prompt_encoder.input_image_size
    scale = {
        "input_points": (size / WIDTH, size / HEIGHT),
        "input_boxes": (size / WIDTH, size / HEIGHT) * 2,
    }
    inputs = {
        key: torch.tensor(value) * torch.tensor(scale[key]) if key in scale else torch.tensor(value)
        for key, value in port_inputs.items()
    }
    pixels = tiny_tracker.processor(images=bgr[:, :, ::-1].copy(), return_tensors="pt").pixel_values
    with torch.inference_mode():
        expected = port(pixel_values=pixels, multimask_output=True, **inputs)
    _, scores, logits = interactive.segment_image(image=bgr, prompts=prompts, multimask_output=True)
    np.testing.assert_allclose(scores, expected.iou_scores[0, 0].numpy(), atol=1e-5)
    np.testing.assert_allclose(logits, expected.pred_masks[0, 0].numpy(), atol=1e-4)


def test_negative_point_changes_the_result(interactive, bgr) -> None:
    _, _, image_id = interactive.embed_image(bgr)
    positive = interactive.segment_image(image_id=image_id, prompts={"points": [POINT]})
    negative = interactive.segment_image(
        image_id=image_id, prompts={"points": [{**POINT, "positive": False}]}
    )
    assert not np.array_equal(positive[2], negative[2])


def test_multimask_output_gives_three_candidates(interactive, bgr) -> None:
    masks, scores, logits = interactive.segment_image(
        image=bgr, prompts={"points": [POINT]}, multimask_output=True
    )
    assert masks.shape == (3, HEIGHT, WIDTH) and scores.shape == (3,) and logits.shape[0] == 3


def test_passing_logits_back_refines_the_mask(interactive, bgr) -> None:
    _, _, image_id = interactive.embed_image(bgr)
    first = interactive.segment_image(image_id=image_id, prompts={"points": [POINT]})
    again = interactive.segment_image(image_id=image_id, prompts={"points": [POINT]})
    refined = interactive.segment_image(
        image_id=image_id, prompts={"points": [POINT]}, mask_input=first[2][0]
    )
    np.testing.assert_array_equal(first[2], again[2])
    assert not np.array_equal(first[2], refined[2])


def test_box_is_centre_anchored(interactive, bgr) -> None:
    _, _, image_id = interactive.embed_image(bgr)
    # Inside the image only if (x, y) is the centre: top-left anchored it would spill out.
    near_corner = {"x": WIDTH - 10, "y": HEIGHT - 10, "width": 20, "height": 20}
    interactive.segment_image(image_id=image_id, prompts={"box": near_corner})
    with pytest.raises(ValueError, match=r"prompts\.box"):
        interactive.segment_image(
            image_id=image_id, prompts={"box": {"x": 5, "y": 5, "width": 20, "height": 20}}
        )


def test_embedding_cache_serves_clicks_without_a_vision_pass(
    interactive, tiny_tracker: Sam3VideoTracker, bgr
) -> None:
    with vision_passes(tiny_tracker) as calls:
        _, _, image_id = interactive.embed_image(bgr)
        interactive.embed_image(bgr)
        for _ in range(3):
            interactive.segment_image(image_id=image_id, prompts={"points": [POINT]})
    assert len(calls) == 1


def test_one_embedding_serves_both_apis_when_they_share_a_cache(
    tiny_tracker: Sam3VideoTracker, bgr
) -> None:
    clicks = Sam3ForInteractiveImageSegmentation.from_tracker(tiny_tracker)
    concepts = SegmentAnything3.from_tracker(tiny_tracker, cache=clicks.cache)
    with vision_passes(tiny_tracker) as calls:
        _, _, image_id = clicks.embed_image(bgr)
        concepts.segment_image(bgr, [text("cat")], output_prob_thresh=0.0, image_id=image_id)
        clicks.segment_image(image_id=image_id, prompts={"points": [POINT]})
    assert len(calls) == 1


def test_concept_requests_cache_only_under_an_image_id(tiny_tracker: Sam3VideoTracker, bgr) -> None:
    concept = SegmentAnything3.from_tracker(tiny_tracker)
    with vision_passes(tiny_tracker) as calls:
        for _ in range(2):
            concept.segment_image(bgr, [text("cat")], output_prob_thresh=0.0)
    assert len(calls) == 2 and len(concept.cache) == 0
    with vision_passes(tiny_tracker) as calls:
        for _ in range(2):
            concept.segment_image(bgr, [text("cat")], output_prob_thresh=0.0, image_id="photo")
    assert len(calls) == 1 and concept.cache.ids() == ["photo"]


def test_embedding_cache_is_bounded_by_count(tiny_tracker: Sam3VideoTracker, bgr) -> None:
    model = Sam3ForInteractiveImageSegmentation.from_tracker(tiny_tracker, cache_entries=2)
    ids = [model.embed_image(np.roll(bgr, shift, axis=1))[2] for shift in range(3)]
    assert model.cache.ids() == ids[1:]
    with pytest.raises(ValueError, match=ids[0]):
        model.segment_image(image_id=ids[0], prompts={"points": [POINT]})


def test_embedding_cache_is_bounded_by_bytes(tiny_tracker: Sam3VideoTracker, bgr) -> None:
    probe = Sam3ForInteractiveImageSegmentation.from_tracker(tiny_tracker)
    probe.embed_image(bgr)
    one = probe.cache.nbytes
    model = Sam3ForInteractiveImageSegmentation.from_tracker(
        tiny_tracker, cache_entries=10, cache_bytes=one * 3 // 2
    )
    for shift in range(3):
        model.embed_image(np.roll(bgr, shift, axis=0))
    assert len(model.cache) == 1 and model.cache.nbytes == one


# One copy of the weights ----------------------------------------------------------------------


def test_image_apis_run_on_the_loaded_video_model(tiny_tracker: Sam3VideoTracker) -> None:
    before = sum(p.numel() for p in tiny_tracker.model.parameters())
    concept = SegmentAnything3.from_tracker(tiny_tracker)
    interactive = Sam3ForInteractiveImageSegmentation.from_tracker(tiny_tracker)
    assert concept.tracker is tiny_tracker and interactive.tracker is tiny_tracker
    assert concept.detector is tiny_tracker.model.detector_model
    assert sum(p.numel() for p in tiny_tracker.model.parameters()) == before


def test_model_id_loads_a_directory_and_the_roboflow_name(
    tiny_model_dir: pathlib.Path, monkeypatch: pytest.MonkeyPatch, bgr
) -> None:
    by_directory = SegmentAnything3(model_id=str(tiny_model_dir), device="cpu")
    assert by_directory.segment_image(bgr, [text("cat")], output_prob_thresh=0.0).prompt_results
    monkeypatch.setenv("SAM3_STREAM_MODEL", str(tiny_model_dir))
    by_name = Sam3ForInteractiveImageSegmentation(model_id="sam3/sam3_final", device="cpu")
    assert by_name.embed_image(bgr)[1] == (HEIGHT, WIDTH)


def test_real_model_id_without_local_weights_never_downloads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SAM3_STREAM_MODEL", raising=False)
    with pytest.raises(ModelLoadError, match="never downloaded"):
        SegmentAnything3(model_id="facebook/sam3", device="cpu")


# Bad input ------------------------------------------------------------------------------------


def _png_claiming(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("1", (width, height)).save(buffer, format="PNG")
    return buffer.getvalue()


BOX = {"x": 10, "y": 10, "width": 20, "height": 20}
CONCEPT_BAD_INPUTS = [
    ("boxes-without-labels", {"prompts": [{"type": "visual", "boxes": [BOX]}]}, "box_labels"),
    (
        "length-mismatch",
        {"prompts": [{"type": "visual", "boxes": [BOX], "box_labels": [1, 0]}]},
        "box_labels",
    ),
    (
        "zero-area-box",
        {"prompts": [{"type": "visual", "boxes": [{**BOX, "width": 0}], "box_labels": [1]}]},
        r"prompts\[0\]\.boxes\[0\]",
    ),
    (
        "out-of-image-box",
        {"prompts": [{"type": "visual", "boxes": [{**BOX, "x": WIDTH - 5}], "box_labels": [1]}]},
        r"prompts\[0\]\.boxes\[0\]",
    ),
    ("no-prompts", {"prompts": []}, "prompts"),
    ("too-many-prompts", {"prompts": [{"text": "cat"}] * (MAX_PROMPTS + 1)}, "prompts"),
    ("unknown-format", {"format": "mask"}, "format"),
    ("undecodable-image", {"image": b"not an image"}, "image"),
    ("oversized-image", {"image": _png_claiming(7681, 4320)}, "image"),
    ("visual-without-box", {"prompts": [{"type": "visual", "text": "cat"}]}, "boxes"),
    ("threshold-out-of-range", {"output_prob_thresh": 1.5}, "output_prob_thresh"),
    ("text-too-long", {"prompts": [{"text": "cat " * 40}]}, r"prompts\[0\]"),
]


@pytest.mark.parametrize(
    ("changes", "field"),
    [pytest.param(c, f, id=name) for name, c, f in CONCEPT_BAD_INPUTS],
)
def test_bad_concept_input_is_a_value_error_naming_the_field(
    concept: SegmentAnything3, bgr, changes: dict, field: str
) -> None:
    call = {"image": bgr, "prompts": [{"text": "cat"}], "format": "polygon"} | changes
    with pytest.raises(ValueError, match=field):
        concept.segment_image(**call)


def test_prompt_objects_refuse_bad_boxes_when_built() -> None:
    with pytest.raises(ValueError, match="box_labels"):
        Sam3Prompt(type="visual", boxes=[Sam3Prompt.Box(x=0, y=0, width=1, height=1)])
    with pytest.raises(ValueError, match="boxes"):
        Sam3Prompt(type="visual", text="cat")


@pytest.mark.parametrize(
    ("call", "field"),
    [
        pytest.param({"image_id": "never-embedded"}, "never-embedded", id="unknown-image-id"),
        pytest.param({"image_id": None}, "image_id", id="no-image-nor-id"),
        pytest.param({"prompts": {}}, "prompts", id="no-prompt"),
        pytest.param(
            {"prompts": {"points": [{"x": WIDTH + 1, "y": 0}]}}, r"points\[0\]", id="point-outside"
        ),
        pytest.param(
            {"prompts": {"box": {**BOX, "height": 0}}}, r"prompts\.box", id="zero-area-box"
        ),
        pytest.param({"mask_input": np.zeros((3, 3))}, "mask_input", id="bad-mask-input"),
        pytest.param({"image": b"\x89PNG broken"}, "image", id="undecodable-image"),
    ],
)
def test_bad_interactive_input_is_a_value_error_naming_the_field(
    interactive, bgr, call: dict, field: str
) -> None:
    _, _, image_id = interactive.embed_image(bgr)
    arguments = {"image_id": image_id, "prompts": {"points": [POINT]}} | call
    with pytest.raises(ValueError, match=field):
        interactive.segment_image(**arguments)
