"""One video_identifier's life: its HF session, the per-frame rules, its id map and statistics.

A ``StreamSession`` outlives HF sessions: when a reseed replaces the HF session, the statistics
stay and the identifier's ``TrackerIds`` keep counting, so tracker ids continue above every id the
identifier ever emitted. Every rule that runs per frame lives here, each in one method: the reseed
rule before the model runs (``_reseed_reason``), then pruning, eviction of lost objects and index
rebasing once it has (``_after_step``). The session alone changes its state; the registry only
opens sessions, hands them frames and closes them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import supervision as sv

from tracker.detections import empty_detections, to_detections
from tracker.errors import InferenceError
from tracker.reseed import ReseedReason
from tracker.session_rules import SessionRules
from tracker.tracker_ids import TrackerIds

if TYPE_CHECKING:
    from tracker.model import FrameResult

logger = logging.getLogger(__name__)

# After a rebase the newest frame sits at about this index (keeps every window intact).
REBASE_KEEP = 1_000


@dataclass(frozen=True)
class SessionStats:
    """What one video_identifier's session holds and has done.

    Attributes:
        frames_processed: frames run through the model since the identifier's session opened.
        frames_held: preprocessed frames the HF session still holds (1 when pruning works).
        objects_live: objects the HF session tracks now.
        objects_evicted: objects removed after ``lost_object_frames`` unseen frames.
        reseeds: live HF sessions replaced by a ``ReseedReason`` (epoch change, frame_id
            backwards, class names, reset by the caller); a session dropped after an inference
            error or closed is not counted.
        highest_tracker_id: the largest id the identifier ever emitted (0 when none yet).
        bytes_held: approximate bytes of tensors the HF session holds.
        next_frame_index: the index the next frame gets inside the HF session; rebasing keeps it
            below ``rebase_at``.
    """

    frames_processed: int
    frames_held: int
    objects_live: int
    objects_evicted: int
    reseeds: int
    highest_tracker_id: int
    bytes_held: int
    next_frame_index: int


class StreamSession:
    """Streaming state of one video_identifier on top of a shared tracker backend.

    Args:
        tracker: the shared backend (``Sam3VideoTracker`` or a stand-in with its interface).
        video_identifier: the stream this session serves (for logs and errors).
        tracker_ids: the identifier's id allocator; it outlives this session.
        rules: the knobs of the per-frame rules, shared with the registry.
    """

    def __init__(
        self,
        tracker: Any,
        video_identifier: str,
        tracker_ids: TrackerIds,
        rules: SessionRules,
    ) -> None:
        self.tracker = tracker
        self.video_identifier = video_identifier
        self.rules = rules
        self._tracker_ids = tracker_ids
        self._class_names: tuple[str, ...] = ()
        self._epoch: int | None = None
        self._last_frame_id: int | None = None
        self._frames_processed = 0
        self._objects_evicted = 0
        self._reseeds = 0
        self._hf_session: Any = None
        self._frame_idx = 0
        self._global_ids: dict[int, int] = {}
        self._held: tuple[int, int, int] = (0, 0, 0)
        self._last_seen: dict[int, int] = {}

    def process(
        self,
        rgb: np.ndarray,
        *,
        frame_id: int,
        epoch: int,
        class_names: tuple[str, ...],
        threshold: float,
    ) -> sv.Detections:
        """Run one RGB frame (H, W, 3 uint8): reseed if the rule says so, step, map ids, filter.

        The HF session is held in a local from the reseed decision to the end of the frame: a
        concurrent ``close()`` (the registry closing an idle, least recently used or deleted
        stream) drops it for the *next* frame and never breaks the one in flight.

        Raises:
            InferenceError: the model failed on this frame; the HF session was dropped and the
                next frame starts a fresh one, ids above the old ones.
        """
        hf_session = self._begin_frame(epoch=epoch, frame_id=frame_id, class_names=class_names)
        try:
            return self._step(hf_session, rgb, threshold)
        except Exception as error:
            self._end_hf_session()
            raise InferenceError(
                f"SAM3 failed on frame {frame_id} of {self.video_identifier} "
                f"({type(error).__name__}: {error}); its session was reset"
            ) from error

    def reset(self) -> None:
        """Drop the HF session now, counted as a ``reset by caller`` reseed; ids continue."""
        self._end_hf_session(ReseedReason.RESET_BY_CALLER)

    def close(self) -> None:
        """Drop the HF session now (not a reseed); statistics and ids stay."""
        self._end_hf_session()

    def stats(self) -> SessionStats:
        """Statistics as of the last finished frame; never waits for a frame in flight."""
        frames_held, objects_live, bytes_held = (
            self._held if self._hf_session is not None else (0, 0, 0)
        )
        return SessionStats(
            frames_processed=self._frames_processed,
            frames_held=frames_held,
            objects_live=objects_live,
            objects_evicted=self._objects_evicted,
            reseeds=self._reseeds,
            highest_tracker_id=self._tracker_ids.highest,
            bytes_held=bytes_held,
            next_frame_index=self._frame_idx,
        )

    # ---- before the model: the reseed rule ----------------------------------------------------

    def _begin_frame(self, *, epoch: int, frame_id: int, class_names: tuple[str, ...]) -> Any:
        """Apply the reseed rule, record where the stream is; returns this frame's HF session."""
        hf_session = self._hf_session
        reason = self._reseed_reason(
            hf_session, epoch=epoch, frame_id=frame_id, class_names=class_names
        )
        if reason is not None:
            self._end_hf_session(reason)
            self._class_names = class_names
            hf_session = self._hf_session = self.tracker.new_session(class_names)
            self._frame_idx = 0
        self._epoch = epoch
        self._last_frame_id = frame_id
        return hf_session

    def _reseed_reason(
        self, hf_session: Any, *, epoch: int, frame_id: int, class_names: tuple[str, ...]
    ) -> ReseedReason | None:
        """Which ``ReseedReason`` applies to this frame, or None to keep the HF session."""
        if hf_session is None:
            return ReseedReason.NEW_SESSION
        if self._epoch is not None and epoch != self._epoch:
            return ReseedReason.EPOCH_CHANGED
        if self._last_frame_id is not None and frame_id < self._last_frame_id:
            return ReseedReason.FRAME_ID_WENT_BACKWARDS
        if class_names != self._class_names:
            return ReseedReason.CLASS_NAMES_CHANGED
        return None

    def _end_hf_session(self, reason: ReseedReason | None = None) -> None:
        """The one place an HF session ends; with a ``reason``, a live one counts as a reseed.

        The id map and the eviction clock go with it (a new HF session numbers its objects
        afresh); the statistics and the identifier's ``TrackerIds`` stay.
        """
        if reason is not None and self._hf_session is not None:
            self._reseeds += 1
            logger.info("reseeding %s: %s", self.video_identifier, reason)
        self._hf_session = None
        self._global_ids.clear()
        self._last_seen.clear()

    # ---- the model step and the rules after it ------------------------------------------------

    def _step(self, hf_session: Any, rgb: np.ndarray, threshold: float) -> sv.Detections:
        idx = self._frame_idx
        result = self.tracker.step(hf_session, rgb, idx)
        self._frame_idx += 1
        self._frames_processed += 1
        self._after_step(hf_session, result, idx)
        return self._detections(result, threshold)

    def _after_step(self, hf_session: Any, result: FrameResult, idx: int) -> None:
        """The rules that keep a session bounded, applied after every frame."""
        self.tracker.prune(
            hf_session,
            idx,
            memory_frames=self.rules.memory_frames,
            max_conditioning_frames=self.rules.max_conditioning_frames,
        )
        for obj_id in result.object_ids.tolist():
            self._last_seen[obj_id] = idx
        self._evict_lost(hf_session, idx)
        if self._frame_idx >= self.rules.rebase_at:
            self._rebase(hf_session)
        # Measured now, while no frame is changing the session: stats never wait for one.
        self._held = self.tracker.held(hf_session)

    def _evict_lost(self, hf_session: Any, idx: int) -> None:
        """Remove objects unseen for ``lost_object_frames`` frames from the HF session.

        Without this the tracker runs every object ever seen on every frame, so per-frame time
        grows with the history of the scene instead of what is on screen.
        """
        if not self.rules.lost_object_frames:
            return
        live = getattr(hf_session, "obj_ids", [])
        for obj_id in list(live):
            last = self._last_seen.setdefault(obj_id, idx)
            if idx - last >= self.rules.lost_object_frames:
                self.tracker.remove_object(hf_session, obj_id)
                self._last_seen.pop(obj_id, None)
                self._objects_evicted += 1
        for obj_id in [o for o in self._last_seen if o not in live]:
            self._last_seen.pop(obj_id, None)

    def _rebase(self, hf_session: Any) -> None:
        multiple = self.tracker.rebase_multiple
        keep = max(self.rules.memory_frames + 1, min(REBASE_KEEP, self.rules.rebase_at // 2))
        offset = (self._frame_idx - keep) // multiple * multiple
        if offset <= 0:
            return
        self.tracker.rebase(hf_session, offset)
        self._frame_idx -= offset
        self._last_seen = {obj: seen - offset for obj, seen in self._last_seen.items()}

    # ---- model output -> detections -----------------------------------------------------------

    def _detections(self, result: FrameResult, threshold: float) -> sv.Detections:
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
            class_names=self._class_names,
        )

    def _global_id(self, local_id: int) -> int:
        global_id = self._global_ids.get(local_id)
        if global_id is None:
            global_id = self._global_ids[local_id] = self._tracker_ids.allocate()
        return global_id
