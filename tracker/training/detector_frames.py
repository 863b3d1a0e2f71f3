"""Frames for the detector: generated, prompted, turned into model inputs and targets.

Training (``train_detector``), held-out evaluation and threshold calibration (``detector_eval``)
read frames the same way, so a figure measured on held-out frames means what training optimised.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from tracker.training.config import SceneConfig
from tracker.training.dense_labels import dense_targets
from tracker.training.losses import Target
from tracker.training.samples import ConceptSample, detector_samples
from tracker.training.scenes import generate_clip
from tracker.training.shapes import COLOURS
from tracker.training.shapes_model import PIXEL_MEAN, PIXEL_STD

HELD_OUT_SEED = 10_000
"""Clip seeds at and above this are never trained on (evaluation and ``bench quality``)."""

CONCEPTS = ("all", "shapes", "colours")
"""Prompt vocabularies: shape names and colour words from the start (colour + shape after the
shape-only steps), shapes alone (colour + shape later), or colour words alone. Measured (112 px):
colour words bind and their presence reaches 0.89 held-out; shape names do not bind yet."""

CLIP_FRAMES = 4


def scene_for(image_size: int) -> SceneConfig:
    """Scene knobs scaled to the image: shapes from 1/6 to 2/5 of the side (2-5 ViT patches at
    168 px; smaller ones are a patch or two and hard to tell apart for a 2-layer ViT)."""
    return SceneConfig(min_size=max(6, image_size // 6), max_size=max(7, image_size * 2 // 5))


@dataclass(frozen=True)
class Frame:
    """One generated frame ready for the model: RGB pixels and its concept samples."""

    image: np.ndarray  # (S, S, 3) uint8 RGB
    samples: list[ConceptSample]
    dense: tuple[np.ndarray, np.ndarray]  # per-pixel kind and colour classes (dense_targets)


def make_frame(
    seed: int,
    image_size: int,
    *,
    coloured: bool,
    rng: np.random.Generator,
    t: int = 0,
    concepts: str = "shapes",
) -> Frame:
    """Frame ``t`` of clip ``seed`` with its positive and negative prompts from ``concepts``
    (``CONCEPTS``; ``coloured`` adds colour + shape prompts except to ``"colours"``)."""
    clip = generate_clip(
        seed, frames=t + 1, height=image_size, width=image_size, scene=scene_for(image_size)
    )
    image = np.ascontiguousarray(clip.images[t][..., ::-1])  # BGR -> RGB, as processors expect
    truth = clip.truths[t]
    if concepts == "colours":
        samples = detector_samples(truth, rng=rng, colour_words=True)
        samples = [sample for sample in samples if sample.text in COLOURS]
    else:
        samples = detector_samples(
            truth, coloured=coloured, colour_words=concepts == "all", rng=rng
        )
    return Frame(image, samples, dense_targets(truth))


def to_target(sample: ConceptSample, image_size: int) -> Target:
    """A sample's boxes normalised to [0, 1] (inclusive pixel boxes) and float masks."""
    boxes = torch.from_numpy(sample.boxes.astype(np.float32)).reshape(-1, 4)
    boxes = (boxes + torch.tensor([0.0, 0.0, 1.0, 1.0])) / image_size
    return {"boxes": boxes, "masks": torch.from_numpy(sample.masks.astype(np.float32))}


def pixel_values(images: list[np.ndarray]) -> torch.Tensor:
    """``(B, 3, S, S)`` normalised as the processors do: ``(x / 255 - 0.5) / 0.5``."""
    px = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0
    return (px - PIXEL_MEAN) / PIXEL_STD


def forward_multi(detector: Any, vision: Any, owner: torch.Tensor, tokens: Any) -> Any:
    """Detector outputs for prompts ``tokens`` on images ``owner`` of ``vision`` (the detector's
    ``get_vision_features`` of the batch): one vision pass per image, indexed per prompt, so every
    prompt's gradient flows into the same ViT pass (plan §2)."""
    from transformers.models.sam3.modeling_sam3 import Sam3VisionEncoderOutput

    per_prompt = Sam3VisionEncoderOutput(
        last_hidden_state=vision.last_hidden_state[owner],
        fpn_hidden_states=tuple(f[owner] for f in vision.fpn_hidden_states),
        fpn_position_encoding=tuple(p[owner] for p in vision.fpn_position_encoding),
    )
    return detector(
        vision_embeds=per_prompt, input_ids=tokens.input_ids, attention_mask=tokens.attention_mask
    )
