"""Box/point-prompted objects on streams: the registry's ``add_prompt`` / ``remove_object``.

Real tiny checkpoint throughout. Tiny random weights give random masks (an object may be absent
from a frame's detections), so these tests assert on ids, statistics and memory, and look for a
prompted id in detections over several frames, never on one.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.frames import moving_shapes
from tracker import Sam3VideoTracker, SessionRegistry
from tracker.visual_prompts import VisualPrompt

H, W = 48, 64
BOX = (5.0, 5.0, 30.0, 30.0)


def _frame(index: int) -> np.ndarray:
    return moving_shapes(index, H, W)


def _run(
    registry: SessionRegistry,
    frames: range,
    *,
    names: tuple[str, ...] = (),
    epoch: int = 0,
    video_identifier: str = "cam",
) -> list[set[int]]:
    """The tracker ids of each frame's detections."""
    seen = []
    for frame_id in frames:
        detections = registry.process(
            _frame(frame_id),
            video_identifier=video_identifier,
            frame_id=frame_id,
            class_names=names,
            threshold=0.0,
            epoch=epoch,
        )
        seen.append({int(i) for i in detections.tracker_id})
    return seen


@pytest.fixture
def registry(tiny_tracker: Sam3VideoTracker) -> SessionRegistry:
    return SessionRegistry(tiny_tracker, max_objects=2)


def test_a_prompt_before_the_first_frame_tracks_without_class_names(registry):
    ids = registry.add_prompt("cam", VisualPrompt(boxes=[BOX]))
    seen = _run(registry, range(6))
    stats = registry.stats("cam")
    assert ids == [1]
    assert stats.visual_objects == 1 and stats.objects_live == 1
    assert stats.frames_processed == 6 and stats.frames_held == 1
    assert any(ids[0] in frame for frame in seen[1:])
    assert set().union(*seen) <= {1}  # no concept ran: nothing else appears


def test_prompted_detections_name_their_class_and_carry_the_prompt_confidence(registry):
    registry.add_prompt("cam", VisualPrompt(boxes=[BOX], class_name="forklift", confidence=0.8))
    for frame_id in range(8):
        detections = registry.process(
            _frame(frame_id),
            video_identifier="cam",
            frame_id=frame_id,
            class_names=("person", "forklift"),
            threshold=0.0,
        )
        prompted = detections[detections.tracker_id == 1]
        if len(prompted):
            assert list(prompted.data["class_name"]) == ["forklift"]
            assert prompted.class_id.tolist() == [1]  # its index in the stream's classes
            assert prompted.confidence.tolist() == pytest.approx([0.8])
            assert 0.5 < float(prompted.data["tracker_score"][0]) <= 1.0
            return
    pytest.fail("the prompted object never appeared in 8 frames")


def test_mid_stream_prompt_beside_concepts_gets_an_id_no_concept_track_has(registry):
    concept_ids = set().union(*_run(registry, range(4), names=("person",)))
    (new_id,) = registry.add_prompt("cam", VisualPrompt(points=[(20, 20)], labels=[1]))
    later = _run(registry, range(4, 10), names=("person",))
    assert new_id not in concept_ids
    assert new_id > max(concept_ids, default=0)
    assert registry.stats("cam").visual_objects == 1
    # Concept tracks keep coming (ids never collide with the prompted one).
    assert any(ids - {new_id} for ids in later)


def test_concept_and_prompted_objects_share_one_backbone_pass_per_frame(registry, tiny_tracker):
    registry.add_prompt("cam", VisualPrompt(boxes=[BOX]))
    _run(registry, range(2), names=("person",))
    calls = []
    encoder = tiny_tracker.model.detector_model.vision_encoder
    hook = encoder.register_forward_hook(lambda *_: calls.append(1))
    try:
        _run(registry, range(2, 5), names=("person",))
    finally:
        hook.remove()
    assert registry.stats("cam").visual_objects == 1
    assert len(calls) == 3


def test_refinement_keeps_the_id_and_allocates_none(registry):
    (obj,) = registry.add_prompt("cam", VisualPrompt(boxes=[BOX]))
    _run(registry, range(3))
    assert registry.add_prompt("cam", VisualPrompt(points=[(10, 10)], labels=[0], tracker_id=obj))
    assert registry.add_prompt("cam", VisualPrompt(boxes=[(6, 6, 32, 32)], tracker_id=obj)) == [obj]
    _run(registry, range(3, 6))
    stats = registry.stats("cam")
    assert stats.visual_objects == 1 and stats.highest_tracker_id == obj


def test_removal_ends_the_object_and_keeps_the_other(registry):
    first, second = registry.add_prompt("cam", VisualPrompt(boxes=[BOX, (34, 10, 60, 40)]))
    _run(registry, range(3))
    registry.remove_object("cam", first)
    seen = _run(registry, range(3, 8))
    assert registry.stats("cam").visual_objects == 1
    assert all(first not in ids for ids in seen)
    with pytest.raises(KeyError):
        registry.remove_object("cam", first)  # gone, and its id is never handed out again
    with pytest.raises(ValueError, match="tracker_id"):
        registry.add_prompt("cam", VisualPrompt(boxes=[BOX], tracker_id=first))
    assert registry.add_prompt("cam", VisualPrompt(boxes=[BOX])) == [second + 1]


def test_a_waiting_prompt_can_be_removed_before_its_frame(registry):
    ids = registry.add_prompt("cam", VisualPrompt(boxes=[BOX, (34, 10, 60, 40)], frame_id=50))
    registry.remove_object("cam", ids[0])
    _run(registry, range(2))
    assert registry.stats("cam").visual_objects == 1  # the other box still waits for frame 50


