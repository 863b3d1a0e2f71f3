"""The track rules: confirmation, streaming hotstart, unmatched and lost tracks, the object budget.

Scripted scenes run on ``tests.scripted_tracker.ScriptedTracker``, a stand-in backend whose
per-frame outputs, matching information included, are scripted: random weights cannot make the
detector confirm, miss or duplicate a track on cue. The budget and memory checks at the end run on
the real tiny checkpoint.
"""

from __future__ import annotations

import pathlib
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from tests.frames import moving_shapes
from tests.scripted_tracker import ScriptedTracker
from tracker import Sam3VideoTracker, SessionRegistry
from tracker.frame_matching import FrameMatching
from tracker.session_rules import (
    DEFAULT_CONFIRM_FRAMES,
    DEFAULT_MAX_OBJECTS,
    DEFAULT_MAX_UNMATCHED_FRAMES,
    SessionRules,
)
from tracker.track_rules import (
    EVICTION_REASONS,
    SHOWN_ONCE_IOU,
    EvictionReason,
    TrackBook,
    TrackLimits,
    unbacked_duplicates,
)

FRAME = np.zeros((16, 16, 3), np.uint8)


def _scene(
    script: dict[int, list[str]], frames: int, **registry_kwargs: Any
) -> tuple[list[dict[str, int]], SessionRegistry, ScriptedTracker]:
    """Run a scripted scene; returns each frame's tracker ids by label, the registry, the stand-in.

    ``script`` maps a frame number to its labels; a frame not named repeats the last one named.
    """
    named = sorted(script)

    def labels_at(n: int) -> list[str]:
        return script[max(k for k in named if k <= n)]

    stand_in = ScriptedTracker(labels_at)
    registry = SessionRegistry(stand_in, **registry_kwargs)
    shown: list[dict[str, int]] = []
    for n in range(frames):
        detections = registry.process(FRAME, video_identifier="s", frame_id=n, class_names="x")
        # The stand-in draws the k-th visible label's mask at (k, k): the box names the label.
        labels = [entry.rstrip("?").partition("=")[0] for entry in labels_at(n)]
        ids = {
            int(box[0]): int(i)
            for box, i in zip(detections.xyxy, detections.tracker_id, strict=True)
        }
        shown.append({label: ids[k] for k, label in enumerate(labels) if k in ids})
    return shown, registry, stand_in


def test_defaults_are_the_documented_ones():
    rules = SessionRules()
    assert (rules.max_objects, rules.confirm_frames, rules.max_unmatched_frames) == (
        DEFAULT_MAX_OBJECTS,
        DEFAULT_CONFIRM_FRAMES,
        DEFAULT_MAX_UNMATCHED_FRAMES,
    )
    # None: the loaded model's config decides (the port's defaults are 15, 8, 8)
    assert (rules.hotstart_delay, rules.hotstart_unmatch_thresh, rules.hotstart_dup_thresh) == (
        None,
        None,
        None,
    )
    limits = TrackLimits.resolve(rules, SimpleNamespace(hotstart_delay=20, hotstart_dup_thresh=5))
    assert (limits.hotstart_delay, limits.hotstart_unmatch_thresh, limits.hotstart_dup_thresh) == (
        20,
        8,
        5,
    )


def test_unconfirmed_track_is_removed_and_never_emitted():
    # "ghost" is found once at frame 2, then the tracker holds a mask no detection confirms.
    shown, registry, stand_in = _scene({0: ["a"], 2: ["a", "ghost"], 3: ["a", "ghost?"]}, 14)
    ghost = 1  # the stand-in's object id of the second label
    assert ghost in stand_in.sessions[0].removed
    # removed on its 8th unmatched frame among its first 15 (port: hotstart_unmatch_thresh 8)
    assert all("ghost" not in frame for frame in shown)
    stats = registry.stats("s")
    assert stats.evictions["unmatched"] == 1 and stats.objects_evicted == 1
    assert stats.highest_tracker_id == 1  # only "a" ever consumed an id
    assert stats.tentative_tracks == 0 and stats.objects_live == 1
    assert [frame.get("a") for frame in shown] == [None, *[1] * 13]  # confirmed on frame 1


