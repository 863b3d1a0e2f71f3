"""Phase B of ``train-small-model``: teach the tracker to carry masks across frames from memory.

The ViT and the tracker's neck stay frozen (the neck starts as a copy of the detector's, which
phase A trained), and only ``tracker_model`` learns, one generated clip per step, through
``tracker_rollout``. The budget is a step count, never a clock, so a seed gives the same weights.
Training clips use seeds below ``TRAIN_SEED_LIMIT``; ``evaluate_tracker`` uses seeds at or above
it and compares with the cheapest tracker there is, "copy the first mask", which memory must beat
to be worth shipping.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import supervision as sv
import torch
from tqdm.auto import tqdm
from transformers import Sam3VideoModel

from tracker.training.config import SceneConfig
from tracker.training.scenes import generate_clip
from tracker.training.tracker_rollout import ClipTensors, clip_loss, clip_tensors, rollout

TRAIN_SEED_LIMIT = 10_000
"""Training clips use seeds below this; held-out evaluation clips use seeds at or above it."""


SECONDS_PER_CLIP_112 = 0.25
"""Measured cost of one tracker step (a 5-frame clip, up to 3 objects, 112 px, 2 shared cores)."""


def tracker_steps_for_minutes(minutes: float, image_size: int) -> int:
    """Tracker steps that fit ``minutes`` (0 for none); cost scales with the pixel count."""
    per_step = SECONDS_PER_CLIP_112 * max(1.0, (image_size / 112) ** 2)
    return max(0, int(minutes * 60 / per_step))


@dataclass(frozen=True)
class TrackerTrainingConfig:
    """Knobs of the tracker phase; the defaults are the recipe of the research plan (§3).

    Args:
        steps: optimizer steps, one clip each (the budget).
        frames: frames per clip (frame 0 seeds, the rest are tracked).
        max_objects: objects seeded per clip (from those visible on frame 0).
        min_pixels: fewer visible pixels and an object counts as absent in that frame.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        grad_clip: gradient norm clip.
        seed: seeds torch and the choice of training clips.
        scene: how training clips are generated.
    """

    steps: int = 1000
    frames: int = 5
    max_objects: int = 3
    min_pixels: int = 30
    lr: float = 3e-4
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    seed: int = 0
    scene: SceneConfig = field(default_factory=SceneConfig)

    def __post_init__(self) -> None:
        for name in ("steps", "seed"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must be 0 or more (got {getattr(self, name)})")
        for name, least in (("frames", 2), ("max_objects", 1), ("min_pixels", 1)):
            if getattr(self, name) < least:
                raise ValueError(f"{name}: must be at least {least} (got {getattr(self, name)})")
        if self.lr <= 0:
            raise ValueError(f"lr: must be positive (got {self.lr})")


@dataclass(frozen=True)
class TrackerTrainingReport:
    """What a tracker phase did: loss parts per step and the wall time."""

    steps: int
    history: list[dict[str, float]]
    seconds: float


@dataclass(frozen=True)
class TrackerEvaluation:
    """Held-out tracking quality: mean mask IoU of tracked frames vs copying the first mask.

    Both are averaged over the same (object, frame) pairs: frames 1..T-1 where a seeded object
    is visible with at least ``min_pixels`` pixels.
    """

    mean_iou: float
    copy_first_iou: float
    pairs: int
    clips: int


def prepare_for_tracker_training(
    model: Sam3VideoModel, *, copy_detector_neck: bool = True
) -> list[torch.nn.Parameter]:
    """Freeze the detector and ``tracker_neck``, put ``tracker_model`` in train mode.

    ``copy_detector_neck`` starts the tracker's neck from the detector's (same class and config):
    the tracker has no eyes of its own, and the detector's neck is the one that was trained.
    Returns the parameters to optimise.
    """
    if copy_detector_neck:
        model.tracker_neck.load_state_dict(model.detector_model.vision_encoder.neck.state_dict())
    for module in (model.detector_model, model.tracker_neck):
        module.eval()
        module.requires_grad_(False)
    model.tracker_model.train()
    model.tracker_model.requires_grad_(True)
    return list(model.tracker_model.parameters())


def training_clips(
    config: TrackerTrainingConfig, image_size: int, *, first_seed: int | None = None
) -> Iterator[ClipTensors]:
    """Endless clips for ``config``: training seeds drawn from ``config.seed``, or held-out seeds
    ``first_seed``, ``first_seed + 1``, ... Clips with no object seedable on frame 0 are skipped."""
    rng = np.random.default_rng(config.seed)
    index = 0
    while True:
        if first_seed is None:
            clip_seed = int(rng.integers(TRAIN_SEED_LIMIT))
        else:
            clip_seed = first_seed + index
        index += 1
        clip = generate_clip(
            clip_seed,
            frames=config.frames,
            height=image_size,
            width=image_size,
            scene=config.scene,
        )
        tensors = clip_tensors(
            clip, image_size, max_objects=config.max_objects, min_pixels=config.min_pixels
        )
        if tensors is not None:
            yield tensors


def training_step(
    model: Sam3VideoModel,
    optimizer: torch.optim.Optimizer,
    params: list[torch.nn.Parameter],
    clip: ClipTensors,
    *,
    min_pixels: int = 30,
    grad_clip: float = 1.0,
) -> dict[str, float]:
    """One clip: roll out, back-propagate through time, clip, step. Returns the loss parts."""
    loss, parts = clip_loss(rollout(model, clip), clip, min_pixels=min_pixels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, grad_clip)
    optimizer.step()
    return parts


def train_tracker(
    model: Sam3VideoModel,
    config: TrackerTrainingConfig,
    *,
    copy_detector_neck: bool = True,
    progress: bool = True,
) -> TrackerTrainingReport:
    """Train ``model.tracker_model`` in place for ``config.steps`` clips (phase B).

    Deterministic for a given model, config and thread count: torch is seeded with
    ``config.seed`` and the clips are a function of it.
    """
    torch.manual_seed(config.seed)
    params = prepare_for_tracker_training(model, copy_detector_neck=copy_detector_neck)
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    clips = training_clips(config, model.tracker_model.image_size)
    history: list[dict[str, float]] = []
    start = time.perf_counter()
    with tqdm(total=config.steps, desc="tracker", disable=not progress) as bar:
        for _ in range(config.steps):
            parts = training_step(
                model,
                optimizer,
                params,
                next(clips),
                min_pixels=config.min_pixels,
                grad_clip=config.grad_clip,
            )
            history.append(parts)
            bar.set_postfix({name: f"{value:.3f}" for name, value in parts.items()}, refresh=False)
            bar.update()
    model.tracker_model.eval()
    return TrackerTrainingReport(config.steps, history, time.perf_counter() - start)


@torch.no_grad()
def evaluate_tracker(
    model: Sam3VideoModel,
    *,
    clips: int = 16,
    config: TrackerTrainingConfig | None = None,
    first_seed: int = TRAIN_SEED_LIMIT,
) -> TrackerEvaluation:
    """Track mIoU on ``clips`` held-out clips (seeds from ``first_seed``) vs copy-first-mask."""
    if first_seed < TRAIN_SEED_LIMIT:
        raise ValueError(f"first_seed: held-out clips need seeds >= {TRAIN_SEED_LIMIT}")
    config = config or TrackerTrainingConfig()
    was_training = model.tracker_model.training
    model.tracker_model.eval()
    tracked: list[float] = []
    copied: list[float] = []
    source = training_clips(config, model.tracker_model.image_size, first_seed=first_seed)
    for _ in range(clips):
        clip = next(source)
        outputs = rollout(model, clip)
        first = (clip.masks[0, :, 0] > 0.5).numpy()  # (N, S, S)
        for t in range(1, len(outputs)):
            truth = (clip.masks[t, :, 0] > 0.5).numpy()
            predicted = (outputs[t].high_res_masks[:, 0] > 0).numpy()
            scored = truth.reshape(len(truth), -1).sum(1) >= config.min_pixels
            # object i's IoU with its own prediction / first mask: the diagonal
            tracked += np.diag(sv.mask_iou_batch(truth, predicted))[scored].tolist()
            copied += np.diag(sv.mask_iou_batch(truth, first))[scored].tolist()
    model.tracker_model.train(was_training)
    return TrackerEvaluation(
        mean_iou=float(np.mean(tracked)) if tracked else 0.0,
        copy_first_iou=float(np.mean(copied)) if copied else 0.0,
        pairs=len(tracked),
        clips=clips,
    )
