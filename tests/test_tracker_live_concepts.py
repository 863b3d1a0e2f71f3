"""Concepts changed live: a class change edits the running session instead of reseeding it.

Most tests run the real tiny checkpoint at threshold 0 (objects appear on every frame) and
compare a stream whose classes change on frame 3 with a control stream that never changes: the
concepts that stay must produce exactly the control's tracks. One test uses the scripted stand-in
(``tests.scripted_tracker``) to show a removed concept's track never coming back.
"""

from __future__ import annotations

import logging
import pathlib
from collections.abc import Sequence

import numpy as np
import pytest
import supervision as sv

from tests.frames import moving_shapes
from tests.scripted_tracker import ScriptedTracker
from tracker import Sam3VideoTracker, SessionRegistry, SessionStats
from tracker.inputs import to_rgb

CHANGE_AT = 3
FRAMES = 6
# A budget with room for every track of both concepts: a full session would make the concepts
# compete for room, and the control could no longer predict the kept concept's tracks.
ROOM = 200


@pytest.fixture(scope="module")
def roomy_tracker(tiny_model_dir: pathlib.Path) -> Sam3VideoTracker:
    """The tiny checkpoint without ``tiny_tracker``'s 3-object port cap, which counts every
    concept's tracks together and would keep an added concept out of a full session."""
    return Sam3VideoTracker.from_pretrained(str(tiny_model_dir), device="cpu")


@pytest.fixture(scope="module")
def control_both(roomy_tracker: Sam3VideoTracker) -> list[sv.Detections]:
    """The control for changes of ("person", "car"): a stream that keeps both."""
    return _stream(roomy_tracker, [("person", "car")] * FRAMES)[0]


def _stream(
    tracker: object, class_lists: Sequence[tuple[str, ...]]
) -> tuple[list[sv.Detections], SessionStats]:
    registry = SessionRegistry(tracker, max_objects=ROOM)
    frames = [
        registry.process(
            moving_shapes(i), video_identifier="cam", frame_id=i, class_names=names, threshold=0.0
        )
        for i, names in enumerate(class_lists)
    ]
    return frames, registry.stats("cam")


def _of(detections: sv.Detections, name: str) -> sv.Detections:
    return detections[detections.data["class_name"] == name]


def _ids(frames: list[sv.Detections]) -> set[int]:
    return {int(i) for detections in frames for i in detections.tracker_id}


def _assert_tracks_as_in_control(
    control: list[sv.Detections], changed: list[sv.Detections], name: str
) -> None:
    """``name``'s detections match the control's frame by frame: masks, scores, and ids.

    Ids of tracks that existed before the change are the control's own; a track born after it
    may be numbered differently (the other concept's tracks draw from the same counter), but one
    control track is always one changed track.
    """
    renamed: dict[int, int] = {}
    for frame, (expected, actual) in enumerate(zip(control, changed, strict=True)):
        expected, actual = _of(expected, name), _of(actual, name)
        assert len(expected) == len(actual), frame
        np.testing.assert_array_equal(expected.mask, actual.mask)
        np.testing.assert_array_equal(expected.confidence, actual.confidence)
        for old, new in zip(expected.tracker_id.tolist(), actual.tracker_id.tolist(), strict=True):
            assert renamed.setdefault(old, new) == new, frame
    assert len(set(renamed.values())) == len(renamed)
    before = _ids([_of(d, name) for d in control[:CHANGE_AT]])
    assert all(renamed[i] == i for i in before)
    crossing = before & _ids([_of(d, name) for d in changed[CHANGE_AT:]])
    assert crossing, f"no {name} track lived across the change: the test would prove nothing"


