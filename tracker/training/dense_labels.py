"""Per-pixel shape and colour labels for the detector's backbone: a teacher used only in training.

A text prompt can only bind to what the image features already tell apart. Colour is in the raw
pixels, so colour words bind; shape is not, and a from-scratch ViT that is only ever taught
through the text-conditioned heads never learns it (shape prompts stayed at the presence prior).
Two 1x1 convolutions on the FPN level the DETR encoder reads, trained to name each pixel's shape
kind and colour, give the ViT that signal directly and cheaply (no text, no decoder: about a
sixth of a detector step). The heads are glue: they are never saved, so the checkpoint keeps the
port's architecture.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from tracker.training.shapes import COLOURS, SHAPE_KINDS
from tracker.training.truth import FrameTruth

KIND_CLASSES: tuple[str, ...] = ("background", *SHAPE_KINDS)
COLOUR_CLASSES: tuple[str, ...] = ("background", *COLOURS)
LABEL_STRIDE = 4
"""Labels are read every 4 pixels (at pixel centres): finer than the features, cheap to score."""
BACKGROUND_WEIGHT = 0.2
"""Shapes cover a few percent of a frame: background pixels count a fifth in the loss."""


def encoder_level(fpn_hidden_states: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """The FPN level the DETR encoder reads (``Sam3Model`` drops the last one, then takes the
    last of the rest): where text meets the image, so where the shape must be visible."""
    return fpn_hidden_states[-2]


class DenseLabelHeads(torch.nn.Module):
    """Two 1x1 convolutions: each feature pixel's shape kind and colour (``background`` first)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.kind = torch.nn.Conv2d(channels, len(KIND_CLASSES), 1)
        self.colour = torch.nn.Conv2d(channels, len(COLOUR_CLASSES), 1)

    def forward(
        self, features: torch.Tensor, size: tuple[int, int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Kind and colour logits ``(B, classes, *size)`` of ``(B, C, h, w)`` features."""
        upsampled = F.interpolate(features, size=size, mode="bilinear", align_corners=False)
        return self.kind(upsampled), self.colour(upsampled)


def dense_targets(truth: FrameTruth) -> tuple[np.ndarray, np.ndarray]:
    """``(kinds, colours)`` int64 class maps of ``truth``'s frame, one label per ``LABEL_STRIDE``
    pixels (read at the centre of each cell); later objects cover earlier ones, as drawn."""
    kinds = np.zeros((truth.height, truth.width), np.int64)
    colours = np.zeros_like(kinds)
    for obj in truth.objects:
        kinds[obj.mask] = KIND_CLASSES.index(obj.kind)
        colours[obj.mask] = COLOUR_CLASSES.index(obj.colour)
    half = LABEL_STRIDE // 2
    return kinds[half::LABEL_STRIDE, half::LABEL_STRIDE], colours[
        half::LABEL_STRIDE, half::LABEL_STRIDE
    ]


def dense_label_loss(
    heads: DenseLabelHeads,
    fpn_hidden_states: tuple[torch.Tensor, ...],
    targets: list[tuple[np.ndarray, np.ndarray]],
) -> tuple[torch.Tensor, float]:
    """Weighted cross-entropy of kind plus colour over a batch of frames, and the share of object
    pixels whose kind is right (the figure that says whether the backbone sees shapes).

    Args:
        heads: the label heads.
        fpn_hidden_states: the vision encoder's FPN output for the batch.
        targets: ``dense_targets`` of each frame, in batch order.
    """
    features = encoder_level(fpn_hidden_states)
    if len(targets) != features.shape[0]:
        raise ValueError(
            f"targets: expected {features.shape[0]} (one per frame), got {len(targets)}"
        )
    kinds = torch.from_numpy(np.stack([k for k, _ in targets]))
    colours = torch.from_numpy(np.stack([c for _, c in targets]))
    kind_logits, colour_logits = heads(features, tuple(kinds.shape[-2:]))
    kind_weight = torch.ones(len(KIND_CLASSES))
    kind_weight[0] = BACKGROUND_WEIGHT
    colour_weight = torch.ones(len(COLOUR_CLASSES))
    colour_weight[0] = BACKGROUND_WEIGHT
    loss = F.cross_entropy(kind_logits, kinds, weight=kind_weight) + F.cross_entropy(
        colour_logits, colours, weight=colour_weight
    )
    objects = kinds > 0
    right = (kind_logits.argmax(1) == kinds)[objects]
    return loss, float(right.float().mean()) if right.numel() else 0.0
