"""Phase A of training the shapes model: the SAM3 detector (text -> instances) on synthetic frames.

Three stages, each a measured fix for a way the from-scratch detector failed to learn:
1. Backbone warm-up (``dense_labels``): the vision encoder alone learns each pixel's shape kind
   and colour, so the features show shape before any text is asked to bind to them.
2. Binding (``SEMANTIC_FIRST_FRACTION``): the dense, prompt-conditioned semantic map alone, so the
   text matters before presence, scores and boxes can learn to ignore it.
3. Everything: the set loss of ``losses`` plus the dense labels.
Each detector step draws a few generated frames (training seeds below ``HELD_OUT_SEED``), runs the
ViT and FPN once per frame and the rest of the detector once per (frame, prompt) pair by indexing
the vision features (``forward_multi``): several prompts per image are what make the text matter
(the same pixels must answer "circle" and "square" differently). Prompts are shape names first,
then shape and colour + shape (curriculum). The budget is a step count derived from minutes
through fixed seconds-per-step figures, so a seed reproduces the weights whatever the machine's
speed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from tracker.training.dense_labels import DenseLabelHeads, dense_label_loss
from tracker.training.detector_eval import evaluate_detector
from tracker.training.detector_frames import (
    CLIP_FRAMES,
    CONCEPTS,
    HELD_OUT_SEED,
    forward_multi,
    make_frame,
    pixel_values,
    to_target,
)
from tracker.training.losses import SEMANTIC_ONLY, WEIGHTS, detector_loss, mean_parts
from tracker.training.samples import ConceptSample
from tracker.training.shapes_model import new_shapes_model

SECONDS_PER_STEP_168 = 0.45
"""Measured cost of one step (2 images x 4 prompts, 168 px, 2 shared cores), a little padded."""

IMAGES_PER_STEP = 2
PROMPTS_PER_IMAGE = 4
LEARNING_RATE = 3e-4
WARMUP_STEPS = 100
SHAPE_ONLY_FRACTION = 1 / 3
"""Curriculum: the first third of the steps names shapes only, then colour + shape too."""
SEMANTIC_FIRST_FRACTION = 0.4
"""Binding phase: the first 40 % of the steps train the semantic map alone (``SEMANTIC_ONLY``),
so the text matters before presence, scores and boxes can learn to ignore it (losses.py)."""

BACKBONE_WARMUP_RATIO = 2.0
"""Backbone warm-up: this many dense-label steps (``dense_labels``) per detector step run first,
on the vision encoder alone, so the features show shape before any text is asked to bind."""
BACKBONE_BATCH = 8
BACKBONE_LEARNING_RATE = 1e-3
"""The shipped recipe (ratio 2, 1e-3) ends the warm-up at shape-kind accuracy 0.275, at the foot of
its curve: shape names then stay at the presence prior. Measured probe, not shipped yet: ratio 10
at 3e-3 reaches 0.75, and held-out shape presence rises from 0.44 to 0.66 (112 px, seed 0)."""
WARMUP_STEP_COST = 0.3
"""A warm-up step (8 frames, no text, no decoder) costs 0.3 of a detector step (measured at 112 px
with two runs sharing the 2 cores: 0.073 s against 0.25 s)."""
DENSE_WEIGHT = 1.0
"""The dense labels stay in the detector phases' loss, so binding cannot wash the shapes out."""


def seconds_per_step(image_size: int) -> float:
    """The fixed step cost the budget assumes: convolutions scale with the pixel count."""
    return SECONDS_PER_STEP_168 * max(0.25, (image_size / 168) ** 2)


def steps_for_minutes(
    minutes: float, image_size: int, backbone_warmup_ratio: float = BACKBONE_WARMUP_RATIO
) -> int:
    """Detector step count that fits ``minutes`` with its backbone warm-up (at least 1)."""
    cost = seconds_per_step(image_size) * (1 + backbone_warmup_ratio * WARMUP_STEP_COST)
    return max(1, int(minutes * 60 / cost))


def pick_prompts(
    samples: list[ConceptSample], count: int, rng: np.random.Generator
) -> list[ConceptSample]:
    """``count`` prompts: one positive first when any, the rest positive or negative at 50 %."""
    positives = [s for s in samples if s.present]
    negatives = [s for s in samples if not s.present]
    chosen: list[ConceptSample] = []
    if positives:
        chosen.append(positives[int(rng.integers(len(positives)))])
    while len(chosen) < count:
        pool = positives if (rng.random() < 0.5 and positives) or not negatives else negatives
        chosen.append(pool[int(rng.integers(len(pool)))])
    return chosen