def test_an_added_concept_is_detected_and_every_other_track_keeps_memory_and_id(
    roomy_tracker, caplog
):
    control, _ = _stream(roomy_tracker, [("person",)] * FRAMES)
    with caplog.at_level(logging.INFO, logger="tracker"):
        changed, stats = _stream(
            roomy_tracker, [("person",)] * CHANGE_AT + [("person", "car")] * (FRAMES - CHANGE_AT)
        )
    _assert_tracks_as_in_control(control, changed, "person")
    cars = [_of(d, "car") for d in changed[CHANGE_AT:]]
    assert sum(len(c) for c in cars) > 0, "the added concept was never detected"
    assert all((c.class_id == 1).all() for c in cars)  # ("person", "car").index("car")
    assert min(_ids(cars)) > max(_ids(changed[:CHANGE_AT]))
    assert stats.reseeds == 0
    assert not [r for r in caplog.records if "reseeding" in r.getMessage()]
    assert any("changed on the running session" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(("removed", "kept"), [("car", "person"), ("person", "car")])
def test_a_removed_concept_ends_its_tracks_and_every_other_track_keeps_memory_and_id(
    roomy_tracker, control_both, removed, kept
):
    changed, stats = _stream(
        roomy_tracker, [("person", "car")] * CHANGE_AT + [(kept,)] * (FRAMES - CHANGE_AT)
    )
    _assert_tracks_as_in_control(control_both, changed, kept)
    gone = _ids([_of(d, removed) for d in changed[:CHANGE_AT]])
    assert gone, f"no {removed} track before the change: the test would prove nothing"
    after = changed[CHANGE_AT:]
    assert all(set(d.data["class_name"]) <= {kept} for d in after)
    assert not gone & _ids(after), "a removed concept's track came back"
    # class_id indexes the current list: the kept concept is now class 0.
    assert all((d.class_id == 0).all() for d in after)
    assert stats.reseeds == 0


def test_a_reordered_class_list_changes_class_ids_and_nothing_else(roomy_tracker, control_both):
    changed, stats = _stream(
        roomy_tracker, [("person", "car")] * CHANGE_AT + [("car", "person")] * (FRAMES - CHANGE_AT)
    )
    for frame, (expected, actual) in enumerate(zip(control_both, changed, strict=True)):
        np.testing.assert_array_equal(expected.tracker_id, actual.tracker_id)
        np.testing.assert_array_equal(expected.mask, actual.mask)
        swapped = expected.class_id if frame < CHANGE_AT else 1 - expected.class_id
        np.testing.assert_array_equal(actual.class_id, swapped)
    after = {name for d in changed[CHANGE_AT:] for name in d.data["class_name"]}
    assert after == {"person", "car"}, "both concepts must be on screen after the reorder"
    assert stats.reseeds == 0


def test_prompt_ids_stay_unique_when_a_concept_goes_and_another_comes(roomy_tracker):
    """The port numbers a new prompt ``len(prompts)``: after "person" (0) goes, "dog" would be 1,
    the id of "car", and car's tracks would turn into dogs. ``add_prompts`` picks a free id."""
    tracker = roomy_tracker
    session = tracker.new_session(("person", "car"))
    for i in range(2):
        tracker.step(session, to_rgb(moving_shapes(i)), i)

    def objects_of(text: str) -> list[int]:
        return [
            o for o in session.obj_ids if session.prompts[session.obj_id_to_prompt_id[o]] == text
        ]

    people, cars = objects_of("person"), objects_of("car")
    assert people and cars
    highest = session.max_obj_id
    assert tracker.remove_prompts(session, ("person",)) == people
    assert session.obj_ids == cars
    tracker.add_prompts(session, ("dog", "car"))  # "car" is registered already: skipped
    assert session.prompts == {1: "car", 2: "dog"}
    result = tracker.step(session, to_rgb(moving_shapes(2)), 2)
    assert set(cars) <= set(result.object_ids.tolist())
    assert objects_of("car")[: len(cars)] == cars
    assert "person" not in result.prompts
    new = [o for o in result.object_ids.tolist() if o not in cars]
    assert all(o > highest for o in new)


def test_stand_in_a_removed_concept_never_returns_its_old_track_when_added_back(caplog):
    """Scripted stand-in: "person:1" and "car:1" stay in view; only the class list changes."""
    tracker = ScriptedTracker(lambda _: ["person:1", "car:1"])
    registry = SessionRegistry(tracker, confirm_frames=1)
    phases = [("person", "car")] * 3 + [("person",)] * 3 + [("car", "person")] * 3
    with caplog.at_level(logging.INFO, logger="tracker"):
        frames = [
            registry.process(
                np.zeros((16, 16, 3), np.uint8),
                video_identifier="cam",
                frame_id=i,
                class_names=names,
                threshold=0.0,
            )
            for i, names in enumerate(phases)
        ]
    people = [_of(d, "person") for d in frames]
    cars = [_of(d, "car") for d in frames]
    assert len(_ids(people)) == 1, "the person track kept its id through both changes"
    assert [int(p.class_id[0]) for p in people] == [0] * 6 + [1] * 3
    first_car, second_car = _ids(cars[:3]), _ids(cars[6:])
    assert len(first_car) == len(second_car) == 1 and not _ids(cars[3:6])
    assert min(second_car) > max(_ids(frames[:6])), "a re-added concept's track is a new one"
    assert (cars[-1].class_id == 0).all()
    assert len(tracker.sessions) == 1 and registry.stats("cam").reseeds == 0
    assert len(tracker.sessions[0].removed) == 1
