"""The tracker's memory for training: a stand-in session, memory attention, memory encoding.

Split from ``tracker_glue`` (same port, same line references: transformers 5.24.0,
``models/sam3_tracker_video/modeling_sam3_tracker_video.py``). The port's memory helpers are
called as they are; only the session they read and one reshape are ours.
"""

from __future__ import annotations

from typing import Any, cast

import torch
from transformers import Sam3TrackerVideoModel

from tracker.training.tracker_glue import Decoded


class ClipMemory:
    """Memory of one clip's ``N`` objects, stacked on the batch axis, in the port's layout.

    The port's memory helpers (``_gather_memory_frame_outputs`` 2272, ``_get_object_pointers``
    2354) read only ``session.output_dict_per_obj[obj_idx][...][frame]`` and ``session.dtype``, so
    this stands in for a ``Sam3TrackerVideoInferenceSession`` (which caches features under
    ``inference_mode`` and holds one object per index) with a single "object" 0 of batch ``N``.
    """

    def __init__(self, dtype: torch.dtype = torch.float32) -> None:
        self.dtype = dtype
        self.output_dict_per_obj: dict[int, dict[str, dict[int, dict[str, torch.Tensor]]]] = {
            0: {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}
        }

    def add(self, frame: int, *, conditioning: bool, memory: dict[str, torch.Tensor]) -> None:
        """Store a frame's ``maskmem_features``, ``maskmem_pos_enc`` and ``object_pointer``."""
        key = "cond_frame_outputs" if conditioning else "non_cond_frame_outputs"
        self.output_dict_per_obj[0][key][frame] = memory


def condition(
    tracker: Sam3TrackerVideoModel,
    memory: ClipMemory,
    frame: int,
    top: torch.Tensor,
    top_pos: torch.Tensor,
    *,
    num_frames: int | None = None,
    streaming: bool = True,
) -> torch.Tensor:
    """Top-level map of frame ``frame`` attended to the clip's memory: ``(N, C, H, W)``.

    Mirrors the non-initial branch of ``_prepare_memory_conditioned_features`` (port lines
    2536-2578, method at 2464) and calls the port's ``_gather_memory_frame_outputs``,
    ``_build_memory_attention_inputs``, ``_get_object_pointers``, ``_process_object_pointers`` and
    ``memory_attention`` as they are. Not called directly: ``memory_attention`` returns
    ``(1, N, H*W, C)`` and its final reshape ``out.squeeze(1).transpose(1, 2).view(N, C, H, W)``
    (line 2576) only works for ``N == 1`` (it squeezes the object axis, not the leading 1);
    here ``out[0].transpose(1, 2).reshape``. ``top``/``top_pos`` are ``(H*W, N, C)``.
    ``streaming`` (the project feeds frames one at a time) takes up to
    ``max_object_pointers_in_encoder`` pointers whatever ``num_frames`` is, as streaming does.
    """
    if not streaming and num_frames is None:
        raise ValueError("num_frames: required unless streaming")
    n, channels = top.shape[1], tracker.hidden_dim
    height, width = tracker.backbone_feature_sizes[-1]
    session: Any = memory  # reads only .output_dict_per_obj and .dtype, like a session
    gathered = tracker._gather_memory_frame_outputs(session, 0, frame, False)
    memories, positions = tracker._build_memory_attention_inputs(gathered, top.device)
    offsets, pointers, max_pointers = tracker._get_object_pointers(
        session, 0, frame, num_frames or 0, top.device, False, streaming
    )
    pointer_tokens = 0
    if pointers:
        stacked, stacked_pos = tracker._process_object_pointers(
            offsets, pointers, max_pointers, n, channels, top.device
        )
        memories.append(stacked)
        positions.append(stacked_pos)
        pointer_tokens = stacked.shape[0]
    attended = tracker.memory_attention(
        current_vision_features=top,
        current_vision_position_embeddings=top_pos,
        memory=torch.cat(memories, dim=0).to(dtype=memory.dtype),
        memory_posision_embeddings=torch.cat(positions, dim=0),
        num_object_pointer_tokens=pointer_tokens,
    )  # (1, N, H*W, C)
    return attended[0].transpose(1, 2).reshape(n, channels, height, width)


def encode_memory(
    tracker: Sam3TrackerVideoModel, top: torch.Tensor, decoded: Decoded, *, from_mask_input: bool
) -> dict[str, torch.Tensor]:
    """A frame's memory entry from its chosen masks: what ``ClipMemory.add`` stores.

    Calls the port's ``_encode_new_memory`` (lines 2697-2751) as is: it is differentiable and
    batch-correct (it casts the features to bfloat16 like inference; gradients pass the cast).
    Only the session bookkeeping of ``_batch_encode_memories`` (2754), which reads cached
    features from an inference session, is replaced.
    """
    features_, positions = tracker._encode_new_memory(
        top, decoded.high_res_masks, decoded.object_score_logits, is_mask_from_pts=from_mask_input
    )
    return {
        "maskmem_features": features_,
        # annotated as a list in the port, returned as one (H*W, N, C) tensor (line 2749)
        "maskmem_pos_enc": cast(torch.Tensor, positions),
        "object_pointer": decoded.object_pointer,
    }
