"""``VisualPrompter``: a visual-tracking workflow step's prompts, put to each stream's session.

The pipeline calls ``before_frame`` just before a frame goes through the registry and
``after_frame`` with the detections it returned (it is a ``pipeline.loop.contracts.FramePrompter``),
on the inference thread, so nothing here needs a lock. State is kept per ``video_identifier``.

On a frame the step's ``PromptSchedule`` says is due:

- the stream's first prompt makes one object per box and one for the points;
- a later one (``every_n_frames`` / ``every_frame``) matches the boxes to the objects it made
  (``pipeline.compat.box_matching``): a matched box refines its object (same tracker id), an
  unmatched box makes a new object, an object no box matched ends (``registry.remove_object``).
  The point object is refined by its id. An object the tracker ended meanwhile (the lost rule, a
  reseed that dropped it) is made again under a new id.

An object is matched on the box it was last seen in (from ``after_frame``), or its prompt box
until it is seen. A reseed (reconnect, frame ids going backwards) is the registry's business: it
prompts each object again from its last box under the same id (``tracker.visual_tracks``), and
the schedule's count goes on, so ``first_frame`` does not prompt a second time.

A box or point that does not fit the frame, or a prompt the registry refuses (``max_objects``),
is skipped and the others go on; ``before_frame`` then raises one ``ValueError`` naming the step
and the field, which the pipeline logs once per stream.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import supervision as sv

from pipeline.compat.box_matching import match_boxes
from pipeline.compat.visual_workflow import BoxPrompt, VisualStep
from tracker.visual_prompts import Box, VisualPrompt

if TYPE_CHECKING:
    from pipeline.loop.contracts import FrameProcessor
    from pipeline.video_frame import VideoFrame


@dataclass(frozen=True)
class PromptedObjects:
    """The objects a step has made in one stream, as the prompter knows them.

    Attributes:
        boxes: tracker id -> the box the object was last seen in (or prompted with).
        point_object: the tracker id of the points' object, None when there is none.
        prompts: how many frames of the stream were prompted.
    """

    boxes: dict[int, Box]
    point_object: int | None
    prompts: int

    @property
    def tracker_ids(self) -> set[int]:
        ids = set(self.boxes)
        if self.point_object is not None:
            ids.add(self.point_object)
        return ids


@dataclass
class _Stream:
    frames: int = 0  # frames seen, the schedule's index of the next one
    prompts: int = 0
    boxes: dict[int, Box] = field(default_factory=dict)
    point_object: int | None = None


class VisualPrompter:
    """Puts one ``VisualStep``'s prompts to the registry on the frames its schedule picks.

    Examples:
        >>> from pipeline.compat.prompt_schedule import PromptSchedule
        >>> step = VisualStep(
        ...     name="tracker", boxes=(BoxPrompt(0, (10, 10, 50, 50)),), points=(), labels=(),
        ...     schedule=PromptSchedule("first_frame"), threshold=0.0, model="facebook/sam3")
        >>> VisualPrompter(step).objects("cam-1").tracker_ids
        set()
    """

    def __init__(self, step: VisualStep) -> None:
        self.step = step
        self._streams: dict[str, _Stream] = {}

    def objects(self, video_identifier: str) -> PromptedObjects:
        """What the step has made in ``video_identifier`` so far (a copy)."""
        stream = self._streams.get(video_identifier, _Stream())
        return PromptedObjects(dict(stream.boxes), stream.point_object, stream.prompts)

    def before_frame(self, frame: VideoFrame, registry: FrameProcessor) -> None:
        """Prompt ``frame``'s stream when the schedule says so.

        Raises:
            ValueError: naming the step and field of a prompt that was skipped.
        """
        stream = self._streams.setdefault(frame.video_identifier, _Stream())
        index, stream.frames = stream.frames, stream.frames + 1
        if not self.step.has_prompts or not self.step.schedule.is_due(index):
            return
        stream.prompts += 1
        errors = _StreamPrompt(self.step, stream, frame, registry).run()
        if errors:
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            raise ValueError(f"step {self.step.name!r}: {errors[0]}{more}")

    def after_frame(self, frame: VideoFrame, detections: sv.Detections) -> None:
        """Remember where the step's objects were seen: the boxes the next match uses."""
        stream = self._streams.get(frame.video_identifier)
        if stream is None or detections.tracker_id is None:
            return
        for xyxy, tracker_id in zip(detections.xyxy, detections.tracker_id, strict=True):
            if int(tracker_id) in stream.boxes:
                x0, y0, x1, y1 = (float(v) for v in xyxy)  # (4,) pixels
                stream.boxes[int(tracker_id)] = (x0, y0, x1, y1)