def test_tentative_count_and_confirmation_after_confirm_frames():
    shown, registry, _ = _scene({0: ["a"], 3: ["a", "b"]}, 6, confirm_frames=3)
    assert [frame.get("a") for frame in shown] == [None, None, 1, 1, 1, 1]
    assert [frame.get("b") for frame in shown] == [None] * 5 + [2]
    assert registry.stats("s").tentative_tracks == 0
    _, registry, _ = _scene({0: ["a"]}, 1, confirm_frames=3)
    assert registry.stats("s").tentative_tracks == 1


@pytest.mark.parametrize("confirm_frames", [1, 2])
def test_duplicate_is_removed_and_the_older_id_kept(confirm_frames):
    # From frame 4, "b" is matched to the same detection as the older "a" on every frame.
    script = {0: ["a"], 3: ["a", "b"], 4: ["a", "b=a"], 20: ["a", "c"]}
    shown, registry, stand_in = _scene(script, 22, confirm_frames=confirm_frames)
    assert stand_in.sessions[0].removed == [1]  # "b", on its 8th shared frame
    assert all(frame["a"] == 1 for frame in shown[confirm_frames - 1 :])
    stats = registry.stats("s")
    assert stats.evictions == {"lost": 0, "unmatched": 0, "duplicate": 1, "budget": 0}
    if confirm_frames == 1:
        # shown at once, then ended: its id is retired, never reused
        assert {frame.get("b") for frame in shown[3:11]} == {2}
        assert "b" not in shown[11] and shown[21]["c"] == 3
    else:
        # a shared match never confirms a track: the duplicate never consumed an id
        assert all("b" not in frame for frame in shown)
        assert shown[21]["c"] == 2


def test_track_unmatched_for_max_unmatched_frames_in_a_row_is_removed():
    # "a" is matched until frame 19, then the tracker keeps a mask the detector never matches.
    shown, registry, stand_in = _scene({0: ["a"], 20: ["a?"]}, 52)
    removed_at = DEFAULT_MAX_UNMATCHED_FRAMES + 20 - 1  # the 30th unmatched frame in a row
    assert shown[removed_at - 1] == {"a": 1} and shown[removed_at] == {}
    assert stand_in.sessions[0].removed == [0]
    assert registry.stats("s").evictions["unmatched"] == 1


def test_short_occlusion_and_short_unmatched_run_survive_with_their_id():
    script = {
        0: ["a", "b"],
        20: ["b"],  # "a" occluded: no mask for 5 frames
        25: ["a?", "b"],  # back, unmatched by the detector for 5 frames
        30: ["a", "b"],
    }
    shown, registry, stand_in = _scene(script, 40)
    assert all(frame.get("a") == 1 for frame in shown[1:20] + shown[25:])
    assert all("a" not in frame for frame in shown[20:25])
    assert stand_in.sessions[0].removed == []
    assert registry.stats("s").objects_evicted == 0


def test_lost_track_is_evicted_after_lost_object_frames_without_a_mask():
    _, registry, stand_in = _scene({0: ["a", "b"], 5: ["b"]}, 12, lost_object_frames=4)
    assert stand_in.sessions[0].removed == [0]
    assert registry.stats("s").evictions["lost"] == 1


def test_new_object_entering_a_full_scene_is_tracked_at_the_expense_of_the_stalest():
    script = {
        0: ["a", "b", "c"],
        10: ["a", "b"],  # "c" leaves: its track goes stale
        15: ["a", "b", "d"],  # "d" walks into a full scene
        20: ["a", "b", "d", "e"],  # every older track confirmed on this frame: "e" is refused
    }
    shown, registry, stand_in = _scene(script, 22, max_objects=3)
    removed = stand_in.sessions[0].removed
    # "c" made room for "d"; "e" was refused on each frame the detector found it again
    assert removed == [2, 4, 5]
    assert shown[16] == {"a": 1, "b": 2, "d": 4}  # "d" confirmed on its second frame
    assert all("e" not in frame for frame in shown)
    stats = registry.stats("s")
    assert stats.evictions["budget"] == 3 and stats.objects_live == 3
    assert stats.highest_tracker_id == 4  # "e" never consumed an id


