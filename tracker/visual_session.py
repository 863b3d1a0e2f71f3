"""The HF tracker-video streaming session, taught what visual tracking on a stream needs.

``Sam3TrackerVideoInferenceSession`` is the state of box/point-prompted tracking. Three gaps:

- Frame count: like ``BoundedInferenceSession`` (``tracker.hf_session``), the count must read
  ``max frame index + 1`` once old frames are pruned, not the number still held.
- Prompts: every ``add_inputs_to_inference_session`` call *sets* ``obj_with_new_inputs`` to its
  own ids, so two prompts before one forward lose the first, and the next forward fails
  ("maskmem_features in conditioning outputs cannot be empty"). ``add_inputs`` keeps the union of
  the ids prompted since the last forward.
- Objects cannot be removed. ``remove_object`` drops one and renumbers the others' slots.
"""

from __future__ import annotations

from typing import Any

from transformers.models.sam3_tracker_video.modeling_sam3_tracker_video import (
    Sam3TrackerVideoInferenceSession,
)

from tracker.hf_session import FrameCountSurvivesPruning


class BoundedVisualSession(FrameCountSurvivesPruning, Sam3TrackerVideoInferenceSession):
    """A ``Sam3TrackerVideoInferenceSession`` that survives pruning, takes prompts in any
    number of calls between frames, and forgets objects on request."""

    def add_inputs(self, processor: Any, frame_idx: int, obj_ids: list[int], **inputs: Any) -> None:
        """``processor.add_inputs_to_inference_session`` that keeps earlier calls' objects new.

        Args:
            processor: a ``Sam3TrackerVideoProcessor``.
            frame_idx: the frame the prompt is placed on: the next one to be tracked. On a
                frame already tracked the port would store a correction that pruning forgets;
                on a later one it would make every frame up to it a conditioning frame.
            obj_ids: one id per box (or the one id of the points).
            **inputs: ``input_boxes`` / ``input_points`` / ``input_labels`` / ``original_size``.

        Raises:
            ValueError: ``frame_idx`` was already tracked.
        """
        if frame_idx < self.frame_count:
            raise ValueError(
                f"frame_idx: frame {frame_idx} was already tracked (next is {self.frame_count}); "
                f"a prompt there would be a correction the memory window forgets"
            )
        pending = list(self.obj_with_new_inputs)
        processor.add_inputs_to_inference_session(
            self, frame_idx=frame_idx, obj_ids=obj_ids, **inputs
        )
        # A fresh list: the forward removes ids from it in place.
        self.obj_with_new_inputs = [*pending, *(i for i in obj_ids if i not in pending)]

    def remove_object(self, obj_id: int) -> None:
        """Forget ``obj_id`` entirely; the other objects keep their memory and ids.

        The port indexes per-object state by slot (0..N-1 in order of arrival); the slots after
        the removed one move down by one.

        Raises:
            KeyError: ``obj_id`` is not in the session.
        """
        if obj_id not in self._obj_id_to_idx:
            raise KeyError(obj_id)
        kept = [i for i in self.obj_ids if i != obj_id]
        new_slot = {self._obj_id_to_idx[i]: slot for slot, i in enumerate(kept)}
        self._obj_id_to_idx.clear()
        self._obj_idx_to_id.clear()
        for slot, i in enumerate(kept):
            self._obj_id_to_idx[i] = slot
            self._obj_idx_to_id[slot] = i
        self.obj_ids = kept
        for per_slot in (
            self.point_inputs_per_obj,
            self.mask_inputs_per_obj,
            self.output_dict_per_obj,
            self.frames_tracked_per_obj,
        ):
            items = [(new_slot[old], value) for old, value in per_slot.items() if old in new_slot]
            per_slot.clear()
            per_slot.update(items)
        self.obj_with_new_inputs = [i for i in self.obj_with_new_inputs if i != obj_id]