def test_a_concept_track_can_be_removed_by_its_tracker_id(registry):
    ids = set().union(*_run(registry, range(5), names=("person",)))
    assert ids, "the tiny checkpoint at threshold 0 finds objects"
    victim = max(ids)
    live_before = registry.stats("cam").objects_live
    registry.remove_object("cam", victim)
    assert registry.stats("cam").objects_live <= live_before
    with pytest.raises(KeyError):
        registry.remove_object("cam", victim)
    with pytest.raises(KeyError):
        registry.remove_object("no-such-stream", 1)


def test_prompted_objects_take_the_budget_first_and_past_it_are_refused(tiny_tracker):
    registry = SessionRegistry(tiny_tracker, max_objects=2)
    registry.add_prompt("cam", VisualPrompt(boxes=[BOX, (34, 10, 60, 40)]))
    _run(registry, range(4), names=("person",))
    stats = registry.stats("cam")
    assert stats.visual_objects == 2
    assert stats.objects_live == 2  # concept tracks made room
    with pytest.raises(ValueError, match="max_objects"):
        registry.add_prompt("cam", VisualPrompt(boxes=[BOX]))


@pytest.mark.parametrize(
    ("prompt", "named"),
    [
        (VisualPrompt(boxes=[(0, 0, W + 5, 10)]), "boxes[0]"),
        (VisualPrompt(points=[(5, H + 1)], labels=[1]), "points[0]"),
        (VisualPrompt(boxes=[BOX], tracker_id=77), "tracker_id"),
        (VisualPrompt(boxes=[BOX], frame_id=0), "frame_id"),
    ],
)
def test_bad_prompts_are_refused_naming_the_field_and_the_stream_goes_on(registry, prompt, named):
    _run(registry, range(20), names=("person",))
    with pytest.raises(ValueError) as refused:
        registry.add_prompt("cam", prompt)
    assert str(refused.value).startswith(named)
    assert _run(registry, range(20, 21), names=("person",)) is not None
    assert registry.stats("cam").frames_processed == 21


def test_add_prompt_refuses_what_is_not_a_prompt_or_an_identifier(registry):
    with pytest.raises(ValueError, match="prompt"):
        registry.add_prompt("cam", {"boxes": [BOX]})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="video_identifier"):
        registry.add_prompt("", VisualPrompt(boxes=[BOX]))


def test_a_prompt_that_does_not_fit_its_first_frame_is_dropped_and_the_stream_runs(
    registry, caplog
):
    registry.add_prompt("cam", VisualPrompt(boxes=[(0, 0, 500, 400)]))  # no frame seen yet
    _run(registry, range(2))
    assert registry.stats("cam").visual_objects == 0
    assert "boxes[0]" in caplog.text


def test_a_prompt_for_a_later_frame_waits_for_it(registry):
    registry.add_prompt("cam", VisualPrompt(boxes=[BOX], frame_id=3))
    _run(registry, range(3))
    assert registry.stats("cam").frames_held == 0  # nothing placed yet: no visual session
    _run(registry, range(3, 5))
    assert registry.stats("cam").frames_held == 1


@pytest.mark.parametrize("reseed", ["epoch", "frame_id_back", "reset"])
def test_a_reseed_re_prompts_seen_objects_keeping_their_ids(registry, reseed):
    (obj,) = registry.add_prompt("cam", VisualPrompt(boxes=[BOX]))
    seen = _run(registry, range(6))
    assert any(obj in ids for ids in seen), "needs the object seen once to have a last box"
    if reseed == "reset":
        registry.reset("cam")
    epoch = 1 if reseed == "epoch" else 0
    start = 0 if reseed == "frame_id_back" else 6
    after = _run(registry, range(start, start + 6), epoch=epoch)
    stats = registry.stats("cam")
    assert stats.reseeds == 1
    assert stats.visual_objects == 1 and stats.highest_tracker_id == obj
    assert any(obj in ids for ids in after)


def test_closing_the_stream_ends_its_prompted_objects_and_retires_their_ids(registry):
    (obj,) = registry.add_prompt("cam", VisualPrompt(boxes=[BOX]))
    _run(registry, range(2))
    registry.close("cam")
    _run(registry, range(2, 4), names=("person",))
    assert registry.stats("cam").visual_objects == 0
    assert registry.add_prompt("cam", VisualPrompt(boxes=[BOX]))[0] > obj


def test_a_thousand_frames_hold_flat_bytes_through_rebases(tiny_tracker):
    registry = SessionRegistry(
        tiny_tracker, max_objects=2, memory_frames=4, max_conditioning_frames=2, rebase_at=300
    )
    registry.add_prompt("cam", VisualPrompt(boxes=[BOX]))
    registry.add_prompt("cam", VisualPrompt(points=[(45, 20)], labels=[1]))
    held = {}
    for frame_id in range(1000):
        registry.process(
            _frame(frame_id % 12),
            video_identifier="cam",
            frame_id=frame_id,
            class_names=(),
            threshold=0.0,
        )
        if frame_id in (100, 500, 999):
            held[frame_id] = registry.stats("cam")
    assert all(s.visual_objects == 2 and s.frames_held == 1 for s in held.values())
    assert held[999].next_frame_index < 300  # rebased at least twice
    assert held[999].bytes_held <= held[100].bytes_held * 1.02
    assert held[500].bytes_held <= held[100].bytes_held * 1.02


def test_frames_without_work_still_teach_the_session_their_size(registry):
    (obj,) = registry.add_prompt("cam", VisualPrompt(boxes=[BOX]))
    _run(registry, range(2))
    registry.remove_object("cam", obj)
    _run(registry, range(2, 4))  # nothing to run, yet the size is known
    with pytest.raises(ValueError, match=r"^boxes\[0\]"):
        registry.add_prompt("cam", VisualPrompt(boxes=[(0, 0, W + 1, 10)]))