class _StreamPrompt:
    """One prompted frame of one stream; ``run`` returns the messages of what it skipped."""

    def __init__(
        self, step: VisualStep, stream: _Stream, frame: VideoFrame, registry: FrameProcessor
    ) -> None:
        self.step, self.stream, self.registry = step, stream, registry
        self.identifier, self.frame_id = frame.video_identifier, frame.frame_id
        self.height, self.width = frame.image.shape[:2]
        self.errors: list[str] = []

    def run(self) -> list[str]:
        boxes = [box for box in self.step.boxes if self._fits(box)]
        match = match_boxes([box.xyxy for box in boxes], self.stream.boxes)
        for tracker_id in match.ended:  # first: their room in the budget goes to new boxes
            del self.stream.boxes[tracker_id]
            with contextlib.suppress(KeyError):  # the tracker ended it already
                self.registry.remove_object(self.identifier, tracker_id)
        new = list(match.new)
        for index, tracker_id in match.refined.items():
            if not self._box_prompt(boxes[index], tracker_id):
                new.append(index)
        for index in sorted(new):
            self._box_prompt(boxes[index], None)
        if self.step.points:
            self._point_prompt()
        return self.errors

    def _fits(self, box: BoxPrompt) -> bool:
        try:
            VisualPrompt(boxes=(box.xyxy,)).check_frame(self.height, self.width)
        except ValueError as error:
            self.errors.append(f"boxes[{box.index}]" + str(error).removeprefix("boxes[0]"))
            return False
        return True

    def _box_prompt(self, box: BoxPrompt, tracker_id: int | None) -> bool:
        """Refine ``tracker_id`` (or make a new object) from ``box``; False when it is gone."""
        prompt = VisualPrompt(
            boxes=(box.xyxy,),
            tracker_id=tracker_id,
            frame_id=self.frame_id,
            class_name=box.class_name,
            confidence=box.confidence,
        )
        try:
            ids = self._add(prompt, f"boxes[{box.index}]")
        except _Gone as gone:
            self.stream.boxes.pop(gone.tracker_id, None)
            return False
        if ids:
            self.stream.boxes[ids[0]] = box.xyxy
        return True

    def _point_prompt(self) -> None:
        prompt = VisualPrompt(
            points=self.step.points, labels=self.step.labels, frame_id=self.frame_id
        )
        try:
            prompt.check_frame(self.height, self.width)
        except ValueError as error:
            self.errors.append(str(error))
            return
        if self.stream.point_object is not None:
            refined = VisualPrompt(
                points=prompt.points,
                labels=prompt.labels,
                tracker_id=self.stream.point_object,
                frame_id=self.frame_id,
            )
            try:
                self._add(refined, "points")
                return
            except _Gone:
                self.stream.point_object = None
        ids = self._add(prompt, "points")
        self.stream.point_object = ids[0] if ids else None

    def _add(self, prompt: VisualPrompt, field: str) -> list[int]:
        """The registry's ids for ``prompt``; [] when it refused (the message kept).

        Raises:
            _Gone: ``prompt`` refines an object the tracker has ended meanwhile.
        """
        try:
            return self.registry.add_prompt(self.identifier, prompt)
        except ValueError as error:
            if prompt.tracker_id is not None and str(error).startswith("tracker_id"):
                raise _Gone(prompt.tracker_id) from None
            self.errors.append(f"{field}: {error}")
            return []


class _Gone(Exception):
    """A refinement's object is no longer tracked (lost rule, reseed, session closed)."""

    def __init__(self, tracker_id: int) -> None:
        super().__init__(tracker_id)
        self.tracker_id = tracker_id
