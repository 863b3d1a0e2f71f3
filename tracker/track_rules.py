"""Which tracks a stream keeps, shows and ends: the track rules, each in one place.

The port's streaming mode never ends a track on its own: tracks the detector never confirms and
duplicate tracks of one object live on, and each costs a tracker pass on every frame. After every
frame ``TrackBook.update`` reads what the detector said (``tracker.frame_matching``) and decides:

- **confirmation**: a new track is tentative (no tracker_id, never shown) until the detector has
  matched it on ``confirm_frames`` frames, its first detection included. A match it shares with an
  older track (a duplicate) does not count.
- **hotstart, unmatched** (port rule): a track unmatched on ``hotstart_unmatch_thresh`` of its
  first ``hotstart_delay`` frames ends.
- **hotstart, duplicate** (port rule): a track matched to the same detection as one older track on
  ``hotstart_dup_thresh`` of its first ``hotstart_delay`` frames ends; the older one stays.
- **unmatched**: a track without a detector match for ``max_unmatched_frames`` frames in a row ends
  (frames with an empty mask, an occlusion, do not count; they are the lost rule's).
- **lost**: a track absent from the output (empty mask) for ``lost_object_frames`` frames ends.
- **budget**: past ``max_objects`` live tracks the stalest make room, in this order: older tracks
  the detector did not confirm this frame (longest since their last match first, then lowest
  score), then this frame's new tracks (lowest score first), then confirmed ones. So a new object
  is refused only when every older track was confirmed on this frame.
- **shown once** (``unbacked_duplicates``): a track the detector did not match on this frame is
  not shown where its mask overlaps a track it did match by mask IoU >= ``SHOWN_ONCE_IOU``. A
  propagated mask can drift onto a neighbour (the track of an object that just left, say), and
  one object must not appear twice; the track itself lives on until a rule above ends it.

Memory is bounded by what is on screen: a handful of counters per live track, plus a count per
older track a new one overlaps during its hotstart frames; nothing is kept per frame.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import supervision as sv

from tracker.frame_matching import FrameMatching
from tracker.session_rules import SessionRules

# The port's own defaults (Sam3VideoConfig), for a backend whose config does not name them.
PORT_HOTSTART_DELAY = 15
PORT_HOTSTART_UNMATCH_THRESH = 8
PORT_HOTSTART_DUP_THRESH = 8

SHOWN_ONCE_IOU = 0.5
"""Mask IoU at which an unmatched track is taken for a second copy of a matched one: two tracks
covering more than half of each other's union are one object (the port's own duplicate test,
``high_iou_thresh``, is stricter because it judges new detections, not what is shown)."""


class EvictionReason(StrEnum):
    """Why a track was ended by the rules; the value is the key in ``SessionStats.evictions``."""

    LOST = "lost"
    UNMATCHED = "unmatched"
    DUPLICATE = "duplicate"
    BUDGET = "budget"


EVICTION_REASONS: tuple[str, ...] = tuple(reason.value for reason in EvictionReason)


@dataclass(frozen=True)
class TrackLimits:
    """The rules' thresholds as plain integers (0 turns a rule off), resolved once per frame.

    Examples:
        >>> from types import SimpleNamespace
        >>> limits = TrackLimits.resolve(SessionRules(), SimpleNamespace(hotstart_delay=10))
        >>> limits.hotstart_delay, limits.hotstart_unmatch_thresh, limits.max_objects
        (10, 8, 16)
    """

    max_objects: int
    confirm_frames: int
    hotstart_delay: int
    hotstart_unmatch_thresh: int
    hotstart_dup_thresh: int
    max_unmatched_frames: int
    lost_object_frames: int

    @classmethod
    def resolve(cls, rules: SessionRules, model_config: Any) -> TrackLimits:
        """``rules``, with each hotstart value left None taken from the model's config."""

        def from_config(value: int | None, name: str, port_default: int) -> int:
            if value is not None:
                return value
            return int(getattr(model_config, name, port_default))

        return cls(
            max_objects=rules.max_objects,
            confirm_frames=rules.confirm_frames,
            hotstart_delay=from_config(rules.hotstart_delay, "hotstart_delay", PORT_HOTSTART_DELAY),
            hotstart_unmatch_thresh=from_config(
                rules.hotstart_unmatch_thresh,
                "hotstart_unmatch_thresh",
                PORT_HOTSTART_UNMATCH_THRESH,
            ),
            hotstart_dup_thresh=from_config(
                rules.hotstart_dup_thresh, "hotstart_dup_thresh", PORT_HOTSTART_DUP_THRESH
            ),
            max_unmatched_frames=rules.max_unmatched_frames or 0,
            lost_object_frames=rules.lost_object_frames or 0,
        )