def test_budget_evicts_longest_unmatched_first_then_lowest_score():
    limits = TrackLimits.resolve(SessionRules(max_objects=3, confirm_frames=1), SimpleNamespace())
    book = TrackBook()
    scores = {0: 0.9, 1: 0.5, 2: 0.8}
    book.update(FrameMatching(new=frozenset({0, 1, 2})), [0, 1, 2], scores, limits)
    book.update(FrameMatching(matched=frozenset({0})), [0, 1, 2], scores, limits)
    # 1 and 2 equally stale (one frame): the lower score goes
    assert book.update(
        FrameMatching(new=frozenset({3}), matched=frozenset({0})), [0, 1, 2, 3], scores, limits
    ) == [(1, EvictionReason.BUDGET)]
    # 2 is now the longest without a match, whatever its score
    scores = {0: 0.1, 2: 0.99, 3: 0.2, 4: 0.9}
    assert book.update(
        FrameMatching(new=frozenset({4}), matched=frozenset({3})), [0, 2, 3, 4], scores, limits
    ) == [(2, EvictionReason.BUDGET)]


def test_budget_is_per_identifier_and_can_be_changed():
    stand_in = ScriptedTracker(lambda n: ["a", "b", "c", "d"])
    registry = SessionRegistry(stand_in, max_objects=4)
    registry.set_max_objects("small", 2)
    for n in range(3):
        for name in ("small", "big"):
            registry.process(FRAME, video_identifier=name, frame_id=n, class_names="x")
    assert registry.stats("small").objects_live == 2
    assert registry.stats("big").objects_live == 4
    registry.set_max_objects("big", 1)  # an open session takes it from its next frame
    registry.process(FRAME, video_identifier="big", frame_id=3, class_names="x")
    assert registry.stats("big").objects_live == 1
    registry.set_max_objects("small", None)  # back to the registry's
    registry.close("small")
    for n in range(4, 6):
        registry.process(FRAME, video_identifier="small", frame_id=n, class_names="x")
    assert registry.stats("small").objects_live == 4


def test_evictions_always_name_all_four_reasons():
    assert EVICTION_REASONS == ("lost", "unmatched", "duplicate", "budget")
    _, registry, _ = _scene({0: ["a"]}, 2)
    stats = registry.stats("s")
    assert stats.evictions == dict.fromkeys(EVICTION_REASONS, 0) and stats.objects_evicted == 0


@pytest.mark.parametrize(
    "field",
    [
        "max_objects",
        "confirm_frames",
        "hotstart_delay",
        "hotstart_unmatch_thresh",
        "hotstart_dup_thresh",
        "max_unmatched_frames",
        "lost_object_frames",
    ],
)
def test_bad_rule_values_raise_value_error_naming_the_field(field):
    bad = 0 if field in ("max_objects", "confirm_frames") else -1
    with pytest.raises(ValueError, match=field):
        SessionRules(**{field: bad})
    bad_kwargs: dict[str, Any] = {field: bad}
    with pytest.raises(ValueError, match=field):
        SessionRegistry(ScriptedTracker(lambda n: []), **bad_kwargs)


def test_set_max_objects_below_one_raises_naming_the_field():
    registry = SessionRegistry(ScriptedTracker(lambda n: []))
    with pytest.raises(ValueError, match="max_objects"):
        registry.set_max_objects("cam", 0)


# ---- the real tiny checkpoint ----------------------------------------------------------------


@pytest.fixture(scope="module")
def uncapped_tracker(tiny_model_dir: pathlib.Path) -> Sam3VideoTracker:
    """The tiny checkpoint with the port's own object cap left at its default (10,000)."""
    return Sam3VideoTracker.from_pretrained(str(tiny_model_dir), device="cpu")


