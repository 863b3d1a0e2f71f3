"""Single-image concept segmentation (Roboflow's ``SegmentAnything3``): text, exemplars, or both.

Runs the detector inside the loaded ``Sam3VideoModel`` (``model.detector_model``, a
``Sam3Model``): no second copy of the weights. The vision backbone runs once per image (its
output cached by ``image_id``, ``tracker.image.vision``); every prompt of the request then runs
as one batch through the prompt-dependent layers (text encoder,
geometry encoder, DETR, mask decoder). Prompts with exemplar boxes form a second batch: a
prompt without boxes must not see the geometry encoder's padding, which would change its output.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from tracker.image.embedding_cache import EmbeddingCache
from tracker.image.image_input import ImageLike, load_rgb
from tracker.image.loading import load_tracker
from tracker.image.masks import check_format, encode_mask
from tracker.image.prompts import Sam3Prompt, check_prompts
from tracker.image.responses import (
    Sam3PromptEcho,
    Sam3PromptResult,
    Sam3SegmentationPrediction,
    Sam3SegmentationResponse,
)
from tracker.image.vision import ImageEncoder
from tracker.inputs import check_threshold
from tracker.model import PROMPT_TOKENS, Sam3VideoTracker
from tracker.postprocess import generic_nms

logger = logging.getLogger(__name__)

MASK_THRESHOLD = 0.5
"""Mask probability above which a pixel belongs to an instance (the port's default)."""

_BOX_PAD_LABEL = -10  # the port's label for a padding box, masked out by the geometry encoder


@dataclass(frozen=True)
class _Instance:
    """One instance before encoding: (H, W) bool mask at the image's resolution, its score."""

    prompt_index: int
    score: float
    mask: np.ndarray


class SegmentAnything3:
    """Find every instance of each prompt's concept on one image.

    Examples:
        >>> from tracker import SegmentAnything3, Sam3Prompt, build_tiny_model
        >>> model = SegmentAnything3(model_id=str(build_tiny_model("/tmp/tiny-sam3")), device="cpu")
        >>> import numpy as np
        >>> response = model.segment_image(np.zeros((64, 80, 3), np.uint8),
        ...                                [Sam3Prompt(type="text", text="cat")],
        ...                                output_prob_thresh=0.0)
        >>> response.prompt_results[0].echo.text
        'cat'
    """

    def __init__(
        self,
        model_id: str = "sam3/sam3_final",
        device: str | torch.device = "auto",
        dtype: str | torch.dtype = "auto",
        *,
        tracker: Sam3VideoTracker | None = None,
        cache: EmbeddingCache | None = None,
    ) -> None:
        self.model_id = model_id
        self.tracker = tracker if tracker is not None else load_tracker(model_id, device, dtype)
        self.encoder = ImageEncoder(self.tracker, cache if cache is not None else EmbeddingCache())

    @classmethod
    def from_tracker(
        cls,
        tracker: Sam3VideoTracker,
        model_id: str | None = None,
        *,
        cache: EmbeddingCache | None = None,
    ) -> SegmentAnything3:
        """Serve image requests from an already-loaded tracker: the same weights, no reload.

        Pass the interactive segmenter's ``cache`` to share embeddings between the two APIs.
        """
        return cls(model_id=model_id or tracker.name, tracker=tracker, cache=cache)

    @property
    def cache(self) -> EmbeddingCache:
        """Backbone outputs by ``image_id`` (shareable with the interactive segmenter)."""
        return self.encoder.cache

    @property
    def detector(self) -> Any:
        """The ``Sam3Model`` inside the video model (vision encoder included)."""
        return self.tracker.model.detector_model

    def segment_image(
        self,
        image: ImageLike,
        prompts: Sequence[Sam3Prompt | dict],
        output_prob_thresh: float = 0.5,
        format: str = "polygon",
        nms_iou_threshold: float | None = None,
        *,
        image_id: str | None = None,
    ) -> Sam3SegmentationResponse:
        """Segment every instance each prompt describes.

        Args:
            image: a path, a numpy BGR array (OpenCV's layout), a PIL image, or encoded bytes.
            prompts: 1 to ``MAX_PROMPTS`` ``Sam3Prompt`` (or dicts of the same fields).
            output_prob_thresh: keep instances scoring at least this (a prompt's own
                ``output_prob_thresh`` overrides it).
            format: ``polygon``, ``rle`` or ``json`` (answered as polygon, as Roboflow does).
            nms_iou_threshold: when set, an instance overlapping a better one of any prompt
                by more than this mask IoU is dropped (cross-prompt NMS); None disables it.
            image_id: cache the image's backbone output under this id, or reuse it when cached
                (e.g. by ``embed_image`` on a shared cache); without it nothing is cached.

        Returns:
            ``prompt_results`` in prompt order, each with its ``echo`` and its predictions
            best first; ``time`` in seconds.

        Raises:
            ValueError: naming the field at fault (``image``, ``prompts[i].boxes[j]``,
                ``format``, ``output_prob_thresh``, ``nms_iou_threshold``...).
        """
        started = time.perf_counter()
        reported_format = check_format(format)
        threshold = _check_unit(output_prob_thresh, "output_prob_thresh")
        nms = (
            None
            if nms_iou_threshold is None
            else _check_unit(nms_iou_threshold, "nms_iou_threshold")
        )
        rgb = load_rgb(image)
        height, width = rgb.shape[:2]
        parsed = check_prompts(prompts, width, height)
        self.tracker.check_class_texts([p.model_text() for p in parsed], field="prompts")
        instances = self._instances(rgb, parsed, threshold, image_id)
        if nms is not None:
            instances = _cross_prompt_nms(instances, nms)
        results = []
        for index, prompt in enumerate(parsed):
            mine = sorted((i for i in instances if i.prompt_index == index), key=lambda i: -i.score)
            results.append(
                Sam3PromptResult(
                    prompt_index=index,
                    echo=Sam3PromptEcho(
                        prompt_index=index,
                        type=prompt.type,
                        text=prompt.text,
                        num_boxes=len(prompt.boxes or []),
                    ),
                    predictions=[
                        Sam3SegmentationPrediction(
                            masks=encode_mask(i.mask, reported_format),
                            confidence=i.score,
                            format=reported_format,
                        )
                        for i in mine
                    ],
                )
            )
        return Sam3SegmentationResponse(prompt_results=results, time=time.perf_counter() - started)

    def _instances(
        self, rgb: np.ndarray, prompts: list[Sam3Prompt], threshold: float, image_id: str | None
    ) -> list[_Instance]:
        """One vision pass, then one batched detector pass per group (text-only, with boxes)."""
        height, width = rgb.shape[:2]
        groups = [
            [i for i, p in enumerate(prompts) if not p.boxes],
            [i for i, p in enumerate(prompts) if p.boxes],
        ]
        found: list[_Instance] = []
        _, embedding = self.encoder.encode(rgb, image_id, cache_by_hash=False)
        with self.tracker.exclusive():
            vision = self.encoder.detector_features(embedding)
            for group in groups:
                if not group:
                    continue
                outputs = self.detector(
                    vision_embeds=_repeat_vision(vision, len(group)),
                    **self._prompt_inputs([prompts[i] for i in group], width, height),
                )
                for row, index in enumerate(group):
                    keep_at = _prompt_threshold(prompts[index], threshold)
                    scores, masks = _kept_instances(outputs, row, keep_at, height, width)
                    for score, mask in zip(scores, masks, strict=True):
                        if mask.any():
                            found.append(_Instance(index, float(score), mask))
        return found

    def _prompt_inputs(
        self, prompts: list[Sam3Prompt], width: int, height: int
    ) -> dict[str, torch.Tensor]:
        """Token ids and, when any prompt has exemplars, (N, B, 4) cxcywh boxes in [0, 1]."""
        device = self.tracker.device
        encoded = self.tracker.processor.tokenizer(
            [p.model_text() for p in prompts],
            return_tensors="pt",
            padding="max_length",
            max_length=PROMPT_TOKENS,
        )
        inputs: dict[str, torch.Tensor] = {
            "input_ids": encoded.input_ids.to(device),  # (N, PROMPT_TOKENS)
            "attention_mask": encoded.attention_mask.to(device),
        }
        most = max(len(p.boxes or []) for p in prompts)
        if most == 0:
            return inputs
        boxes = torch.zeros(len(prompts), most, 4)  # (N, B, 4) cx, cy, w, h in [0, 1]
        labels = torch.full((len(prompts), most), _BOX_PAD_LABEL, dtype=torch.long)  # (N, B)
        for row, prompt in enumerate(prompts):
            for col, ((x0, y0, x1, y1), label) in enumerate(
                zip(prompt.boxes_xyxy(), prompt.labels(), strict=True)
            ):
                boxes[row, col] = torch.tensor(
                    [
                        (x0 + x1) / 2 / width,
                        (y0 + y1) / 2 / height,
                        (x1 - x0) / width,
                        (y1 - y0) / height,
                    ]
                )
                labels[row, col] = label
        inputs["input_boxes"] = boxes.to(device)
        inputs["input_boxes_labels"] = labels.to(device)
        return inputs


def _kept_instances(
    outputs: Any, row: int, keep_at: float, height: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Scores and (K, H, W) bool masks of one prompt's queries scoring at least ``keep_at``.

    The port's ``post_process_instance_segmentation`` arithmetic (query score times presence
    score; mask probabilities resized bilinearly, then above ``MASK_THRESHOLD``), except that
    queries are filtered before their masks are resized: facebook/sam3 has 200 queries per
    prompt, and resizing all of them for 16 prompts to a 1080p image would take 26 GB.
    """
    scores = outputs.pred_logits[row].float().sigmoid()  # (Q,)
    if outputs.presence_logits is not None:
        scores = scores * outputs.presence_logits[row].float().sigmoid()
    keep = scores >= keep_at
    probabilities = outputs.pred_masks[row][keep].float().sigmoid()  # (K, h, w)
    if probabilities.shape[0] == 0:
        return np.zeros(0, np.float32), np.zeros((0, height, width), bool)
    resized = F.interpolate(
        probabilities[None], size=(height, width), mode="bilinear", align_corners=False
    )[0]  # (K, H, W)
    return scores[keep].cpu().numpy(), (resized > MASK_THRESHOLD).cpu().numpy()


def _repeat_vision(vision: Any, count: int) -> Any:
    """The one image's vision output, viewed as a batch of ``count`` (no copy)."""
    if count == 1:
        return vision

    def expand(tensors: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        return tuple(t.expand(count, *t.shape[1:]) for t in tensors)

    return type(vision)(
        last_hidden_state=vision.last_hidden_state.expand(
            count, *vision.last_hidden_state.shape[1:]
        ),
        fpn_hidden_states=expand(vision.fpn_hidden_states),
        fpn_position_encoding=expand(vision.fpn_position_encoding),
    )


def _prompt_threshold(prompt: Sam3Prompt, request_threshold: float) -> float:
    return request_threshold if prompt.output_prob_thresh is None else prompt.output_prob_thresh


def _check_unit(value: float, field: str) -> float:
    try:
        return check_threshold(value)
    except ValueError as error:
        raise ValueError(f"{field}: {error}") from None


def _cross_prompt_nms(instances: list[_Instance], iou_threshold: float) -> list[_Instance]:
    """Greedy mask NMS across every prompt's instances (the port's ``generic_nms``)."""
    if len(instances) < 2:
        return instances
    flat = torch.from_numpy(np.stack([i.mask.reshape(-1) for i in instances])).float()  # (N, HW)
    inter = flat @ flat.T  # (N, N)
    area = flat.sum(dim=1)
    union = area[:, None] + area[None, :] - inter
    ious = inter / union.clamp(min=1.0)
    scores = torch.tensor([i.score for i in instances])
    kept = generic_nms(ious, scores, iou_threshold).tolist()
    return [instances[k] for k in sorted(kept)]
