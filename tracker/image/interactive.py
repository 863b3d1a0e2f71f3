"""Interactive point/box segmentation on one image (Roboflow's SAM2-style ``embed_image`` API).

Runs on the loaded ``Sam3VideoModel``: the detector's vision backbone and the video model's
``tracker_neck`` give the features (``tracker.image.vision``), and the tracker's prompt encoder
and mask decoder (``model.tracker_model``) turn clicks into masks, exactly as the video model
does on a frame that has no memory yet. So no weight is loaded twice: the port's separate
``Sam3TrackerModel`` would hold a second vision encoder.

Embeddings are cached by ``image_id`` (``EmbeddingCache``): a client embeds once, clicks many
times, and refines a mask by passing the previous call's logits back as ``mask_input``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from tracker.image.embedding_cache import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_ENTRIES,
    EmbeddingCache,
)
from tracker.image.image_input import ImageLike, load_rgb
from tracker.image.loading import load_tracker
from tracker.image.vision import ImageEncoder
from tracker.model import Sam3VideoTracker

MAX_POINTS = 64
"""The most points one prompt may carry: each is a token the mask decoder attends to."""


class Sam3ForInteractiveImageSegmentation:
    """Points and boxes -> masks on a cached image embedding.

    Examples:
        >>> import numpy as np
        >>> from tracker import Sam3ForInteractiveImageSegmentation, build_tiny_model
        >>> model = Sam3ForInteractiveImageSegmentation(
        ...     model_id=str(build_tiny_model("/tmp/tiny-sam3")), device="cpu")
        >>> _, shape, image_id = model.embed_image(np.zeros((64, 80, 3), np.uint8))
        >>> masks, scores, logits = model.segment_image(
        ...     image_id=image_id, prompts={"points": [{"x": 10, "y": 20, "positive": True}]})
        >>> masks.shape
        (1, 64, 80)
    """

    def __init__(
        self,
        model_id: str = "sam3/sam3_final",
        device: str | torch.device = "auto",
        dtype: str | torch.dtype = "auto",
        *,
        tracker: Sam3VideoTracker | None = None,
        cache_entries: int = DEFAULT_MAX_ENTRIES,
        cache_bytes: int = DEFAULT_MAX_BYTES,
        cache: EmbeddingCache | None = None,
    ) -> None:
        self.model_id = model_id
        self.tracker = tracker if tracker is not None else load_tracker(model_id, device, dtype)
        if cache is None:
            cache = EmbeddingCache(max_entries=cache_entries, max_bytes=cache_bytes)
        self.encoder = ImageEncoder(self.tracker, cache)

    @classmethod
    def from_tracker(
        cls,
        tracker: Sam3VideoTracker,
        model_id: str | None = None,
        *,
        cache_entries: int = DEFAULT_MAX_ENTRIES,
        cache_bytes: int = DEFAULT_MAX_BYTES,
        cache: EmbeddingCache | None = None,
    ) -> Sam3ForInteractiveImageSegmentation:
        """Serve interactive requests from an already-loaded tracker: the same weights.

        ``cache`` (e.g. a ``SegmentAnything3``'s) shares embeddings between the two APIs;
        without it a cache of ``cache_entries`` images / ``cache_bytes`` bytes is made.
        """
        return cls(
            model_id=model_id or tracker.name,
            tracker=tracker,
            cache_entries=cache_entries,
            cache_bytes=cache_bytes,
            cache=cache,
        )

    @property
    def cache(self) -> EmbeddingCache:
        """Backbone outputs by ``image_id``."""
        return self.encoder.cache

    @property
    def _sam(self) -> Any:
        """The tracker's prompt encoder + mask decoder holder (``Sam3TrackerVideoModel``)."""
        return self.tracker.model.tracker_model

    def embed_image(
        self, image: ImageLike, image_id: str | None = None
    ) -> tuple[tuple[torch.Tensor, ...], tuple[int, int], str]:
        """Run the vision pass once and cache it.

        Args:
            image: a path, a numpy BGR array, a PIL image, or encoded bytes.
            image_id: the id to cache under; by default a hash of the decoded pixels, so the
                same image embeds to the same id.

        Returns:
            (embedding: the backbone output, ``((1, h*w, C),)``; img_shape: (height, width);
            image_id).
        """
        cached_id, entry = self.encoder.encode(load_rgb(image), image_id)
        assert cached_id is not None  # always cached: clicks follow
        return entry.features, entry.image_shape, cached_id

    def segment_image(
        self,
        image: ImageLike | None = None,
        image_id: str | None = None,
        prompts: Mapping[str, Any] | None = None,
        multimask_output: bool = False,
        mask_input: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Masks for one prompt: positive/negative points, a centre-anchored box, or both.

        Args:
            image: embedded first when given (cached under ``image_id`` or its hash).
            image_id: an id ``embed_image`` returned; required without ``image``.
            prompts: ``{"points": [{"x", "y", "positive"}], "box": {"x", "y", "width",
                "height"}}`` in pixels; the box is centre-anchored. ``{"prompts": [one]}``
                (what Roboflow's client sends) is accepted too.
            multimask_output: three candidate masks instead of the best one.
            mask_input: (h, w) or (1, h, w) logits from a previous call (``logits[k]``), to
                refine that mask with the new clicks.

        Returns:
            masks: (K, H, W) bool at the image's resolution (K = 3 with multimask, else 1);
            scores: (K,) float32 predicted IoU; logits: (K, h, w) float32 low-resolution.

        Raises:
            ValueError: naming the field: ``image_id`` unknown, ``prompts`` empty or malformed,
                a point or box outside the image, a zero-area box, a bad ``mask_input``.
        """
        if image is not None:
            _, _, image_id = self.embed_image(image, image_id)
        if image_id is None:
            raise ValueError("image_id: give an image or the image_id embed_image returned")
        entry = self.cache.get(image_id)
        height, width = entry.image_shape
        points, labels, box = _parse_prompt(prompts, width, height)
        sam = self._sam
        size = int(sam.prompt_encoder.input_image_size)
        scale = torch.tensor([size / width, size / height])
        with self.tracker.exclusive():
            features = self.encoder.tracker_features(entry)
            device = features[-1].device
            input_points = input_labels = input_boxes = input_masks = None
            if points:
                input_points = (torch.tensor(points) * scale)[None, None].to(device)  # (1,1,P,2)
                input_labels = torch.tensor(labels, dtype=torch.int32)[None, None].to(device)
            if box is not None:
                input_boxes = (torch.tensor(box) * scale.repeat(2))[None, None].to(
                    device
                )  # (1,1,4)
            if mask_input is not None:
                input_masks = _mask_input(mask_input, sam.prompt_encoder.mask_input_size, device)
            sparse, dense = sam.prompt_encoder(
                input_points=input_points,
                input_labels=input_labels,
                input_boxes=input_boxes,
                input_masks=input_masks,
            )
            low_res, iou, _, _ = sam.mask_decoder(
                image_embeddings=features[-1],
                image_positional_embeddings=sam.get_image_wide_positional_embeddings(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=multimask_output,
                high_resolution_features=list(features[:-1]),
            )
            logits = low_res[0, 0].float()  # (K, h, w)
            # As the port's post_process_masks: to the model's square input, then the image.
            upscaled = F.interpolate(
                logits[None], (size, size), mode="bilinear", align_corners=False
            )
            upscaled = F.interpolate(
                upscaled, (height, width), mode="bilinear", align_corners=False
            )
            masks = (upscaled[0] > 0).cpu().numpy()  # (K, H, W) bool
            scores = iou[0, 0].float().cpu().numpy().astype(np.float32)  # (K,)
        return masks, scores, logits.cpu().numpy().astype(np.float32)


def _parse_prompt(
    prompts: Mapping[str, Any] | None, width: int, height: int
) -> tuple[list[list[float]], list[int], list[float] | None]:
    """(points [[x, y]], labels [1|0], box [x0, y0, x1, y1] or None) in pixels, validated."""
    if isinstance(prompts, Mapping) and "prompts" in prompts:
        inner = prompts["prompts"]
        if not isinstance(inner, list) or len(inner) != 1:
            raise ValueError("prompts.prompts must hold exactly one prompt per call")
        prompts = inner[0]
    if not isinstance(prompts, Mapping) or not (prompts.get("points") or prompts.get("box")):
        raise ValueError('prompts: give {"points": [{"x", "y", "positive"}]} and/or a "box"')
    points: list[list[float]] = []
    labels: list[int] = []
    raw_points = prompts.get("points") or []
    if not isinstance(raw_points, list) or len(raw_points) > MAX_POINTS:
        raise ValueError(f"prompts.points must be a list of at most {MAX_POINTS} points")
    for index, point in enumerate(raw_points):
        field = f"prompts.points[{index}]"
        try:
            x, y, positive = float(point["x"]), float(point["y"]), point.get("positive", True)
        except (TypeError, KeyError, ValueError):
            raise ValueError(f"{field} must be {{x, y, positive}} numbers") from None
        if not (0 <= x <= width and 0 <= y <= height):
            raise ValueError(f"{field} ({x}, {y}) lies outside the {width}x{height} image")
        points.append([x, y])
        labels.append(1 if bool(positive) else 0)
    box = None
    raw_box = prompts.get("box")
    if raw_box is not None:
        try:
            cx, cy = float(raw_box["x"]), float(raw_box["y"])
            w, h = float(raw_box["width"]), float(raw_box["height"])
        except (TypeError, KeyError, ValueError):
            raise ValueError(
                "prompts.box must be {x, y, width, height} (centre-anchored)"
            ) from None
        if w <= 0 or h <= 0:
            raise ValueError(f"prompts.box has zero or negative area ({w}x{h})")
        box = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
        if box[0] < 0 or box[1] < 0 or box[2] > width or box[3] > height:
            raise ValueError(
                f"prompts.box (centre {cx}, {cy}, {w}x{h}) lies outside the {width}x{height} image"
            )
    return points, labels, box


def _mask_input(mask_input: Any, size: tuple[int, int], device: torch.device) -> torch.Tensor:
    """Previous logits (h, w) or (1, h, w) -> (1, 1, h, w) float on the device."""
    array = np.asarray(mask_input, dtype=np.float32)
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2 or tuple(array.shape) != tuple(size):
        raise ValueError(
            f"mask_input must be one mask's logits of shape {tuple(size)}, got {array.shape}: "
            f"pass logits[k] from a previous segment_image"
        )
    return torch.from_numpy(array)[None, None].to(device)
