"""One clip through the tracker the way streaming runs it, differentiably, and its training loss.

Frame 0 seeds every object from its true mask (as streaming seeds a track from a detection);
frames 1..T-1 are predicted from memory, and each prediction becomes memory for the next frame,
so a loss on the whole clip back-propagates through time into the memory encoder, the memory
attention and the object pointers (``tracker_glue``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from transformers import Sam3VideoModel

from tracker.preprocess import TensorPreprocessor
from tracker.training.scenes import SyntheticClip
from tracker.training.tracker_glue import Decoded, decode, features, mask_as_output
from tracker.training.tracker_memory import ClipMemory, condition, encode_memory


@dataclass(frozen=True)
class ClipTensors:
    """A clip as model input: pixels and the true masks of the objects seeded on frame 0.

    Attributes:
        pixels: ``(T, 3, S, S)`` float32, normalised like the streaming path.
        masks: ``(T, N, 1, S, S)`` float32 0/1 visible masks (all zero where the object is gone).
        object_ids: the clip's ids of the ``N`` objects, in order.
    """

    pixels: torch.Tensor
    masks: torch.Tensor
    object_ids: tuple[int, ...]


def clip_tensors(
    clip: SyntheticClip, image_size: int, *, max_objects: int = 3, min_pixels: int = 30
) -> ClipTensors | None:
    """The first ``max_objects`` objects with ``min_pixels`` visible on frame 0; None if none.

    Objects that enter later are left out: the detector, not the tracker, picks them up.
    """
    first = [obj for obj in clip.truths[0].objects if int(obj.mask.sum()) >= min_pixels]
    ids = tuple(obj.object_id for obj in first[:max_objects])
    if not ids:
        return None
    pre = TensorPreprocessor(image_size, image_size, torch.device("cpu"))
    pixels = torch.stack([pre(np.ascontiguousarray(image[..., ::-1])) for image in clip.images])
    empty = np.zeros((clip.height, clip.width), dtype=bool)
    masks = np.stack(
        [
            np.stack([obj.mask if (obj := truth.get(i)) is not None else empty for i in ids])
            for truth in clip.truths
        ]
    )  # (T, N, H, W) bool
    target = torch.from_numpy(masks).float()[:, :, None]  # (T, N, 1, H, W)
    if target.shape[-2:] != (image_size, image_size):
        target = F.interpolate(target.flatten(0, 1), size=(image_size, image_size), mode="nearest")
        target = target.unflatten(0, masks.shape[:2])
    return ClipTensors(pixels=pixels, masks=target, object_ids=ids)


def rollout(model: Sam3VideoModel, clip: ClipTensors) -> list[Decoded]:
    """Seed on frame 0 from the true masks, then track frames 1..T-1 from memory.

    Returns one ``Decoded`` per frame (frame 0's is the seeded mask). Gradients flow through
    every frame's memory; the ViT and neck stay frozen (``tracker_glue.features``).
    """
    tracker = model.tracker_model
    n = clip.masks.shape[1]
    num_frames = clip.pixels.shape[0]
    height, width = tracker.backbone_feature_sizes[-1]
    feats = features(model, clip.pixels)
    memory = ClipMemory()
    high_res, top, _ = feats.frame(0, n)
    top_map = top.permute(1, 2, 0).reshape(n, tracker.hidden_dim, height, width)
    seeded = mask_as_output(tracker, top_map, high_res, clip.masks[0])
    memory.add(
        0, conditioning=True, memory=encode_memory(tracker, top, seeded, from_mask_input=True)
    )
    outputs = [seeded]
    for t in range(1, num_frames):
        high_res, top, top_pos = feats.frame(t, n)
        attended = condition(tracker, memory, t, top, top_pos, num_frames=num_frames)
        decoded = decode(tracker, [*high_res, attended], multimask=True)
        memory.add(
            t,
            conditioning=False,
            memory=encode_memory(tracker, top, decoded, from_mask_input=False),
        )
        outputs.append(decoded)
    return outputs


def clip_loss(
    outputs: list[Decoded], clip: ClipTensors, *, min_pixels: int = 30
) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss of frames 1..T-1 and its parts (``mask``, ``iou``, ``score``, ``total``).

    * mask: min over the K candidates of BCE + dice against the visible mask, on objects with
      ``min_pixels`` visible (SAM's multimask loss: only the best candidate is asked to be right);
    * iou: MSE of the IoU head against each candidate's true IoU, on the same objects;
    * score: BCE of the object score against "visible", on every object (a gone object must say
      so, or it is never evicted).
    """
    mask_sum = iou_sum = score_sum = torch.zeros(())
    visible_count = 0
    for t in range(1, len(outputs)):
        candidates = outputs[t].all_masks  # (N, K, h, w) logits
        truth = clip.masks[t]  # (N, 1, S, S)
        visible = truth.flatten(1).sum(1) >= min_pixels  # (N,)
        small = F.interpolate(truth, size=candidates.shape[-2:], mode="bilinear")
        small = small.expand_as(candidates)
        bce = F.binary_cross_entropy_with_logits(candidates, small, reduction="none").mean((2, 3))
        per_candidate = bce + _dice_loss(candidates, small)  # (N, K)
        with torch.no_grad():
            predicted, wanted = candidates > 0, small > 0.5
            inter = (predicted & wanted).flatten(2).sum(2).float()
            union = (predicted | wanted).flatten(2).sum(2).float()
            true_iou = inter / union.clamp(min=1.0)  # (N, K)
        iou_error = (outputs[t].iou_scores - true_iou).pow(2).mean(1)  # (N,)
        mask_sum = mask_sum + per_candidate.min(1).values[visible].sum()
        iou_sum = iou_sum + iou_error[visible].sum()
        score_sum = score_sum + F.binary_cross_entropy_with_logits(
            outputs[t].object_score_logits.reshape(-1), visible.float(), reduction="sum"
        )
        visible_count += int(visible.sum())
    objects = max(1, visible_count)
    scored = max(1, clip.masks.shape[1] * (len(outputs) - 1))
    mask_loss, iou_loss, score_loss = mask_sum / objects, iou_sum / objects, score_sum / scored
    total = mask_loss + iou_loss + score_loss
    parts = {
        "total": float(total.detach()),
        "mask": float(mask_loss.detach()),
        "iou": float(iou_loss.detach()),
        "score": float(score_loss.detach()),
    }
    return total, parts


def _dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``1 - dice`` per mask over the last two axes: ``(..., h, w)`` -> ``(...)``."""
    prob = logits.sigmoid().flatten(-2)
    target = target.flatten(-2)
    return 1 - (2 * (prob * target).sum(-1) + 1) / (prob.sum(-1) + target.sum(-1) + 1)
