"""The one vision pass of an image request, cached by ``image_id`` and shared by both image APIs.

The expensive part of SAM3 on an image is the ViT backbone. Its output (``last_hidden_state``)
is all either API needs: the detector's FPN neck turns it into concept-segmentation features,
the video model's ``tracker_neck`` into interactive-segmentation features, each about 4% of the
backbone's FLOPs for facebook/sam3 (215 and 217 against 5,399 GFLOP at 1008 px). So the cache
holds the backbone output only, and an image embedded once serves concept prompts and clicks
alike without another backbone pass.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch

from tracker.image.embedding_cache import CachedEmbedding, EmbeddingCache
from tracker.model import Sam3VideoTracker


def default_image_id(rgb: np.ndarray) -> str:
    """The id an image is cached under when the caller gives none: a hash of its pixels."""
    return hashlib.sha1(str(rgb.shape).encode() + rgb.tobytes()).hexdigest()


class ImageEncoder:
    """Backbone pass + cache; the necks that turn a cached output into each API's features."""

    def __init__(self, tracker: Sam3VideoTracker, cache: EmbeddingCache) -> None:
        self.tracker = tracker
        self.cache = cache

    @property
    def _vision_encoder(self) -> Any:
        return self.tracker.model.detector_model.vision_encoder

    @property
    def backbone(self) -> Any:
        """The ViT whose forward is the one vision pass (a test hooks it to count passes)."""
        return self._vision_encoder.backbone

    def encode(
        self, rgb: np.ndarray, image_id: str | None = None, *, cache_by_hash: bool = True
    ) -> tuple[str | None, CachedEmbedding]:
        """The cached backbone output for ``image_id``, run and cached if absent.

        Without ``image_id`` the pixels' hash is the id, or, with ``cache_by_hash=False``, the
        pass runs uncached (no hash, no memory held: a one-off request). A cached entry for an
        image of another size is replaced: the id was reused for a new image, and features of
        the old one would be silently wrong.
        """
        if image_id is None and cache_by_hash:
            image_id = default_image_id(rgb)
        elif image_id is not None and (not isinstance(image_id, str) or not image_id):
            raise ValueError(f"image_id must be a non-empty string, got {image_id!r}")
        shape = (int(rgb.shape[0]), int(rgb.shape[1]))
        entry = (
            self.cache.get(image_id) if image_id is not None and image_id in self.cache else None
        )
        if entry is None or entry.image_shape != shape:
            with self.tracker.exclusive():
                pixels = self.tracker.pixel_values(rgb)[None]  # (1, 3, S, S)
                hidden = self.backbone(pixels).last_hidden_state  # (1, h*w, C)
            entry = CachedEmbedding(features=(hidden,), image_shape=shape)
        if image_id is not None:
            self.cache.put(image_id, entry)
        return image_id, entry

    def _spatial(self, entry: CachedEmbedding) -> torch.Tensor:
        hidden = entry.features[0]  # (1, h*w, C)
        height, width = self.tracker.model.tracker_model.prompt_encoder.image_embedding_size
        return hidden.view(1, height, width, -1).permute(0, 3, 1, 2)  # (1, C, h, w)

    def detector_features(self, entry: CachedEmbedding) -> Any:
        """``Sam3VisionEncoderOutput`` for the detector, as ``get_vision_features`` returns it.

        The caller holds ``tracker.exclusive()``.
        """
        fpn, positions = self._vision_encoder.neck(self._spatial(entry))
        return _vision_output_class()(
            last_hidden_state=entry.features[0],
            fpn_hidden_states=fpn,
            fpn_position_encoding=positions,
        )

    def tracker_features(self, entry: CachedEmbedding) -> tuple[torch.Tensor, ...]:
        """The tracker's image embeddings, highest resolution first, each (1, C, h, w).

        As the video model computes them for a frame without memory: ``tracker_neck`` on the
        backbone output, the mask decoder's projections, and the no-memory token added to the
        lowest resolution. The caller holds ``tracker.exclusive()``.
        """
        video = self.tracker.model
        sam = video.tracker_model
        hidden = entry.features[0]
        # [(h*w, 1, C) per level]
        levels, _ = video.get_vision_features_for_tracker(_HiddenOnly(hidden))
        levels[-1] = levels[-1] + sam.no_memory_embedding
        return tuple(
            level.permute(1, 2, 0).reshape(1, -1, *size)  # (1, C, h, w)
            for level, size in zip(levels, sam.backbone_feature_sizes, strict=True)
        )


class _HiddenOnly:
    """What ``get_vision_features_for_tracker`` reads of a vision output: the backbone's states."""

    def __init__(self, last_hidden_state: torch.Tensor) -> None:
        self.last_hidden_state = last_hidden_state


def _vision_output_class() -> Any:
    from transformers.models.sam3.modeling_sam3 import Sam3VisionEncoderOutput

    return Sam3VisionEncoderOutput
