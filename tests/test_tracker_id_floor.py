"""Tracker ids that survive the process: a floor to continue above, blocks reserved before use.

The registry side of "ids never reused across restarts": whoever stores ids gives an identifier
its stored highest as a floor and a ``reserve`` callback; every id handed out afterwards is above
the floor, and no id is handed out before a ceiling at or above it was reserved.
"""

from __future__ import annotations

import pytest

from tests.frames import moving_shapes
from tests.scripted_tracker import ScriptedTracker
from tracker import SessionRegistry
from tracker.tracker_ids import TrackerIds


def _new_object_every_frame(frame_number: int) -> list[str]:
    return [f"person:{frame_number}"]


def _ids_of(registry: SessionRegistry, frames: range, *, epoch: int = 0) -> list[int]:
    ids: list[int] = []
    for frame_id in frames:
        detections = registry.process(
            moving_shapes(frame_id),
            video_identifier="cam",
            frame_id=frame_id,
            class_names="person",
            threshold=0.0,
            epoch=epoch,
        )
        assert detections.tracker_id is not None
        ids.extend(int(i) for i in detections.tracker_id)
    return ids


def test_every_id_is_reserved_before_it_is_handed_out():
    log: list[tuple[str, int]] = []  # reservations and ids, in the order they happened
    ids = TrackerIds(highest=10, reserve=lambda ceiling: log.append(("reserved", ceiling)), block=4)
    for _ in range(9):
        log.append(("id", ids.allocate()))
    assert [value for kind, value in log if kind == "id"] == list(range(11, 20))
    assert [value for kind, value in log if kind == "reserved"] == [14, 18, 22]  # one per block
    reserved = 0
    for kind, value in log:
        if kind == "reserved":
            reserved = value
        else:
            assert value <= reserved, f"id {value} handed out before it was reserved"


def test_a_failed_reservation_hands_out_no_id():
    def refuse(ceiling: int) -> None:
        raise OSError("disk full")

    ids = TrackerIds(reserve=refuse)
    with pytest.raises(OSError):
        ids.allocate()
    assert ids.highest == 0


def test_registry_continues_ids_above_a_floor_given_before_the_first_frame():
    registry = SessionRegistry(ScriptedTracker(_new_object_every_frame), confirm_frames=1)
    ceilings: list[int] = []
    registry.set_id_floor("cam", 500, reserve=ceilings.append, block=8)
    assert registry.highest_tracker_id("cam") == 500
    ids = _ids_of(registry, range(1, 13))
    assert ids and min(ids) == 501 and len(set(ids)) == len(ids)
    assert registry.highest_tracker_id("cam") == max(ids)
    assert ceilings and ceilings[-1] >= max(ids)


def test_a_floor_below_the_ids_already_emitted_changes_nothing():
    registry = SessionRegistry(ScriptedTracker(_new_object_every_frame), confirm_frames=1)
    first = _ids_of(registry, range(1, 6))
    registry.set_id_floor("cam", 1)
    after = _ids_of(registry, range(1, 4), epoch=1)  # a new epoch: a fresh session
    assert min(after) > max(first)
    assert registry.highest_tracker_id("never-seen") == 0


def test_negative_floor_is_refused_by_name():
    registry = SessionRegistry(ScriptedTracker(_new_object_every_frame))
    with pytest.raises(ValueError, match="floor"):
        registry.set_id_floor("cam", -1)