@dataclass
class _Track:
    """The counters one live track needs; none grows with the track's age."""

    score: float
    confirmed: bool
    age: int = 0  # frames since birth: 0 on the frame the detector found it
    matches: int = 1  # confirming detector matches, the first detection included
    since_match: int = 0  # frames since the last confirming match
    unmatched_run: int = 0  # consecutive frames with a mask no detection matched
    unseen_run: int = 0  # consecutive frames absent from the output
    hotstart_unmatched: int = 0  # unmatched frames among the first hotstart_delay
    hotstart_shared: dict[int, int] = field(default_factory=dict)  # older track -> shared frames
    new: bool = True  # born on the frame being judged


class TrackBook:
    """The rules' view of one HF session's live tracks, by the session's object id.

    Examples:
        >>> from types import SimpleNamespace
        >>> limits = TrackLimits.resolve(SessionRules(confirm_frames=2), SimpleNamespace())
        >>> book = TrackBook()
        >>> book.update(FrameMatching(new=frozenset({0})), [0], {0: 0.9}, limits)
        []
        >>> book.is_confirmed(0), book.tentative
        (False, 1)
        >>> book.update(FrameMatching(matched=frozenset({0})), [0], {0: 0.9}, limits)
        []
        >>> book.is_confirmed(0), book.tentative
        (True, 0)
    """

    def __init__(self) -> None:
        self._tracks: dict[int, _Track] = {}

    def __len__(self) -> int:
        return len(self._tracks)

    @property
    def tentative(self) -> int:
        """Live tracks not confirmed yet (no tracker_id)."""
        return sum(1 for track in self._tracks.values() if not track.confirmed)

    def is_confirmed(self, obj_id: int) -> bool:
        track = self._tracks.get(obj_id)
        return track is not None and track.confirmed

    def clear(self) -> None:
        self._tracks.clear()

    def forget(self, obj_id: int) -> None:
        """The track left the session by another way (a removed concept)."""
        self._tracks.pop(obj_id, None)
        for track in self._tracks.values():
            track.hotstart_shared.pop(obj_id, None)

    def update(
        self,
        matching: FrameMatching,
        live: Iterable[int],
        scores: Mapping[int, float],
        limits: TrackLimits,
    ) -> list[tuple[int, EvictionReason]]:
        """Take in one frame; returns the tracks to end and why, and forgets them.

        Args:
            matching: what the detector said on this frame.
            live: the HF session's object ids after the frame (its ``obj_ids``).
            scores: the objects in this frame's output (a mask), with their detection score;
                a live track missing here was not seen on this frame.
            limits: the thresholds in force.
        """
        self._sync(live, matching, scores, limits)
        ended: list[tuple[int, EvictionReason]] = []
        for obj_id, track in self._tracks.items():
            reason = _reason_to_end(track, self._tracks, limits)
            if reason is not None:
                ended.append((obj_id, reason))
        for obj_id, _ in ended:
            self.forget(obj_id)
        ended.extend((obj_id, EvictionReason.BUDGET) for obj_id in self._over_budget(limits))
        for obj_id, reason in ended:
            if reason is EvictionReason.BUDGET:
                self.forget(obj_id)
        return ended

    def _sync(
        self,
        live: Iterable[int],
        matching: FrameMatching,
        scores: Mapping[int, float],
        limits: TrackLimits,
    ) -> None:
        """Bring every live track's counters up to this frame; drop tracks no longer live."""
        live_ids = [int(obj_id) for obj_id in live]
        for obj_id in set(self._tracks) - set(live_ids):
            self.forget(obj_id)
        shared_with_older: dict[int, list[int]] = {}
        for older, newer in matching.duplicates:
            shared_with_older.setdefault(newer, []).append(older)
        for obj_id in live_ids:
            score = float(scores.get(obj_id, 0.0))
            track = self._tracks.get(obj_id)
            if track is None:
                # Born on this frame: the detection that created it is its first match.
                self._tracks[obj_id] = _Track(score=score, confirmed=limits.confirm_frames <= 1)
                continue
            track.new = False
            track.age += 1
            if obj_id in scores:
                track.score = score
            track.unseen_run = 0 if obj_id in scores else track.unseen_run + 1
            if matching.confirms(obj_id):
                track.matches += 1
                track.since_match = 0
                track.confirmed = track.confirmed or track.matches >= limits.confirm_frames
            else:
                track.since_match += 1
            if obj_id in matching.unmatched:
                track.unmatched_run += 1
            elif obj_id in matching.matched:
                track.unmatched_run = 0
            in_hotstart = track.age < limits.hotstart_delay
            if in_hotstart and obj_id in matching.unmatched:
                track.hotstart_unmatched += 1
            if in_hotstart:
                for older in shared_with_older.get(obj_id, ()):
                    track.hotstart_shared[older] = track.hotstart_shared.get(older, 0) + 1
            else:
                track.hotstart_shared.clear()

    def _over_budget(self, limits: TrackLimits) -> list[int]:
        """The tracks that make room when more than ``max_objects`` live, stalest first."""
        excess = len(self._tracks) - limits.max_objects
        if excess <= 0:
            return []

        def staleness(item: tuple[int, _Track]) -> tuple[int, int, float, int]:
            obj_id, track = item
            if track.new:
                group = 1
            elif track.since_match > 0:
                group = 0  # an older track the detector did not confirm this frame
            else:
                group = 2
            # Within a group: longest since a match, then lowest score, then the newest.
            return (group, -track.since_match, track.score, -obj_id)

        ordered = sorted(self._tracks.items(), key=staleness)
        return [obj_id for obj_id, _ in ordered[:excess]]


