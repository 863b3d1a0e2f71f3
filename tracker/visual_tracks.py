"""One stream's box/point-prompted objects: their prompts, their HF session, their rules.

A ``StreamSession`` owns one ``VisualTracks`` beside its concept session. Both see the same
frames, each with its own frame index (a stream may run either alone); when both run, the visual
step reads the frame's features from the concept session's cache, so a frame crosses the
backbone once.

The rules, in one place:

- Ids: a prompt's new objects get their tracker ids from the identifier's ``TrackerIds`` when the
  prompt is accepted, so they are unique across concept and visual objects and never reused; the
  id is the object's id inside the HF visual session too (no map to keep).
- Placement: the port places a prompt well only on the next frame to be tracked (a correction on a
  tracked frame is forgotten by the pruning window), so prompts wait in a queue and are placed just
  before the frame they are due on: the first frame whose ``frame_id`` >= the prompt's.
- Budget: visual objects count towards ``max_objects``; a person's click is never evicted for a
  detection, so a prompt past the budget is refused and concept tracks make room.
- Lost: an object the tracker has not seen (score logit <= 0 or an empty mask) for
  ``lost_object_frames`` frames ends, counted as "lost".
- Reseed (RTSP reconnect, frame ids going backwards, reset by the caller): the camera still looks
  at the same scene, so each object is prompted again on the new session's first frame from the
  last box it was seen in and keeps its id; an object never seen yet has no box and ends (its id
  retired). ``close()`` (stream ended, idle, deleted) ends every object.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import supervision as sv

from tracker.detections import empty_detections
from tracker.session_rules import SessionRules
from tracker.track_rules import EvictionReason
from tracker.visual_prompts import Box, VisualPrompt

logger = logging.getLogger(__name__)


@dataclass
class _VisualObject:
    """What a live visual object needs between frames; nothing grows with its age."""

    class_name: str
    confidence: float
    box: Box | None = None  # xyxy where it was last seen
    unseen_run: int = 0  # consecutive frames the tracker did not see it


@dataclass(frozen=True)
class _Pending:
    """A prompt accepted but not yet placed, with the ids it was given."""

    prompt: VisualPrompt
    ids: tuple[int, ...]

    @property
    def refines(self) -> bool:
        return self.prompt.tracker_id is not None


class VisualTracks:
    """Box/point-prompted objects of one video_identifier over the shared tracker.

    Args:
        tracker: ``Sam3VideoTracker`` (or anything with its visual methods).
        video_identifier: for logs and errors.
        allocate: the identifier's id allocator (``TrackerIds.allocate``).
    """

    def __init__(self, tracker: Any, video_identifier: str, allocate: Callable[[], int]) -> None:
        self.tracker = tracker
        self.video_identifier = video_identifier
        self._allocate = allocate
        self._hf_session: Any = None
        self._frame_idx = 0
        self._objects: dict[int, _VisualObject] = {}  # placed and live, by tracker id
        self._pending: list[_Pending] = []
        self._frame_size: tuple[int, int] | None = None  # (height, width) of the last frame
        self._last_frame_id: int | None = None
        self._held: tuple[int, int, int] = (0, 0, 0)
        self.lost = 0  # objects ended by the lost rule

    # ---- what the session asks -----------------------------------------------------------------

    @property
    def count(self) -> int:
        """Objects live or waiting to be placed: what counts towards the budget."""
        return len(self._objects) + sum(len(p.ids) for p in self._pending if not p.refines)

    @property
    def has_work(self) -> bool:
        """True when a frame must run for these objects even without class names."""
        return bool(self._objects or self._pending)

    @property
    def next_frame_index(self) -> int:
        """The index the next frame gets inside the HF visual session."""
        return self._frame_idx

    def held(self) -> tuple[int, int, int]:
        """(frames held, live objects, approximate bytes) as of the last finished frame."""
        return self._held if self._hf_session is not None else (0, 0, 0)

    def tracker_ids(self) -> list[int]:
        """Ids of the objects live or waiting to be placed."""
        waiting = [i for p in self._pending if not p.refines for i in p.ids]
        return [*self._objects, *waiting]

    # ---- prompts and removal ------------------------------------------------------------------

    def add(self, prompt: VisualPrompt, rules: SessionRules) -> list[int]:
        """Accept ``prompt`` for the next frame it is due on; returns its tracker ids.

        Raises:
            ValueError: naming the field: the prompt does not fit the stream's frames,
                ``tracker_id`` is not a visual object here, ``frame_id`` is older than the
                session can place, or ``max_objects`` is full of visual objects.
        """
        if not hasattr(self.tracker, "visual_step"):
            raise ValueError("prompts: this model has no box/point-prompted tracker")
        if self._frame_size is not None:
            prompt.check_frame(*self._frame_size)
        if prompt.frame_id is not None and self._last_frame_id is not None:
            oldest = self._last_frame_id - rules.memory_frames
            if prompt.frame_id < oldest:
                raise ValueError(
                    f"frame_id: frame {prompt.frame_id} is older than {self.video_identifier} "
                    f"can place a prompt on (oldest: {max(oldest, 0)}, latest: "
                    f"{self._last_frame_id})"
                )
        if prompt.tracker_id is not None:
            if prompt.tracker_id not in self.tracker_ids():
                raise ValueError(
                    f"tracker_id: {prompt.tracker_id} is not a box/point-prompted object of "
                    f"{self.video_identifier}"
                )
            self._pending.append(_Pending(prompt, (prompt.tracker_id,)))
            return [prompt.tracker_id]
        if self.count + prompt.object_count > rules.max_objects:
            raise ValueError(
                f"max_objects: {self.video_identifier} already has {self.count} prompted "
                f"object(s) and its budget is {rules.max_objects}; remove one first"
            )
        ids = tuple(self._allocate() for _ in range(prompt.object_count))
        self._pending.append(_Pending(prompt, ids))
        return list(ids)

    def remove(self, tracker_id: int) -> bool:
        """End the object now (placed or waiting); False when it is not one of these."""
        if tracker_id in self._objects:
            del self._objects[tracker_id]
            if self._hf_session is not None and tracker_id in self._hf_session.obj_ids:
                self.tracker.remove_visual_object(self._hf_session, tracker_id)
            self._pending = [p for p in self._pending if tracker_id not in p.ids]
            return True
        found = False
        kept = []
        for pending in self._pending:
            if tracker_id not in pending.ids:
                kept.append(pending)
                continue
            found = True
            if not pending.refines and len(pending.ids) > 1:
                # One box of a multi-box prompt: keep the others.
                index = pending.ids.index(tracker_id)
                boxes = pending.prompt.boxes[:index] + pending.prompt.boxes[index + 1 :]
                others = pending.ids[:index] + pending.ids[index + 1 :]
                kept.append(_Pending(replace(pending.prompt, boxes=boxes), others))
        self._pending = kept
        return found

    # ---- the session's life ---------------------------------------------------------------------

    def reseed(self) -> None:
        """A new timeline: each object seen is prompted again from its last box, keeping its id."""
        again = []
        for tracker_id, obj in self._objects.items():
            if obj.box is None:
                logger.info(
                    "%s: prompted object %d ends on reseed (never seen, no box to re-prompt)",
                    self.video_identifier,
                    tracker_id,
                )
                continue
            prompt = VisualPrompt(
                boxes=(obj.box,), class_name=obj.class_name, confidence=obj.confidence
            )
            again.append(_Pending(prompt, (tracker_id,)))
        # Still-waiting prompts keep their place; frame ids of the old timeline mean nothing now.
        waiting = [replace_frame(p) for p in self._pending if not p.refines]
        self._pending = again + waiting
        self._objects.clear()
        self._hf_session = None
        self._frame_idx = 0
        self._last_frame_id = None

    def close(self) -> None:
        """End every object and the HF session; ids are retired."""
        self._objects.clear()
        self._pending.clear()
        self._hf_session = None
        self._frame_idx = 0
        self._last_frame_id = None

    def note_frame(self, rgb: np.ndarray, frame_id: int) -> tuple[int, int]:
        """Remember the frame's size and id: prompts are checked against them. (H, W)."""
        height, width = rgb.shape[:2]
        self._frame_size = (height, width)
        self._last_frame_id = frame_id
        return height, width

    # ---- one frame ------------------------------------------------------------------------------

    def step(
        self,
        rgb: np.ndarray,
        *,
        frame_id: int,
        features: dict[str, Any] | None,
        rules: SessionRules,
        class_names: tuple[str, ...],
    ) -> sv.Detections:
        """Place the prompts due on this frame, track every object through it, apply the rules.

        Args:
            rgb: (H, W, 3) uint8 RGB.
            features: this frame's tracker features when another pass already computed them.
        """
        height, width = self.note_frame(rgb, frame_id)
        if not self.has_work:
            self._hf_session = None  # the last object ended: free its memory
            return empty_detections()
        if self._hf_session is None:
            self._hf_session = self.tracker.new_visual_session()
            self._frame_idx = 0
        session, idx = self._hf_session, self._frame_idx
        self._place_due(session, idx, frame_id, height, width)
        result = self.tracker.visual_step(
            session,
            idx,
            rgb=None if features else rgb,
            features=features,
            height=height,
            width=width,
        )
        self._frame_idx += 1
        seen = self._apply_rules(session, result, rules)
        self.tracker.prune_visual(
            session,
            idx,
            memory_frames=rules.memory_frames,
            max_conditioning_frames=rules.max_conditioning_frames,
        )
        offset = rules.rebase_offset(self._frame_idx, self.tracker.rebase_multiple)
        if offset > 0:
            self.tracker.rebase_visual(session, offset)
            self._frame_idx -= offset
        self._held = self.tracker.visual_held(session)
        return self._detections(result, seen, class_names)

    def _place_due(self, session: Any, idx: int, frame_id: int, height: int, width: int) -> None:
        due = [p for p in self._pending if (p.prompt.frame_id or 0) <= frame_id]
        self._pending = [p for p in self._pending if (p.prompt.frame_id or 0) > frame_id]
        for pending in due:
            try:
                self.tracker.add_visual_prompt(
                    session,
                    # Ids are given: the session's own check of tracker_id is ours above.
                    replace(pending.prompt, tracker_id=None)
                    if pending.ids[0] not in session.obj_ids
                    else pending.prompt,
                    list(pending.ids),
                    idx,
                    height,
                    width,
                )
            except ValueError as error:
                logger.error(
                    "%s: prompt for tracker id(s) %s dropped on frame %d: %s",
                    self.video_identifier,
                    list(pending.ids),
                    frame_id,
                    error,
                )
                continue
            for tracker_id in pending.ids:
                if tracker_id not in self._objects:
                    self._objects[tracker_id] = _VisualObject(
                        pending.prompt.class_name, pending.prompt.confidence
                    )

    def _apply_rules(self, session: Any, result: Any, rules: SessionRules) -> np.ndarray:
        """Update each object's last box and unseen run; end the lost ones. Returns (N,) seen."""
        seen = (result.score_logits > 0) & result.masks.any(axis=(1, 2))
        boxes = sv.mask_to_xyxy(result.masks) if len(result.masks) else np.zeros((0, 4))
        limit = rules.lost_object_frames or 0
        for i, tracker_id in enumerate(result.object_ids.tolist()):
            obj = self._objects.get(tracker_id)
            if obj is None:
                continue
            if seen[i]:
                obj.unseen_run = 0
                obj.box = tuple(float(v) for v in boxes[i])  # type: ignore[assignment]
                continue
            obj.unseen_run += 1
            if limit and obj.unseen_run >= limit:
                del self._objects[tracker_id]
                self.tracker.remove_visual_object(session, tracker_id)
                self.lost += 1
                logger.debug(
                    "%s: ended prompted object %d (%s)",
                    self.video_identifier,
                    tracker_id,
                    EvictionReason.LOST,
                )
        return seen

    def _detections(
        self, result: Any, seen: np.ndarray, class_names: tuple[str, ...]
    ) -> sv.Detections:
        ids = result.object_ids.tolist()
        keep = np.array([seen[i] and ids[i] in self._objects for i in range(len(ids))], dtype=bool)
        if not keep.any():
            return empty_detections()
        index = {name: i for i, name in enumerate(class_names)}
        objects = [self._objects[i] for i, k in zip(ids, keep, strict=True) if k]
        masks = result.masks[keep]  # (K, H, W) bool
        return sv.Detections(
            xyxy=sv.mask_to_xyxy(masks).astype(np.float32),
            mask=masks,
            confidence=np.array([o.confidence for o in objects], dtype=np.float32),
            class_id=np.array([index.get(o.class_name, -1) for o in objects], dtype=int),
            tracker_id=result.object_ids[keep].astype(np.int64),
            data={
                "class_name": np.array([o.class_name for o in objects], dtype=object),
                "tracker_score": np.array(
                    [_sigmoid(float(v)) for v in result.score_logits[keep]], dtype=np.float32
                ),
            },
        )


def replace_frame(pending: _Pending) -> _Pending:
    """The pending prompt, due on the next frame of a new timeline."""
    return _Pending(replace(pending.prompt, frame_id=None), pending.ids)


def _sigmoid(logit: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(min(logit, 60.0), -60.0)))
