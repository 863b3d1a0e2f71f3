"""What a streaming SAM3 session may forget, in one place.

The HF port keeps every frame, every per-object per-frame output and every per-frame dict forever.
The tracker only reads back a bounded past (DESIGN.md):

- spatial memory from t-1 ... t-6 (``num_maskmem - 1``) plus up to 4 conditioning frames;
- object pointers from t-1 ... t-15 (``max_object_pointers_in_encoder - 1``) plus every
  conditioning frame;
- only the current frame's pixels, tracker-score dict and suppressed-id set.

``prune_session`` drops everything older after each frame. With ``memory_frames=15`` the outputs are
bit-identical to an unpruned session (a test holds us to it); with 7 they differ.

Conditioning frames are the exception: reconditioning adds one every 16 frames per confident
object, without limit, and every one feeds the object-pointer attention. ``max_conditioning_frames``
caps them per object (the first, which anchors the object, plus the most recent). Outputs are
unchanged until an object's cap is exceeded; past it, pointers from the oldest reconditioning
frames are no longer attended to — the price of bounded memory and bounded per-frame time.

Box/point-prompted sessions (``tracker.visual_session``) follow the same rule:
``prune_visual_session``.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from tracker.hf_session import BoundedInferenceSession
from tracker.visual_session import BoundedVisualSession

# Entries of past outputs that are never read again: the tracker reads maskmem_features,
# maskmem_pos_enc and object_pointer (plus small score logits) from the past.
PAST_OUTPUT_KEYS_TO_DROP = ("high_res_masks", "pred_masks")


def prune_session(
    session: BoundedInferenceSession,
    frame_idx: int,
    *,
    memory_frames: int = 15,
    max_conditioning_frames: int = 16,
) -> None:
    """Free what the tracker can no longer read after ``frame_idx`` was processed.

    Args:
        session: the session that just processed ``frame_idx``.
        frame_idx: the frame index just processed (the newest).
        memory_frames: non-conditioning outputs kept per object, newest first (15 reproduces the
            unpruned session exactly).
        max_conditioning_frames: conditioning outputs kept per object (first + most recent).
    """
    _forget_past_outputs(session, frame_idx, memory_frames, max_conditioning_frames)

    _keep_only_frame(session.obj_id_to_tracker_score_frame_wise, frame_idx)
    _keep_only_frame(session.suppressed_obj_ids, frame_idx)

    # Streaming skips hot-start removal, so these lists are only appended to; keep a short tail.
    for frames in session.unmatched_frame_inds.values():
        del frames[: max(0, len(frames) - memory_frames)]
    for pair in [p for p, f in session.overlap_pair_to_frame_inds.items() if not f]:
        del session.overlap_pair_to_frame_inds[pair]
    for frames in session.overlap_pair_to_frame_inds.values():
        del frames[: max(0, len(frames) - memory_frames)]


def prune_visual_session(
    session: BoundedVisualSession,
    frame_idx: int,
    *,
    memory_frames: int = 15,
    max_conditioning_frames: int = 16,
) -> None:
    """The same rule for a box/point-prompted session (``tracker.visual_session``).

    Its tracker reads the same past as the concept session's (``prune_session``), and has no
    per-frame dicts; its vision-feature cache holds one frame by construction. Measured on the
    tiny model: pruned outputs bit-identical to unpruned (40 frames, prompts at 3 and 8, a removal
    at 20); 1,000 frames with refinements every 50 held 6.1 MB, flat once the cap was reached.
    """
    _forget_past_outputs(session, frame_idx, memory_frames, max_conditioning_frames)


def _forget_past_outputs(
    session: BoundedInferenceSession | BoundedVisualSession,
    frame_idx: int,
    memory_frames: int,
    max_conditioning_frames: int,
) -> None:
    """Frames, per-object outputs and inputs the tracker of either session no longer reads."""
    oldest_kept = frame_idx - memory_frames + 1
    if session.processed_frames:
        for idx in [i for i in session.processed_frames if i < frame_idx]:
            del session.processed_frames[idx]

    for per_obj in session.output_dict_per_obj.values():
        non_cond = per_obj["non_cond_frame_outputs"]
        for idx in [i for i in non_cond if i < oldest_kept]:
            del non_cond[idx]
        cond = per_obj["cond_frame_outputs"]
        if len(cond) > max_conditioning_frames:
            ordered = sorted(cond)
            keep = {ordered[0], *ordered[len(ordered) - max_conditioning_frames + 1 :]}
            for idx in ordered:
                if idx not in keep:
                    del cond[idx]
        for outputs in (non_cond, cond):
            for idx, entry in outputs.items():
                if idx < frame_idx:
                    for key in PAST_OUTPUT_KEYS_TO_DROP:
                        entry.pop(key, None)

    for per_obj_frames in (
        session.frames_tracked_per_obj,
        session.mask_inputs_per_obj,
        session.point_inputs_per_obj,
    ):
        for frames in per_obj_frames.values():
            for idx in [i for i in frames if i < frame_idx]:
                del frames[idx]


def _keep_only_frame(per_frame: dict, frame_idx: int) -> None:
    for idx in [i for i in per_frame if i != frame_idx]:
        del per_frame[idx]


def forget_object(session: BoundedInferenceSession, obj_id: int) -> None:
    """Remove an object and every bookkeeping entry that names it.

    ``Sam3VideoInferenceSession.remove_object`` drops the tracker state but leaves the fusion
    metadata (scores, keep-alive, first frame, occlusion) behind, which would grow forever.
    """
    if obj_id in session.obj_ids and len(session.obj_ids) == 1:
        # remove_object() resets the whole session (cache included) when the last object goes;
        # do the equivalent without touching prompts.
        session.reset_tracking_data()
    else:
        session.remove_object(obj_id, strict=False)
    if obj_id in session.obj_ids:
        session.obj_ids.remove(obj_id)
    for mapping in (
        session.obj_id_to_score,
        session.obj_id_to_last_occluded,
        session.obj_first_frame_idx,
        session.unmatched_frame_inds,
        session.trk_keep_alive,
        session.obj_id_to_prompt_id,
    ):
        mapping.pop(obj_id, None)
    for scores in session.obj_id_to_tracker_score_frame_wise.values():
        scores.pop(obj_id, None)
    for ids in session.suppressed_obj_ids.values():
        ids.discard(obj_id)
    for pair in [p for p in session.overlap_pair_to_frame_inds if obj_id in p]:
        del session.overlap_pair_to_frame_inds[pair]
    session.removed_obj_ids.discard(obj_id)
    session.hotstart_removed_obj_ids.discard(obj_id)


def rebase_frame_indices(session: BoundedInferenceSession, offset: int) -> None:
    """Shift every frame index held by ``session`` down by ``offset``.

    The port assumes frame indices stay below ``ALWAYS_OCCLUDED = 100000`` (55 min at 30 fps). A
    camera runs for weeks, so the session periodically moves its indices back towards zero.
    Differences between indices are what the model reads, and those are preserved; ``offset`` must
    be a multiple of ``recondition_every_nth_frame`` so periodic reconditioning keeps its phase.

    Last-occluded frames older than ``offset`` would turn negative and read as "never occluded";
    they are compacted to ranks below every recent value instead, which keeps their order.
    """
    if offset <= 0:
        return
    values = sorted({int(v.item()) for v in session.obj_id_to_last_occluded.values()} - {-1})
    # Smallest m such that exactly m distinct values lie below offset + m: those become ranks
    # 0..m-1, every later value v becomes v - offset >= m, so the order is kept everywhere.
    compacted = 0
    while (below := sum(1 for v in values if v < offset + compacted)) != compacted:
        compacted = below
    rank = {v: i for i, v in enumerate(values[:compacted])}
    for obj_id, value in list(session.obj_id_to_last_occluded.items()):
        v = int(value.item())
        if v >= 0:
            new = rank[v] if v in rank else v - offset
            session.obj_id_to_last_occluded[obj_id] = torch.full_like(value, new)

    _shift_tracker_state(session, offset)
    for per_frame in (session.obj_id_to_tracker_score_frame_wise, session.suppressed_obj_ids):
        items = list(per_frame.items())
        per_frame.clear()
        per_frame.update((idx - offset, value) for idx, value in items)
    for obj_id in list(session.obj_first_frame_idx):
        session.obj_first_frame_idx[obj_id] -= offset
    for frames in session.unmatched_frame_inds.values():
        frames[:] = [f - offset for f in frames]
    for frames in session.overlap_pair_to_frame_inds.values():
        frames[:] = [f - offset for f in frames]


def rebase_visual_session(session: BoundedVisualSession, offset: int) -> None:
    """``rebase_frame_indices`` for a box/point-prompted session.

    Its state is keyed by frame index only in its frames, per-object outputs, inputs and feature
    cache; differences between indices are what its tracker reads, and those are preserved. Rebase
    it with the same ``offset`` as the stream's concept session so both keep one frame counter.
    The tracker stops looking back at index 0 (non-conditioning pointers and memories at negative
    indices are never read), so ``offset`` must leave the newest index at or above the pruning
    window (``frame_count - offset >= memory_frames``) for outputs to stay unchanged.
    """
    if offset <= 0:
        return
    _shift_tracker_state(session, offset)


def _shift_tracker_state(
    session: BoundedInferenceSession | BoundedVisualSession, offset: int
) -> None:
    """Shift what the tracker of either session keys by frame index: frames, per-object outputs
    and inputs, the feature cache, and the frame count."""
    if session.processed_frames is not None:
        session.processed_frames = _shift_keys(session.processed_frames, offset)
    for per_obj in session.output_dict_per_obj.values():
        for key in ("cond_frame_outputs", "non_cond_frame_outputs"):
            per_obj[key] = _shift_keys(per_obj[key], offset)
    for container in (
        session.frames_tracked_per_obj,
        session.mask_inputs_per_obj,
        session.point_inputs_per_obj,
    ):
        for obj_idx in list(container):
            container[obj_idx] = _shift_keys(container[obj_idx], offset)
    session.cache._vision_features = _shift_keys(session.cache._vision_features, offset)
    session.frame_count -= offset


def _shift_keys(mapping: dict, offset: int) -> dict:
    return {idx - offset: value for idx, value in mapping.items()}


def tensor_bytes(objects: Iterable[object]) -> int:
    """Bytes of every distinct tensor storage reachable through dicts, lists, sets and tuples."""
    seen: set[int] = set()
    total = 0
    stack = list(objects)
    while stack:
        item = stack.pop()
        if isinstance(item, torch.Tensor):
            storage = item.untyped_storage()
            key = storage.data_ptr()
            if key not in seen:
                seen.add(key)
                total += storage.nbytes()
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set):
            stack.extend(item)
    return total


def session_bytes(session: BoundedInferenceSession) -> int:
    """Approximate bytes held by the session's tensors (frames, outputs, caches, prompts)."""
    return tensor_bytes(
        [
            session.processed_frames or {},
            session.output_dict_per_obj,
            session.mask_inputs_per_obj,
            session.point_inputs_per_obj,
            session.cache._vision_features,
            session.obj_id_to_last_occluded,
            session.prompt_embeddings,
            session.prompt_input_ids,
            session.prompt_attention_masks,
        ]
    )


def visual_session_bytes(session: BoundedVisualSession) -> int:
    """Approximate bytes held by a visual session's tensors (frames, outputs, features, prompts)."""
    return tensor_bytes(
        [
            session.processed_frames or {},
            session.output_dict_per_obj,
            session.mask_inputs_per_obj,
            session.point_inputs_per_obj,
            session.cache._vision_features,
        ]
    )
