"""Box/point-prompted (visual) tracking core: prompts, the session, pruning, shared weights.

Tiny random weights give random masks (a frame-0 box mask can be empty), so these tests assert on
session ids, shapes and memory, and look at masks from frame 1 on only.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.frames import moving_shapes
from tracker import Sam3VideoTracker
from tracker.pruning import visual_session_bytes
from tracker.visual_prompts import VisualPrompt
from tracker.visual_session import BoundedVisualSession

H, W = 96, 128
BOX_A = (10.0, 20.0, 50.0, 70.0)
BOX_B = (70.0, 10.0, 120.0, 60.0)


def _step(tracker: Sam3VideoTracker, session: BoundedVisualSession, idx: int, prune: bool = True):
    result = tracker.visual_step(session, idx, rgb=moving_shapes(idx, H, W))
    if prune:
        tracker.prune_visual(session, idx, memory_frames=15, max_conditioning_frames=16)
    return result


def _cond_frames(session: BoundedVisualSession, obj_id: int) -> list[int]:
    slot = session._obj_id_to_idx[obj_id]
    return sorted(session.output_dict_per_obj[slot]["cond_frame_outputs"])


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"boxes": [(-5, 0, 40, 40)]}, "boxes[0]"),
        ({"boxes": [(10, 10, 10, 40)]}, "boxes[0]"),
        ({"boxes": [BOX_A, (0, 0, W + 1, 10)]}, "boxes[1]"),
        ({"points": [(5, 5)]}, "labels"),
        ({"points": [(5, 5), (6, 6)], "labels": [1]}, "labels"),
        ({"points": [(5, 5)], "labels": [2]}, "labels[0]"),
        ({"points": [(W + 10, 5)], "labels": [1]}, "points[0]"),
        ({"boxes": [(1, 2, 3)]}, "boxes[0]"),
        ({}, "boxes"),
        ({"boxes": [BOX_A, BOX_B], "points": [(5, 5)], "labels": [1]}, "points"),
        ({"boxes": [BOX_A, BOX_B], "tracker_id": 3}, "boxes"),
        ({"boxes": [BOX_A], "tracker_id": -1}, "tracker_id"),
        ({"boxes": [BOX_A], "frame_id": -2}, "frame_id"),
        ({"boxes": [BOX_A], "tracker_id": 1.5}, "tracker_id"),
        ({"boxes": [BOX_A], "class_name": " "}, "class_name"),
        ({"boxes": [BOX_A], "confidence": 1.5}, "confidence"),
        ({"boxes": [BOX_A], "confidence": "high"}, "confidence"),
    ],
)
def test_bad_prompt_is_refused_naming_the_field(fields, named):
    with pytest.raises(ValueError) as refused:
        VisualPrompt(**fields).check_frame(H, W)
    assert str(refused.value).startswith(f"{named}:"), refused.value


def test_good_prompt_takes_lists_and_arrays_and_counts_its_objects():
    prompt = VisualPrompt(boxes=np.array([BOX_A, BOX_B]), points=None, labels=None)
    assert prompt.boxes == (BOX_A, BOX_B) and prompt.object_count == 2
    single = VisualPrompt(boxes=[list(BOX_A)], points=[[30, 40], [35, 45]], labels=[1, 0])
    single.check_frame(H, W)
    assert single.object_count == 1 and single.labels == (1, 0)
    refine = VisualPrompt(points=[(1, 2)], labels=np.array([1]), tracker_id=np.int64(4))
    assert refine.tracker_id == 4 and type(refine.tracker_id) is int


def test_tiny_checkpoint_loads_the_tracker_video_processor(tiny_tracker):
    from transformers import Sam3TrackerVideoProcessor

    assert isinstance(tiny_tracker.video_processor, Sam3TrackerVideoProcessor)


def test_visual_tracking_adds_no_weights_to_the_loaded_video_model(tiny_tracker):
    video = tiny_tracker.model
    own = {t.data_ptr() for t in [*video.parameters(), *video.buffers()]}
    tracker_video = video.tracker_model
    assert type(tracker_video).__name__ == "Sam3TrackerVideoModel"
    used = [*tracker_video.parameters(), *tracker_video.buffers()]
    assert used and all(t.data_ptr() in own for t in used)
    # The eyes are the detector's backbone (+ the video model's tracker neck), not a copy.
    assert tracker_video.vision_encoder is None
    session = tiny_tracker.new_visual_session()
    tiny_tracker.add_visual_prompt(session, VisualPrompt(boxes=[BOX_A]), [1], 0, H, W)
    _step(tiny_tracker, session, 0)
    after = {t.data_ptr() for t in [*video.parameters(), *video.buffers()]}
    assert after == own


def test_two_prompts_before_one_forward_are_both_applied(tiny_tracker):
    session = tiny_tracker.new_visual_session()
    tiny_tracker.add_visual_prompt(session, VisualPrompt(boxes=[BOX_A]), [1], 0, H, W)
    points = VisualPrompt(points=[(90, 30), (100, 40)], labels=[1, 0])
    tiny_tracker.add_visual_prompt(session, points, [2], 0, H, W)
    assert session.obj_with_new_inputs == [1, 2]
    first = _step(tiny_tracker, session, 0)
    assert first.object_ids.tolist() == [1, 2]
    assert _cond_frames(session, 1) == [0] and _cond_frames(session, 2) == [0]
    second = _step(tiny_tracker, session, 1)
    assert second.object_ids.tolist() == [1, 2]
    assert second.masks.shape == (2, H, W) and second.masks.dtype == bool
    assert second.score_logits.shape == (2,)


def test_no_objects_means_no_forward_and_an_empty_result(tiny_tracker):
    session = tiny_tracker.new_visual_session()
    result = _step(tiny_tracker, session, 0)
    assert result.object_ids.shape == (0,) and result.masks.shape == (0, H, W)


def test_new_object_mid_stream_and_refinement_keeps_its_id(tiny_tracker):
    session = tiny_tracker.new_visual_session()
    tiny_tracker.add_visual_prompt(session, VisualPrompt(boxes=[BOX_A]), [7], 0, H, W)
    for idx in range(5):
        _step(tiny_tracker, session, idx)
    tiny_tracker.add_visual_prompt(session, VisualPrompt(boxes=[BOX_B]), [9], 5, H, W)
    assert _step(tiny_tracker, session, 5).object_ids.tolist() == [7, 9]
    assert _cond_frames(session, 9) == [5]
    for idx in range(6, 10):
        if idx == 8:
            refine = VisualPrompt(points=[(30, 40)], labels=[1], tracker_id=7)
            tiny_tracker.add_visual_prompt(session, refine, [7], idx, H, W)
        result = _step(tiny_tracker, session, idx)
        assert result.object_ids.tolist() == [7, 9]
    assert _cond_frames(session, 7) == [0, 8]
    assert session.get_obj_num() == 2


def test_removing_an_object_keeps_the_other_tracking(tiny_tracker):
    session = tiny_tracker.new_visual_session()
    both = VisualPrompt(boxes=[BOX_A, BOX_B])
    tiny_tracker.add_visual_prompt(session, both, [3, 4], 0, H, W)
    for idx in range(4):
        _step(tiny_tracker, session, idx)
    kept_memory = session.output_dict_per_obj[1]
    tiny_tracker.remove_visual_object(session, 3)
    assert session.obj_ids == [4] and session._obj_id_to_idx == {4: 0}
    assert session.output_dict_per_obj[0] is kept_memory
    for idx in range(4, 8):
        result = _step(tiny_tracker, session, idx)
        assert result.object_ids.tolist() == [4] and result.masks.shape == (1, H, W)
    assert len(session.frames_tracked_per_obj[0]) >= 1
    with pytest.raises(KeyError):
        session.remove_object(3)


def test_a_prompt_on_a_frame_already_tracked_is_refused(tiny_tracker):
    session = tiny_tracker.new_visual_session()
    tiny_tracker.add_visual_prompt(session, VisualPrompt(boxes=[BOX_A]), [1], 0, H, W)
    _step(tiny_tracker, session, 0)
    with pytest.raises(ValueError, match=r"^frame_idx:"):
        tiny_tracker.add_visual_prompt(session, VisualPrompt(boxes=[BOX_B]), [2], 0, H, W)
    assert session.obj_ids == [1]


def test_refining_an_object_the_session_does_not_hold_names_tracker_id(tiny_tracker):
    session = tiny_tracker.new_visual_session()
    tiny_tracker.add_visual_prompt(session, VisualPrompt(boxes=[BOX_A]), [1], 0, H, W)
    ghost = VisualPrompt(boxes=[BOX_B], tracker_id=5)
    with pytest.raises(ValueError, match=r"^tracker_id:"):
        tiny_tracker.add_visual_prompt(session, ghost, [5], 0, H, W)
    assert session.obj_ids == [1]


def _scripted_run(
    tracker: Sam3VideoTracker, frames: int, prune: bool, rebase: tuple[int, int] = (0, 0)
):
    """Prompts at 0 and 3, a refinement at 8, a removal at 20: every session feature.

    ``rebase``: (at frame, offset): from that frame on, indices are shifted down by offset (as a
    long stream's are).
    """
    rebase_at, offset = rebase
    session = tracker.new_visual_session()
    outputs = []
    for frame in range(frames):
        if offset and frame == rebase_at:
            tracker.rebase_visual(session, offset)
        idx = frame - offset if offset and frame >= rebase_at else frame
        if frame == 0:
            tracker.add_visual_prompt(session, VisualPrompt(boxes=[BOX_A]), [1], idx, H, W)
        if frame == 3:
            points = VisualPrompt(points=[(90, 30), (100, 40)], labels=[1, 0])
            tracker.add_visual_prompt(session, points, [2], idx, H, W)
        if frame == 8:
            tracker.add_visual_prompt(session, VisualPrompt(boxes=[BOX_B]), [1], idx, H, W)
        if frame == 20:
            tracker.remove_visual_object(session, 1)
        with torch.inference_mode():
            result = tracker.visual_step(session, idx, rgb=moving_shapes(frame, H, W))
            if prune:
                tracker.prune_visual(session, idx, memory_frames=15, max_conditioning_frames=16)
        outputs.append(result)
    return outputs, visual_session_bytes(session)


def test_pruned_visual_session_is_bit_identical_to_unpruned(tiny_tracker):
    pruned, pruned_bytes = _scripted_run(tiny_tracker, 40, prune=True)
    plain, plain_bytes = _scripted_run(tiny_tracker, 40, prune=False)
    for ours, theirs in zip(pruned, plain, strict=True):
        assert ours.object_ids.tolist() == theirs.object_ids.tolist()
        assert np.array_equal(ours.score_logits, theirs.score_logits)
        assert np.array_equal(ours.masks, theirs.masks)
    assert pruned_bytes < plain_bytes / 2


def test_rebasing_a_visual_session_changes_nothing(tiny_tracker):
    plain, _ = _scripted_run(tiny_tracker, 40, prune=True)
    # The newest index stays >= the 15-frame window, as pruning.rebase_visual_session requires;
    # the conditioning frames of both objects (0, 3, 8) go negative.
    rebased, _ = _scripted_run(tiny_tracker, 40, prune=True, rebase=(28, 12))
    for ours, theirs in zip(rebased, plain, strict=True):
        assert ours.object_ids.tolist() == theirs.object_ids.tolist()
        assert np.array_equal(ours.score_logits, theirs.score_logits)
        assert np.array_equal(ours.masks, theirs.masks)


def test_visual_session_bytes_stay_flat_once_the_conditioning_cap_is_hit(tiny_tracker):
    session = tiny_tracker.new_visual_session()
    tiny_tracker.add_visual_prompt(session, VisualPrompt(boxes=[BOX_A, BOX_B]), [1, 2], 0, H, W)
    held = {}
    for idx in range(300):
        if idx and idx % 2 == 0:  # a conditioning frame every other frame: the cap of 16 by 32
            refine = VisualPrompt(points=[(20 + idx % 20, 40)], labels=[1], tracker_id=1)
            tiny_tracker.add_visual_prompt(session, refine, [1], idx, H, W)
        _step(tiny_tracker, session, idx)
        held[idx] = tiny_tracker.visual_held(session)
    assert len(_cond_frames(session, 1)) == 16
    frames, objects, _ = held[299]
    assert frames == 1 and objects == 2
    # Refinement frames hold one more conditioning entry than the others: compare like with like.
    for phase in (0, 1):
        late = {held[i][2] for i in range(100 + phase, 300, 2)}
        assert len(late) == 1, sorted(late)
    assert held[299][2] == held[41][2]
