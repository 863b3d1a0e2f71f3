"""The tracker's differentiable path, chained by hand from the port's private building blocks.

``Sam3TrackerVideoModel`` cannot be trained through its public API: ``forward`` and
``propagate_in_video_iterator`` run under ``@torch.inference_mode()`` (transformers 5.24.0,
``models/sam3_tracker_video/modeling_sam3_tracker_video.py`` lines 1787 and 2810, below "the port"),
and in train mode ``_run_single_frame_inference`` drops ``object_score_logits`` (line 2692), which
``forward`` then indexes. The blocks below that (prompt encoder, mask decoder, memory attention,
memory encoder, pointer helpers) have no such guard, so each function here mirrors one port method
line for line and calls the port's own modules and helpers wherever they work for ``N`` objects at
once. Two port methods are wrong for ``N > 1`` (the HF video loop only ever runs one object at a
time): the best-mask pick (line 2150) and the memory-attention reshape (line 2576); those lines are
re-done here. ``tests/test_training_tracker.py`` holds every function to the port's own output for
one object and to ``N`` single-object runs for a batch, so an upgrade that moves the internals fails
loudly.

Here: features, decoding, seeding from a mask; memory (stand-in session, memory attention,
memory encoding) is in ``tracker_memory``. Layout: the ``N`` objects of one clip ride on the
batch axis; features of a frame are computed once and expanded to them. Maps are
``(N, C, H, W)``; sequences are ``(H*W, N, C)`` as in the port.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import Sam3TrackerVideoModel, Sam3VideoModel

NO_OBJ_SCORE = -1024.0
"""Mask logit the port writes where the object score says "absent" (port line 1628)."""

MASK_OUT_SCALE, MASK_OUT_BIAS = 20.0, -10.0
"""A 0/1 mask as logits -10/+10, as ``_use_mask_as_output`` does (port line 2186)."""


@dataclass
class ClipFeatures:
    """Tracker features of every frame of a clip, computed once (``features``).

    Attributes:
        maps: per FPN level used by the tracker, ``(T, C_l, H_l, W_l)``; levels 0 and 1 already
            through ``conv_s0``/``conv_s1`` as the port precomputes them, the last level raw.
        positions: the matching position encodings, ``(T, C_l, H_l, W_l)``.
    """

    maps: list[torch.Tensor]
    positions: list[torch.Tensor]

    def frame(self, t: int, n: int) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """Frame ``t`` for ``n`` objects: high-res maps ``[(n, C, H, W)]``, top level and its
        position encoding as ``(H*W, n, C)`` sequences (the port's ``current_vision_feats[-1]``)."""
        high_res = [level[t : t + 1].expand(n, -1, -1, -1) for level in self.maps[:-1]]
        top = self.maps[-1][t : t + 1].flatten(2).permute(2, 0, 1).expand(-1, n, -1)
        top_pos = self.positions[-1][t : t + 1].flatten(2).permute(2, 0, 1).expand(-1, n, -1)
        return high_res, top, top_pos


@dataclass
class Decoded:
    """One frame's mask-decoder output for ``N`` objects (``decode`` / ``mask_as_output``).

    Attributes:
        all_masks: ``(N, K, h, w)`` low-res logits of every candidate (K=3 multimask, 1 otherwise),
            before the absent-object override; what the training loss reads.
        iou_scores: ``(N, K)`` predicted IoU of each candidate (sigmoid output).
        high_res_masks: ``(N, 1, S, S)`` logits of the chosen mask at image size, ``NO_OBJ_SCORE``
            where the object is judged absent; what memory is encoded from.
        object_pointer: ``(N, C)`` the object pointer token for later frames.
        object_score_logits: ``(N, 1, 1)`` object presence logits (this shape, or the port's
            ``_encode_new_memory`` line 2742 mis-broadcasts).
    """

    all_masks: torch.Tensor
    iou_scores: torch.Tensor
    high_res_masks: torch.Tensor
    object_pointer: torch.Tensor
    object_score_logits: torch.Tensor


def features(
    model: Sam3VideoModel, pixel_values: torch.Tensor, *, train_neck: bool = False
) -> ClipFeatures:
    """Tracker features of ``pixel_values`` ``(T, 3, S, S)``: frozen ViT, neck, trainable convs.

    Mirrors ``Sam3VideoModel.get_vision_features_for_tracker`` (``models/sam3_video/
    modeling_sam3_video.py`` lines 545-565). Not called directly because it runs the neck and
    the decoder's ``conv_s0``/``conv_s1`` in one go: freezing the neck while training the convs
    would mean running it twice. The ViT always runs under ``no_grad`` (phase B keeps it frozen).
    """
    tracker = model.tracker_model
    with torch.no_grad():
        hidden = model.detector_model.get_vision_features(pixel_values=pixel_values)
        hidden = hidden.last_hidden_state
    height, width = tracker.prompt_encoder.image_embedding_size
    spatial = hidden.view(hidden.shape[0], height, width, -1).permute(0, 3, 1, 2)
    with torch.set_grad_enabled(train_neck and torch.is_grad_enabled()):
        fpn, fpn_pos = model.tracker_neck(spatial)
    maps = list(fpn[:-1])
    maps[0] = tracker.mask_decoder.conv_s0(maps[0])
    maps[1] = tracker.mask_decoder.conv_s1(maps[1])
    return ClipFeatures(maps=maps, positions=list(fpn_pos[:-1]))


def decode(
    tracker: Sam3TrackerVideoModel,
    image_embeddings: list[torch.Tensor],
    *,
    input_masks: torch.Tensor | None = None,
    multimask: bool = True,
) -> Decoded:
    """Mask decoder for ``N`` objects with no point prompt, optionally a mask prompt.

    Mirrors ``_single_frame_forward`` (port line 1977) with ``image_embeddings`` given, lines
    2087-2170. Not called directly: its best-mask pick
    ``[batch_inds, object_batch_inds, best_iou_inds]`` (line 2150) indexes with shapes ``(N,)``,
    ``(1,)``, ``(N, 1)`` and returns ``N x N`` masks for ``N > 1``; and it returns only the chosen
    mask, while the training loss needs all candidates. The pick here is
    ``masks[arange(N), argmax(iou)]``; the chosen mask is upsampled after picking (the port
    upsamples all three first: same values, a third of the work).
    """
    n = image_embeddings[-1].shape[0]
    dtype, device = image_embeddings[-1].dtype, image_embeddings[-1].device
    positional = tracker.get_image_wide_positional_embeddings().repeat(n, 1, 1, 1)
    points = torch.zeros(n, 1, 1, 2, dtype=dtype, device=device)
    labels = -torch.ones(n, 1, 1, dtype=torch.int32, device=device)
    if input_masks is not None and input_masks.shape[-2:] != tracker.prompt_encoder.mask_input_size:
        input_masks = F.interpolate(
            input_masks.float(),
            size=tracker.prompt_encoder.mask_input_size,
            align_corners=False,
            mode="bilinear",
            antialias=True,
        ).to(input_masks.dtype)
    sparse, dense = tracker.prompt_encoder(
        input_points=points, input_labels=labels, input_boxes=None, input_masks=input_masks
    )
    masks, iou, tokens, scores = tracker.mask_decoder(
        image_embeddings=image_embeddings[-1],
        image_positional_embeddings=positional,
        sparse_prompt_embeddings=sparse,
        dense_prompt_embeddings=dense,
        multimask_output=multimask,
        high_resolution_features=image_embeddings[:-1],
    )
    # (N, 1, K, h, w) / (N, 1, K) / (N, 1, K, C) / (N, 1, 1): one prompt per object
    masks, iou, tokens = masks[:, 0], iou[:, 0], tokens[:, 0]
    scores = scores.reshape(n, 1)
    appearing = scores > 0  # (N, 1)
    best = iou.argmax(-1) if multimask else torch.zeros(n, dtype=torch.long, device=device)
    rows = torch.arange(n, device=device)
    chosen = torch.where(appearing[:, :, None, None], masks, NO_OBJ_SCORE)[rows, best][:, None]
    high_res = F.interpolate(
        chosen.float(), size=(tracker.image_size, tracker.image_size), mode="bilinear"
    ).to(chosen.dtype)  # (N, 1, S, S)
    # with multimask the port picks the token of the best mask (line 2153); else token 0
    token = tokens[rows, best] if tokens.shape[1] > 1 else tokens[:, 0]
    weight = appearing.to(dtype)
    pointer = weight * tracker.object_pointer_proj(token) + (1 - weight) * tracker.no_object_pointer
    return Decoded(masks, iou, high_res, pointer, scores.reshape(n, 1, 1))


def mask_as_output(
    tracker: Sam3TrackerVideoModel,
    top: torch.Tensor,
    high_res_features: list[torch.Tensor],
    masks01: torch.Tensor,
) -> Decoded:
    """Seed ``N`` tracks from given 0/1 masks ``(N, 1, S, S)``: the mask is the output.

    Mirrors ``_use_mask_as_output`` (port lines 2175-2230), how streaming seeds a track from a
    detection. ``top`` is the raw top-level map ``(N, C, H, W)``. Not called directly: it gets
    the object pointer from ``_single_frame_forward`` with multimask on, i.e. the ``N x N`` pick.
    """
    masks01 = masks01.to(top.dtype)
    if masks01.shape[-2:] != (tracker.image_size, tracker.image_size):
        masks01 = F.interpolate(
            masks01.float(), size=(tracker.image_size, tracker.image_size), mode="bilinear",
            align_corners=False, antialias=True,
        ).to(top.dtype)  # fmt: skip
    high_res = masks01 * MASK_OUT_SCALE + MASK_OUT_BIAS
    decoded = decode(
        tracker, [*high_res_features, top], input_masks=tracker.mask_downsample(masks01)
    )
    appearing = (masks01.flatten(1) > 0).any(dim=1, keepdim=True).to(top.dtype)  # (N, 1)
    pointer = appearing * decoded.object_pointer + (1 - appearing) * tracker.no_object_pointer
    scores = (MASK_OUT_SCALE * appearing + MASK_OUT_BIAS)[..., None]  # (N, 1, 1)
    ones = masks01.new_ones(masks01.shape[0], 1)
    return Decoded(high_res, ones, high_res, pointer, scores)