def test_frame_matching_is_read_from_the_port_session(tiny_tracker):
    session = tiny_tracker.new_session(("person", "car"))
    first = tiny_tracker.step(session, moving_shapes(0)[..., ::-1].copy(), 0)
    assert first.matching is not None and first.matching.new == set(session.obj_ids)
    second = tiny_tracker.step(session, moving_shapes(1)[..., ::-1].copy(), 1)
    matching = second.matching
    assert matching is not None
    born_before = set(first.matching.new)
    assert matching.matched | matching.unmatched <= born_before
    assert not matching.matched & matching.unmatched
    assert all(older in born_before for older, _ in matching.duplicates)


FRAMES_ON_TINY = 30  # the 400-frame run with timings is the bench's (bench session --churn)


def test_busy_scene_on_tiny_checkpoint_stays_within_budget_and_flat_memory(uncapped_tracker):
    # Threshold 0 makes new objects on every frame; two classes double them.
    registry = SessionRegistry(uncapped_tracker)
    live, held = [], []
    for n in range(FRAMES_ON_TINY):
        registry.process(
            moving_shapes(n),
            video_identifier="busy",
            frame_id=n,
            class_names="person, car",
            threshold=0.0,
        )
        stats = registry.stats("busy")
        live.append(stats.objects_live)
        held.append(stats.bytes_held)
    assert max(live) <= DEFAULT_MAX_OBJECTS
    assert max(live) == DEFAULT_MAX_OBJECTS  # the scene is busy enough to fill the budget
    assert stats.evictions["budget"] > 0 and stats.objects_evicted == sum(stats.evictions.values())
    # past the memory window (15 frames), bytes held stay flat: the last 10 frames hold no more
    # than the 10 before them
    assert max(held[-10:]) <= 1.05 * max(held[-20:-10])


# ---- shown once: an unmatched track lying on a matched one is hidden ---------------------------


def _square_masks(*corners: tuple[int, int]) -> np.ndarray:
    """(N, 20, 20) bool: an 8x8 square at each (y, x) corner."""
    masks = np.zeros((len(corners), 20, 20), dtype=bool)
    for index, (y, x) in enumerate(corners):
        masks[index, y : y + 8, x : x + 8] = True
    return masks


def test_an_unmatched_track_on_a_matched_one_is_hidden_and_elsewhere_is_shown() -> None:
    masks = _square_masks((0, 0), (1, 1), (10, 10))  # 2 lies on 1; 3 is elsewhere
    matching = FrameMatching(matched=frozenset({1}), unmatched=frozenset({2, 3}))
    hidden = unbacked_duplicates(np.array([1, 2, 3]), masks, np.ones(3, dtype=bool), matching)
    assert hidden.tolist() == [False, True, False]


def test_a_track_born_this_frame_backs_like_a_matched_one() -> None:
    masks = _square_masks((0, 0), (0, 1))
    matching = FrameMatching(new=frozenset({5}), unmatched=frozenset({4}))
    hidden = unbacked_duplicates(np.array([4, 5]), masks, np.ones(2, dtype=bool), matching)
    assert hidden.tolist() == [True, False]


def test_two_matched_tracks_overlapping_are_both_shown_and_a_hidden_one_backs_nothing() -> None:
    masks = _square_masks((0, 0), (0, 1), (1, 0))
    both_matched = FrameMatching(matched=frozenset({1, 2}), unmatched=frozenset({3}))
    shown = np.array([True, True, True])
    assert unbacked_duplicates(np.array([1, 2, 3]), masks, shown, both_matched).tolist() == [
        False,
        False,
        True,
    ]
    # a matched track already filtered out (below the threshold, say) backs nothing
    not_shown = np.array([False, False, True])
    assert not unbacked_duplicates(np.array([1, 2, 3]), masks, not_shown, both_matched).any()


def test_overlap_below_the_threshold_is_two_objects() -> None:
    masks = _square_masks((0, 0), (0, 4))  # IoU 32 / 96 = 0.33
    matching = FrameMatching(matched=frozenset({1}), unmatched=frozenset({2}))
    assert sv_iou(masks[0], masks[1]) < SHOWN_ONCE_IOU
    assert not unbacked_duplicates(np.array([1, 2]), masks, np.ones(2, dtype=bool), matching).any()


def sv_iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())
