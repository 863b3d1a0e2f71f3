"""What the detector said about each track on one frame, read from the port's session.

After every frame the port matches its detections to the tracks it propagated
(``Sam3VideoModel._associate_det_trk``) and, in ``_process_hotstart``, records the outcome on the
inference session: each new object's first frame (``obj_first_frame_idx``), each track's unmatched
frames (``unmatched_frame_inds``) and each pair of tracks matched to one detection
(``overlap_pair_to_frame_inds``, older track first). In streaming mode the port stops there and
never acts on them. ``read_frame_matching`` turns the entries stamped with the frame just run into
a ``FrameMatching``, which ``tracker.track_rules`` acts on. Only the newest entry of each list is
read, so ``tracker.pruning`` trimming the lists to a short tail loses nothing the rules need.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FrameMatching:
    """Outcome of matching one frame's detections to the tracks, by the session's object id.

    Attributes:
        new: objects born on this frame from a detection no track matched.
        matched: tracks (born earlier) that a detection matched (mask IoU >= the port's
            ``trk_assoc_iou_thresh``) and whose mask is not empty.
        unmatched: tracks with a mask that no detection matched.
        duplicates: ``(older, newer)`` pairs of tracks matched to one and the same detection.

    A track in none of the sets had an empty mask on this frame (occluded, or gone).

    Examples:
        >>> FrameMatching(new=frozenset({3}), matched=frozenset({1, 2})).confirms(2)
        True
        >>> FrameMatching(matched=frozenset({1, 2}), duplicates=((1, 2),)).confirms(2)
        False
    """

    new: frozenset[int] = frozenset()
    matched: frozenset[int] = frozenset()
    unmatched: frozenset[int] = frozenset()
    duplicates: tuple[tuple[int, int], ...] = ()

    def confirms(self, obj_id: int) -> bool:
        """A detection matched this track, and not one it shares with an older track."""
        return obj_id in self.matched and all(newer != obj_id for _, newer in self.duplicates)

    @classmethod
    def all_matched(cls, object_ids: Iterable[int]) -> FrameMatching:
        """What to assume of a backend that reports no matching: every reported track matched."""
        return cls(matched=frozenset(int(i) for i in object_ids))


def read_frame_matching(session: Any, frame_idx: int, object_ids: Iterable[int]) -> FrameMatching:
    """The matching of frame ``frame_idx``, from the port's hotstart metadata on ``session``.

    Args:
        session: the ``Sam3VideoInferenceSession`` that just ran ``frame_idx``.
        frame_idx: the frame just run.
        object_ids: the objects in this frame's output (postprocessing drops empty masks).
    """
    new = frozenset(
        int(obj) for obj, first in session.obj_first_frame_idx.items() if first == frame_idx
    )
    unmatched = frozenset(
        int(obj)
        for obj, frames in session.unmatched_frame_inds.items()
        if frames and frames[-1] == frame_idx
    )
    duplicates = tuple(
        (int(older), int(newer))
        for (older, newer), frames in session.overlap_pair_to_frame_inds.items()
        if frames and frames[-1] == frame_idx
    )
    shown = {int(obj) for obj in object_ids}
    return FrameMatching(
        new=new,
        matched=frozenset(shown - new - unmatched),
        unmatched=unmatched,
        duplicates=duplicates,
    )