def init_for_training(detector: Any) -> None:
    """Re-initialise for training from scratch: HF's init is made for loading weights.

    Every HF Linear is N(0, 0.02), so in the post-LN DETR blocks attention adds ~1e-3 to residuals
    of scale ~3: at init queries, boxes and presence ignore both image and text (plan §0 (c)).
    Xavier Linears and PyTorch's default convs fix that. HF also puts every reference box at
    ~(0.5, 0.5, 0.5, 0.5) and queries at std 0.02, so all queries start identical: spread the boxes
    on a grid and give queries and the presence token unit-scale embeddings.
    """
    for module in detector.modules():
        if isinstance(module, torch.nn.Linear):
            torch.nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, torch.nn.Conv2d | torch.nn.ConvTranspose2d):
            module.reset_parameters()
    decoder = detector.detr_decoder
    with torch.no_grad():
        count = decoder.reference_points.weight.shape[0]
        side = math.ceil(math.sqrt(count))
        centres = (torch.arange(side) + 0.5) / side
        grid = torch.stack(torch.meshgrid(centres, centres, indexing="xy"), -1).reshape(-1, 2)
        boxes = torch.cat([grid[:count], torch.full((count, 2), 1.0 / (side + 1))], 1)
        decoder.reference_points.weight.copy_(torch.logit(boxes))
        decoder.query_embed.weight.normal_(0.0, 1.0)
        decoder.presence_token.weight.normal_(0.0, 1.0)


@dataclass
class DetectorReport:
    """What a detector run did and how it scores on held-out frames."""

    steps: int
    image_size: int
    seed: int
    history: list[dict[str, float]] = field(default_factory=list)  # mean parts every 100 steps
    evaluation: dict[str, float] = field(default_factory=dict)
    backbone_kind_accuracy: float | None = None  # last 100 warm-up steps; None without warm-up


def _lr_factor(step: int, total: int) -> float:
    """Linear warm-up then cosine decay to 5 % of the peak."""
    warmup = min(WARMUP_STEPS, max(1, total // 10))
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress))


def _warm_up_backbone(
    detector: Any,
    heads: DenseLabelHeads,
    steps: int,
    image_size: int,
    rng: np.random.Generator,
    *,
    progress: bool,
    log: Any,
) -> float:
    """Train the vision encoder and ``heads`` alone on dense labels; returns the share of object
    pixels whose kind was right over the last 100 steps (training frames)."""
    from tqdm.auto import tqdm

    params = [*detector.vision_encoder.parameters(), *heads.parameters()]
    optimiser = torch.optim.AdamW(params, lr=BACKBONE_LEARNING_RATE, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda i: _lr_factor(i, steps))
    recent: list[float] = []
    bar = tqdm(range(steps), desc="backbone", disable=not progress, mininterval=2.0)
    for step in bar:
        frames = [
            make_frame(
                int(rng.integers(HELD_OUT_SEED)),
                image_size,
                coloured=False,
                rng=rng,
                t=int(rng.integers(CLIP_FRAMES)),
            )
            for _ in range(BACKBONE_BATCH)
        ]
        vision = detector.get_vision_features(pixel_values=pixel_values([f.image for f in frames]))
        loss, kind_accuracy = dense_label_loss(
            heads, vision.fpn_hidden_states, [f.dense for f in frames]
        )
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimiser.step()
        schedule.step()
        recent = [*recent[-99:], kind_accuracy]
        bar.set_postfix(
            {"loss": f"{float(loss.detach()):.3f}", "kind": f"{kind_accuracy:.2f}"}, refresh=False
        )
        if log is not None and ((step + 1) % 500 == 0 or step + 1 == steps):
            log(f"backbone {step + 1}/{steps} kind accuracy {np.mean(recent):.3f}")
    bar.close()
    return round(float(np.mean(recent)), 4)