def _reason_to_end(
    track: _Track, tracks: Mapping[int, _Track], limits: TrackLimits
) -> EvictionReason | None:
    """Which rule ends ``track`` after this frame, or None; one rule per reason, checked in turn."""
    if track.age < limits.hotstart_delay:
        dup_thresh = limits.hotstart_dup_thresh
        if dup_thresh and any(
            count >= dup_thresh and older in tracks
            for older, count in track.hotstart_shared.items()
        ):
            return EvictionReason.DUPLICATE
        unmatch_thresh = limits.hotstart_unmatch_thresh
        if unmatch_thresh and track.hotstart_unmatched >= unmatch_thresh:
            return EvictionReason.UNMATCHED
    if limits.max_unmatched_frames and track.unmatched_run >= limits.max_unmatched_frames:
        return EvictionReason.UNMATCHED
    if limits.lost_object_frames and track.unseen_run >= limits.lost_object_frames:
        return EvictionReason.LOST
    return None


def unbacked_duplicates(
    object_ids: np.ndarray, masks: np.ndarray, shown: np.ndarray, matching: FrameMatching
) -> np.ndarray:
    """Which of the ``shown`` tracks to hide by the "shown once" rule (module docstring).

    Args:
        object_ids: ``(N,)`` the frame's objects (the session's ids).
        masks: ``(N, H, W)`` bool, their masks.
        shown: ``(N,)`` bool, the objects the other rules would show.
        matching: what the detector said on this frame.

    Returns:
        ``(N,)`` bool, True for a shown track no detection matched that lies on a matched one.

    Examples:
        >>> masks = np.zeros((2, 4, 4), bool); masks[:, :2] = True
        >>> unbacked_duplicates(np.array([1, 2]), masks, np.array([True, True]),
        ...                     FrameMatching(matched=frozenset({1}), unmatched=frozenset({2})))
        array([False,  True])
    """
    ids = [int(i) for i in object_ids]
    suspects = shown & np.array([i in matching.unmatched for i in ids], dtype=bool)
    backed = shown & np.array([i in matching.matched or i in matching.new for i in ids], dtype=bool)
    hidden = np.zeros(len(ids), dtype=bool)
    if not suspects.any() or not backed.any():
        return hidden
    ious = sv.mask_iou_batch(masks[suspects], masks[backed])  # (S, B)
    hidden[np.flatnonzero(suspects)] = (ious >= SHOWN_ONCE_IOU).any(axis=1)
    return hidden
