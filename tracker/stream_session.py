"""One video_identifier's life: its HF session, its ids, its eviction clock.

A ``StreamSession`` outlives HF sessions: when a reseed replaces the HF session, the id allocator
and the statistics stay, so tracker ids continue above every id the identifier ever emitted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import supervision as sv

from tracker.detections import empty_detections, to_detections

logger = logging.getLogger(__name__)

# Frame indices handed to the HF session stay below this; the port assumes < 100,000.
REBASE_AT = 50_000
# After a rebase the newest frame sits at about this index (keeps every window intact).
REBASE_KEEP = 1_000


@dataclass(frozen=True)
class SessionStats:
    """What one video_identifier's session holds and has done.

    Attributes:
        frames_processed: frames run through the model since the identifier first appeared.
        frames_held: preprocessed frames the HF session still holds (1 when pruning works).
        objects_live: objects the HF session tracks now.
        objects_evicted: objects removed after ``lost_object_frames`` unseen frames.
        reseeds: HF sessions replaced (epoch change, frame_id backwards, classes, reset, error).
        highest_tracker_id: the largest id ever emitted (0 when none yet).
        bytes_held: approximate bytes of tensors the HF session holds.
    """

    frames_processed: int
    frames_held: int
    objects_live: int
    objects_evicted: int
    reseeds: int
    highest_tracker_id: int
    bytes_held: int


class StreamSession:
    """Streaming state of one video_identifier on top of a shared tracker backend."""

    def __init__(
        self,
        tracker: Any,
        video_identifier: str,
        *,
        memory_frames: int,
        lost_object_frames: int | None,
        max_conditioning_frames: int,
        rebase_at: int = REBASE_AT,
    ) -> None:
        self.tracker = tracker
        self.video_identifier = video_identifier
        self.memory_frames = memory_frames
        self.lost_object_frames = lost_object_frames
        self.max_conditioning_frames = max_conditioning_frames
        self.rebase_at = rebase_at
        self.class_names: tuple[str, ...] = ()
        self.epoch: int | None = None
        self.last_frame_id: int | None = None
        self.last_used = 0.0
        self.frames_processed = 0
        self.objects_evicted = 0
        self.reseeds = 0
        self.highest_tracker_id = 0
        self._hf_session: Any = None
        self._frame_idx = 0
        self._global_ids: dict[int, int] = {}
        self._held: tuple[int, int, int] = (0, 0, 0)
        self._last_seen: dict[int, int] = {}

    @property
    def has_hf_session(self) -> bool:
        return self._hf_session is not None

    @property
    def frame_idx(self) -> int:
        """The index the next frame gets inside the HF session."""
        return self._frame_idx

    def reseed(self, class_names: tuple[str, ...], reason: str, *, count: bool = True) -> None:
        """Start a fresh HF session; ids keep counting from ``highest_tracker_id``."""
        if self._hf_session is not None and count:
            self.reseeds += 1
            logger.info("reseeding %s: %s", self.video_identifier, reason)
        self.close()
        self.class_names = class_names
        self._hf_session = self.tracker.new_session(class_names)
        self._frame_idx = 0

    def close(self) -> None:
        """Drop the HF session and the per-session id map; ``highest_tracker_id`` stays."""
        self._hf_session = None
        self._global_ids.clear()
        self._last_seen.clear()

    def step(self, rgb: np.ndarray, threshold: float) -> sv.Detections:
        """Run one RGB frame, prune, evict, map ids and filter by ``threshold``.

        The HF session is held in a local for the whole step: a concurrent ``close()`` (idle
        expiry, LRU, the service deleting a stream) drops the session for the *next* frame
        and never breaks the one in flight.
        """
        if self._hf_session is None:
            self.reseed(self.class_names, "no session", count=False)
        hf_session = self._hf_session
        idx = self._frame_idx
        result = self.tracker.step(hf_session, rgb, idx)
        self._frame_idx += 1
        self.frames_processed += 1
        self.tracker.prune(
            hf_session,
            idx,
            memory_frames=self.memory_frames,
            max_conditioning_frames=self.max_conditioning_frames,
        )
        for obj_id in result.object_ids.tolist():
            self._last_seen[obj_id] = idx
        self._evict_lost(hf_session, idx)
        if self._frame_idx >= self.rebase_at:
            self._rebase(hf_session)
        self._snapshot(hf_session)

        # (N,) objects above the threshold with a non-empty mask; ids are allocated only for them
        keep = (result.scores >= threshold) & result.masks.reshape(len(result.masks), -1).any(
            axis=1
        )
        if not keep.any():
            return empty_detections()
        return to_detections(
            masks=result.masks[keep],
            confidence=result.scores[keep],
            tracker_score=result.tracker_scores[keep],
            tracker_ids=np.array(
                [self._global_id(int(i)) for i in result.object_ids[keep]], dtype=np.int64
            ),
            class_names_per_object=[p for p, k in zip(result.prompts, keep, strict=True) if k],
            class_names=self.class_names,
        )

    def _global_id(self, local_id: int) -> int:
        global_id = self._global_ids.get(local_id)
        if global_id is None:
            self.highest_tracker_id += 1
            global_id = self._global_ids[local_id] = self.highest_tracker_id
        return global_id

    def _evict_lost(self, hf_session: Any, idx: int) -> None:
        """Remove objects unseen for ``lost_object_frames`` frames from the HF session.

        Without this the tracker runs every object ever seen on every frame, so per-frame time
        grows with the history of the scene instead of what is on screen.
        """
        if not self.lost_object_frames:
            return
        live = getattr(hf_session, "obj_ids", [])
        for obj_id in list(live):
            last = self._last_seen.setdefault(obj_id, idx)
            if idx - last >= self.lost_object_frames:
                self.tracker.remove_object(hf_session, obj_id)
                self._last_seen.pop(obj_id, None)
                self.objects_evicted += 1
        for obj_id in [o for o in self._last_seen if o not in live]:
            self._last_seen.pop(obj_id, None)

    def _rebase(self, hf_session: Any) -> None:
        multiple = self.tracker.rebase_multiple
        keep = max(self.memory_frames + 1, min(REBASE_KEEP, self.rebase_at // 2))
        offset = (self._frame_idx - keep) // multiple * multiple
        if offset <= 0:
            return
        self.tracker.rebase(hf_session, offset)
        self._frame_idx -= offset
        self._last_seen = {obj: seen - offset for obj, seen in self._last_seen.items()}

    def _snapshot(self, hf_session: Any) -> None:
        """Measure what the session holds now, while no frame is changing it."""
        self._held = self.tracker.held(hf_session)

    def stats(self) -> SessionStats:
        """Statistics as of the last finished frame; never waits for a frame in flight."""
        frames_held, objects_live, bytes_held = (
            self._held if self._hf_session is not None else (0, 0, 0)
        )
        return SessionStats(
            frames_processed=self.frames_processed,
            frames_held=frames_held,
            objects_live=objects_live,
            objects_evicted=self.objects_evicted,
            reseeds=self.reseeds,
            highest_tracker_id=self.highest_tracker_id,
            bytes_held=bytes_held,
        )
