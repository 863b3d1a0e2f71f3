"""One video_identifier's life: its HF session, the per-frame rules, its id map and statistics.

A ``StreamSession`` outlives HF sessions: when a reseed replaces the HF session, the statistics
stay and the identifier's ``TrackerIds`` keep counting, so tracker ids continue above every id the
identifier ever emitted. Every rule that runs per frame lives here, each in one method: the reseed
rule and any class change before the model runs (``_reseed_reason``, ``_change_concepts``), then
pruning, the track rules (``tracker.track_rules``: confirmation, hotstart, unmatched, lost, the
object budget) and index rebasing once it has (``_after_step``); only confirmed tracks get a
tracker_id (``_detections``). The session alone changes its state; the registry only opens
sessions, hands them frames and closes them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import supervision as sv

from tracker.detections import empty_detections, to_detections
from tracker.errors import InferenceError
from tracker.frame_matching import FrameMatching
from tracker.reseed import ReseedReason
from tracker.session_rules import SessionRules
from tracker.track_rules import EVICTION_REASONS, TrackBook, TrackLimits, unbacked_duplicates
from tracker.tracker_ids import TrackerIds
from tracker.visual_prompts import VisualPrompt
from tracker.visual_tracks import VisualTracks

if TYPE_CHECKING:
    from tracker.model import FrameResult

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SessionStats:
    """What one video_identifier's session holds and has done.

    Attributes:
        frames_processed: frames run through the model since the identifier's session opened.
        frames_held: preprocessed frames the HF session still holds (1 when pruning works).
        objects_live: objects the HF session tracks now.
        objects_evicted: tracks the rules ended, every reason together (``sum(evictions)``).
        reseeds: live HF sessions replaced by a ``ReseedReason`` (epoch change, frame_id
            backwards, reset by the caller); a class change is applied live and is not one,
            nor is a session dropped after an inference error or closed.
        highest_tracker_id: the largest id the identifier ever emitted (0 when none yet).
        bytes_held: approximate bytes of tensors the HF session holds.
        next_frame_index: the index the next frame gets inside the HF session; rebasing keeps it
            below ``rebase_at``.
        evictions: tracks ended by each rule of ``tracker.track_rules``: "lost" (no mask for
            ``lost_object_frames``), "unmatched" (hotstart or ``max_unmatched_frames``),
            "duplicate" (hotstart), "budget" (``max_objects``); always all four keys.
        tentative_tracks: live tracks not yet confirmed by the detector, so without a tracker_id.
        visual_objects: box/point-prompted objects live or waiting for their frame (counted in
            ``objects_live`` too); those the lost rule ended count in ``evictions["lost"]``.
    """

    frames_processed: int
    frames_held: int
    objects_live: int
    objects_evicted: int
    reseeds: int
    highest_tracker_id: int
    bytes_held: int
    next_frame_index: int
    evictions: dict[str, int] = field(default_factory=lambda: dict.fromkeys(EVICTION_REASONS, 0))
    tentative_tracks: int = 0
    visual_objects: int = 0


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
        self._evictions = dict.fromkeys(EVICTION_REASONS, 0)
        self._reseeds = 0
        self._hf_session: Any = None
        self._frame_idx = 0
        self._global_ids: dict[int, int] = {}
        self._held: tuple[int, int, int] = (0, 0, 0)
        self._tracks = TrackBook()
        self._tentative = 0
        self._visual = VisualTracks(tracker, video_identifier, tracker_ids.allocate)

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
            detections, features = (
                self._step(hf_session, rgb, threshold)
                if hf_session is not None
                else (empty_detections(), None)
            )
            if hf_session is None:
                self._frames_processed += 1
            visual = self._visual.step(
                rgb, frame_id=frame_id, features=features, rules=self.rules, class_names=class_names
            )
        except Exception as error:
            self._end_hf_session()
            self._visual.reseed()
            raise InferenceError(
                f"SAM3 failed on frame {frame_id} of {self.video_identifier} "
                f"({type(error).__name__}: {error}); its session was reset"
            ) from error
        if not len(visual):
            return detections
        if not len(detections):
            return visual
        return sv.Detections.merge([detections, visual])

    @property
    def has_visual_work(self) -> bool:
        """True when a frame must run even without class names (prompted objects live or due)."""
        return self._visual.has_work

    def note_frame(self, rgb: np.ndarray, frame_id: int) -> None:
        """A frame that did not run (no class names, nothing prompted): remember its size and id."""
        self._visual.note_frame(rgb, frame_id)

    def add_prompt(self, prompt: VisualPrompt) -> list[int]:
        """Accept a box/point prompt for the frame it is due on (``VisualTracks.add``).

        The budget left to prompted objects is ``max_objects``: concept tracks make room for them.

        Raises:
            ValueError: naming the field (see ``VisualTracks.add``).
        """
        return self._visual.add(prompt, self.rules)

    def remove_object(self, tracker_id: int) -> None:
        """End the object with ``tracker_id`` now, prompted or found by a concept; id retired.

        A concept track's object may be found again by the detector, under a new id.

        Raises:
            KeyError: no live object has that id.
        """
        if self._visual.remove(tracker_id):
            return
        local = next((o for o, g in self._global_ids.items() if g == tracker_id), None)
        if local is None or self._hf_session is None:
            raise KeyError(tracker_id)
        self.tracker.remove_object(self._hf_session, local)
        self._tracks.forget(local)
        del self._global_ids[local]

    def reset(self) -> None:
        """Start a new timeline now, counted as a ``reset by caller`` reseed; ids continue."""
        self._reseed(ReseedReason.RESET_BY_CALLER)

    def close(self) -> None:
        """Drop the HF sessions now (not a reseed) and end every object; statistics and ids stay."""
        self._end_hf_session()
        self._visual.close()

    def stats(self) -> SessionStats:
        """Statistics as of the last finished frame; never waits for a frame in flight."""
        frames_held, objects_live, bytes_held = (
            self._held if self._hf_session is not None else (0, 0, 0)
        )
        visual_frames, _, visual_bytes = self._visual.held()
        visual_objects = self._visual.count
        evictions = dict(self._evictions)
        evictions["lost"] += self._visual.lost
        return SessionStats(
            frames_processed=self._frames_processed,
            frames_held=max(frames_held, visual_frames),
            objects_live=objects_live + visual_objects,
            objects_evicted=sum(evictions.values()),
            reseeds=self._reseeds,
            highest_tracker_id=self._tracker_ids.highest,
            bytes_held=bytes_held + visual_bytes,
            next_frame_index=max(self._frame_idx, self._visual.next_frame_index),
            evictions=evictions,
            tentative_tracks=self._tentative if self._hf_session is not None else 0,
            visual_objects=visual_objects,
        )

    # ---- before the model: the reseed rule, class changes -------------------------------------

    def _begin_frame(self, *, epoch: int, frame_id: int, class_names: tuple[str, ...]) -> Any:
        """Apply the reseed rule, then any class change; returns this frame's concept HF session
        (None without class names: prompted objects alone run)."""
        reason = self._reseed_reason(epoch=epoch, frame_id=frame_id)
        if reason is not None:
            self._reseed(reason)
        hf_session = self._hf_session
        if not class_names:
            if hf_session is not None:
                self._end_hf_session()  # every concept track ends with the last concept
            hf_session = None
        elif hf_session is None:
            hf_session = self._hf_session = self.tracker.new_session(class_names)
            self._frame_idx = 0
        elif class_names != self._class_names:
            self._change_concepts(hf_session, class_names)
        self._class_names = class_names
        self._epoch = epoch
        self._last_frame_id = frame_id
        return hf_session

    def _reseed_reason(self, *, epoch: int, frame_id: int) -> ReseedReason | None:
        """Which ``ReseedReason`` starts a new timeline on this frame, or None.

        A class change is not one: ``_change_concepts`` applies it to the running session. Nor
        is a first frame (``NEW_SESSION``): it has nothing to reseed.
        """
        if self._epoch is not None and epoch != self._epoch:
            return ReseedReason.EPOCH_CHANGED
        if self._last_frame_id is not None and frame_id < self._last_frame_id:
            return ReseedReason.FRAME_ID_WENT_BACKWARDS
        return None

    def _change_concepts(self, hf_session: Any, class_names: tuple[str, ...]) -> None:
        """Apply a class change to the running HF session, before this frame runs.

        A removed concept's prompt goes and its tracks end: their session ids are retired (the
        port never reuses one) and their tracker ids with them. An added concept is detected from
        this frame on. Every other track keeps its memory and its tracker id; a reorder alone
        changes only ``class_id``, which indexes the new list when detections are built.
        """
        removed = tuple(name for name in self._class_names if name not in class_names)
        added = tuple(name for name in class_names if name not in self._class_names)
        if removed:
            for obj_id in self.tracker.remove_prompts(hf_session, removed):
                self._global_ids.pop(obj_id, None)
                self._tracks.forget(obj_id)
        if added:
            self.tracker.add_prompts(hf_session, added)
        logger.info(
            "classes of %s changed on the running session: added %s, removed %s",
            self.video_identifier,
            list(added),
            list(removed),
        )

    def _reseed(self, reason: ReseedReason) -> None:
        """A new timeline: the concept session ends, prompted objects are placed again
        (``VisualTracks.reseed``); counted when anything was live."""
        if self._hf_session is not None or self._visual.has_work:
            self._reseeds += 1
            logger.info("reseeding %s: %s", self.video_identifier, reason)
        self._end_hf_session()
        self._visual.reseed()

    def _end_hf_session(self) -> None:
        """The one place the concept HF session ends.

        The id map and the track rules' counters go with it (a new HF session numbers its
        objects afresh); the statistics and the identifier's ``TrackerIds`` stay.
        """
        self._hf_session = None
        self._global_ids.clear()
        self._tracks.clear()

    # ---- the model step and the rules after it ------------------------------------------------

    def _step(
        self, hf_session: Any, rgb: np.ndarray, threshold: float
    ) -> tuple[sv.Detections, dict[str, Any] | None]:
        """The concept step; returns its detections and the frame's tracker features, which
        the prompted objects' step reads instead of running the backbone again."""
        idx = self._frame_idx
        result = self.tracker.step(hf_session, rgb, idx)
        features = _cached_features(hf_session, idx) if self._visual.has_work else None
        self._frame_idx += 1
        self._frames_processed += 1
        self._after_step(hf_session, result, idx)
        return self._detections(result, threshold), features

    def _after_step(self, hf_session: Any, result: FrameResult, idx: int) -> None:
        """The rules that keep a session bounded, applied after every frame."""
        self.tracker.prune(
            hf_session,
            idx,
            memory_frames=self.rules.memory_frames,
            max_conditioning_frames=self.rules.max_conditioning_frames,
        )
        self._apply_track_rules(hf_session, result)
        if self._frame_idx >= self.rules.rebase_at:
            self._rebase(hf_session)
        # Measured now, while no frame is changing the session: stats never wait for one.
        self._held = self.tracker.held(hf_session)
        self._tentative = self._tracks.tentative

    def _apply_track_rules(self, hf_session: Any, result: FrameResult) -> None:
        """End the tracks ``tracker.track_rules`` gives up on, through the tracker, and count why.

        Without this the tracker runs every object it ever saw on every frame, so per-frame time
        grows with the history of the scene instead of what is on screen. An ended track's
        session id is never reused by the port, so its tracker_id is retired with it.
        """
        matching = result.matching or FrameMatching.all_matched(result.object_ids.tolist())
        # Prompted objects count towards the budget first: a person's click is never evicted
        # for a detection.
        scores = dict(zip(result.object_ids.tolist(), result.scores.tolist(), strict=True))
        limits = TrackLimits.resolve(self.rules, getattr(self.tracker, "config", None))
        limits = replace(limits, max_objects=max(0, limits.max_objects - self._visual.count))
        live = list(getattr(hf_session, "obj_ids", []))
        for obj_id, reason in self._tracks.update(matching, live, scores, limits):
            self.tracker.remove_object(hf_session, obj_id)
            self._evictions[reason] += 1
            logger.debug("%s: ended track %d (%s)", self.video_identifier, obj_id, reason)
        # Retire the tracker ids of ended tracks: the map holds live tracks only.
        for obj_id in [o for o in self._global_ids if not self._tracks.is_confirmed(o)]:
            del self._global_ids[obj_id]

    def _rebase(self, hf_session: Any) -> None:
        offset = self.rules.rebase_offset(self._frame_idx, self.tracker.rebase_multiple)
        if offset <= 0:
            return
        self.tracker.rebase(hf_session, offset)
        self._frame_idx -= offset

    # ---- model output -> detections -----------------------------------------------------------

    def _detections(self, result: FrameResult, threshold: float) -> sv.Detections:
        # (N,) confirmed live tracks above the threshold with a non-empty mask; ids are allocated
        # only for them, so a tentative track never consumes one
        confirmed = np.array(
            [self._tracks.is_confirmed(int(i)) for i in result.object_ids], dtype=bool
        )
        keep = confirmed & (result.scores >= threshold) & result.masks.any(axis=(1, 2))
        if result.matching is not None:
            keep &= ~unbacked_duplicates(result.object_ids, result.masks, keep, result.matching)
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


def _cached_features(hf_session: Any, frame_idx: int) -> dict[str, Any] | None:
    """The tracker features the concept step cached for ``frame_idx``, if it kept them."""
    cache = getattr(hf_session, "cache", None)
    getter = getattr(cache, "get_vision_features", None)
    return getter(frame_idx) if getter is not None else None