def train_detector(
    *,
    steps: int,
    seed: int = 0,
    image_size: int = 168,
    threads: int = 2,
    progress: bool = True,
    eval_images: int = 64,
    eval_every: int = 0,
    shape_only_fraction: float = SHAPE_ONLY_FRACTION,
    semantic_first_fraction: float = SEMANTIC_FIRST_FRACTION,
    backbone_warmup_ratio: float = BACKBONE_WARMUP_RATIO,
    concepts: str = "all",
    log: Any = None,
) -> tuple[Any, Any, DetectorReport]:
    """Train a new shapes model's detector for ``steps`` steps; same seed, same weights.

    Args:
        steps: optimiser steps (``steps_for_minutes`` turns a time budget into this).
        seed: initialisation, data order and prompt choice.
        image_size: model side in pixels, a multiple of 14 (168 or 112 fit the CPU budget).
        threads: torch intra-op threads (fixed, for speed and repeatability).
        progress: show a tqdm bar with the loss parts.
        eval_images: held-out frames scored at the end (0 skips evaluation).
        eval_every: with ``log``, also log a 16-frame held-out evaluation every this many steps.
        shape_only_fraction: share of the first steps that prompt shape names only.
        semantic_first_fraction: share of the first steps that train the semantic map alone.
        backbone_warmup_ratio: dense-label steps of the vision encoder alone, per detector step,
            run before the detector steps (0 skips the warm-up).
        concepts: the prompt vocabulary, one of ``CONCEPTS``.
        log: called with a line of text every 100 steps and after evaluation (e.g. ``print``).

    Returns:
        ``(model, processor, report)``: the whole ``Sam3VideoModel`` (tracker untouched), its
        processor, and the report with the loss curve and held-out figures.
    """
    from tqdm.auto import tqdm

    if steps < 1:
        raise ValueError(f"steps: must be at least 1 (got {steps})")
    if concepts not in CONCEPTS:
        raise ValueError(f"concepts: choose one of {', '.join(CONCEPTS)} (got {concepts!r})")
    if backbone_warmup_ratio < 0:
        raise ValueError(f"backbone_warmup_ratio: must be 0 or more (got {backbone_warmup_ratio})")
    if not 0.0 <= semantic_first_fraction <= 1.0:
        raise ValueError(
            f"semantic_first_fraction: must be within [0, 1] (got {semantic_first_fraction})"
        )
    torch.set_num_threads(threads)
    model, processor = new_shapes_model(image_size, seed)
    detector = model.detector_model
    tokenizer = processor.tokenizer
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        init_for_training(detector)
        detector.train()
        heads = DenseLabelHeads(detector.config.vision_config.fpn_hidden_size)
        rng = np.random.default_rng(seed)
        report = DetectorReport(steps=steps, image_size=image_size, seed=seed)
        warmup_steps = round(steps * backbone_warmup_ratio)
        if warmup_steps:
            report.backbone_kind_accuracy = _warm_up_backbone(
                detector, heads, warmup_steps, image_size, rng, progress=progress, log=log
            )
        params = [p for n, p in detector.named_parameters() if not n.startswith("geometry_encoder")]
        params += list(heads.parameters())
        optimiser = torch.optim.AdamW(params, lr=LEARNING_RATE, weight_decay=1e-4)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda i: _lr_factor(i, steps))
        window: list[dict[str, float]] = []
        bar = tqdm(range(steps), desc="detector", disable=not progress, mininterval=2.0)
        for step in bar:
            coloured = step >= steps * shape_only_fraction
            images, prompts, owner, dense = [], [], [], []
            for i in range(IMAGES_PER_STEP):
                frame = make_frame(
                    int(rng.integers(HELD_OUT_SEED)),
                    image_size,
                    coloured=coloured,
                    rng=rng,
                    t=int(rng.integers(CLIP_FRAMES)),
                    concepts=concepts,
                )
                images.append(frame.image)
                dense.append(frame.dense)
                chosen = pick_prompts(frame.samples, PROMPTS_PER_IMAGE, rng)
                prompts += chosen
                owner += [i] * len(chosen)
            tokens = tokenizer(
                [p.text for p in prompts], return_tensors="pt", padding="max_length", max_length=32
            )
            vision = detector.get_vision_features(pixel_values=pixel_values(images))
            outputs = forward_multi(detector, vision, torch.tensor(owner), tokens)
            weights = SEMANTIC_ONLY if step < steps * semantic_first_fraction else WEIGHTS
            targets = [to_target(p, image_size) for p in prompts]
            loss, parts = detector_loss(outputs, targets, weights)
            dense_loss, _ = dense_label_loss(heads, vision.fpn_hidden_states, dense)
            loss = loss + DENSE_WEIGHT * dense_loss
            parts["dense"] = float(dense_loss.detach())
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimiser.step()
            schedule.step()
            window.append(parts)
            bar.set_postfix({k[:4]: f"{v:.3f}" for k, v in parts.items()}, refresh=False)
            if (step + 1) % 100 == 0 or step + 1 == steps:
                mean = mean_parts(window)
                report.history.append({"step": float(step + 1), **mean})
                window = []
                if log is not None:
                    log(f"step {step + 1}/{steps} {mean}")
            if log is not None and eval_every and (step + 1) % eval_every == 0:
                quick = evaluate_detector(
                    detector, tokenizer, image_size, frames=16, concepts=concepts
                )
                log(f"eval at step {step + 1}: {quick}")
        bar.close()
    detector.eval()
    if eval_images:
        report.evaluation = evaluate_detector(
            detector, tokenizer, image_size, frames=eval_images, concepts=concepts
        )
        if log is not None:
            log(f"held-out eval: {report.evaluation}")
    return model, processor, report
