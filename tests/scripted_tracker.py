"""A scripted stand-in for ``Sam3VideoTracker``.

Random weights cannot make objects appear and vanish on cue, so tests of eviction and of id
continuity across controlled appearances use this stand-in. It implements the backend protocol the
registry uses (new_session / step / prune / rebase / remove_object / held / add_prompts /
remove_prompts) and nothing else: tests that can run on the real tiny model do. A label
``"car:1"`` is an object of the concept "car", visible only while "car" is registered.

It also scripts what the port's detector says about each track (``FrameResult.matching``): a
plain label is a track the detector matched (or, on its first frame, a new detection); ``"a?"``
is visible but matched by no detection (the tracker holds a mask the detector does not confirm);
``"b=a"`` is visible and matched to the same detection as ``a`` (a duplicate of the older ``a``).
Neither starts a track: a label that is not live yet needs a plain entry. A live object missing
from a frame's labels has an empty mask on that frame (occluded).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np

from tracker.frame_matching import FrameMatching
from tracker.model import FrameResult


@dataclass
class ScriptedSession:
    class_names: tuple[str, ...]
    obj_ids: list[int] = field(default_factory=list)
    next_obj_id: int = 0
    removed: list[int] = field(default_factory=list)
    frame_indices: list[int] = field(default_factory=list)
    concept_of: dict[int, str] = field(default_factory=dict)


class ScriptedTracker:
    """Objects named by ``script(frame_number)`` are visible; new names become new objects.

    ``script`` returns the labels visible on the n-th frame this tracker processes (counted across
    sessions). Each label maps to one session object id while that object lives in the session.
    """

    def __init__(
        self, script: Callable[[int], list[str]], scores: dict[str, float] | None = None
    ) -> None:
        self.script = script
        self.scores = scores or {}  # detection score per label (0.9 when not named)
        # The port's hotstart values, as a loaded Sam3VideoConfig has them.
        self.config = SimpleNamespace(
            recondition_every_nth_frame=16,
            hotstart_delay=15,
            hotstart_unmatch_thresh=8,
            hotstart_dup_thresh=8,
        )
        self.rebase_multiple = 16
        self.frames = 0
        self.sessions: list[ScriptedSession] = []
        self.received: list[np.ndarray] = []
        self._labels: dict[int, dict[str, int]] = {}

    def new_session(self, class_names: tuple[str, ...]) -> ScriptedSession:
        session = ScriptedSession(class_names)
        self.sessions.append(session)
        self._labels[id(session)] = {}
        return session

    def step(self, session: ScriptedSession, rgb: np.ndarray, frame_idx: int) -> FrameResult:
        self.received.append(rgb)
        session.frame_indices.append(frame_idx)
        labels = self._labels[id(session)]
        visible = self.script(self.frames)
        self.frames += 1
        ids = []
        new: set[int] = set()
        unmatched: set[int] = set()
        duplicates: list[tuple[str, int]] = []
        for entry in visible:
            label, detector_missed, duplicate_of = _parse(entry)
            concept = self._concept(session, label)
            if concept is None:
                continue
            if label not in labels:
                if detector_missed or duplicate_of is not None:
                    continue  # no detection of its own: nothing to start a track from
                session.concept_of[session.next_obj_id] = concept
                labels[label] = session.next_obj_id
                session.obj_ids.append(session.next_obj_id)
                new.add(session.next_obj_id)
                session.next_obj_id += 1
            obj_id = labels[label]
            ids.append(obj_id)
            if obj_id in new:
                continue
            if detector_missed:
                unmatched.add(obj_id)
            elif duplicate_of is not None:
                duplicates.append((duplicate_of, obj_id))
        older_of = [(labels[older], newer) for older, newer in duplicates if older in labels]
        height, width = rgb.shape[:2]
        masks = np.zeros((len(ids), height, width), dtype=bool)
        for n in range(len(ids)):
            masks[n, n : n + 4, n : n + 4] = True
        return FrameResult(
            object_ids=np.array(ids, dtype=np.int64),
            scores=np.array(
                [self.scores.get(self._label_of(session, i), 0.9) for i in ids], dtype=np.float32
            ),
            tracker_scores=np.full(len(ids), 0.8, dtype=np.float32),
            masks=masks,
            prompts=tuple(session.concept_of[i] for i in ids),
            matching=FrameMatching(
                new=frozenset(new),
                matched=frozenset(set(ids) - new - unmatched),
                unmatched=frozenset(unmatched),
                duplicates=tuple(older_of),
            ),
        )

    def _label_of(self, session: ScriptedSession, obj_id: int) -> str:
        labels = self._labels[id(session)]
        return next(label for label, i in labels.items() if i == obj_id)

    @staticmethod
    def _concept(session: ScriptedSession, label: str) -> str | None:
        """The concept that finds ``label`` now, or None while its concept is not registered."""
        concept, colon, _ = label.partition(":")
        if not colon:
            return session.class_names[0]
        return concept if concept in session.class_names else None

    def add_prompts(self, session: ScriptedSession, texts: tuple[str, ...]) -> None:
        new = tuple(t for t in texts if t not in session.class_names)
        session.class_names = (*session.class_names, *new)

    def remove_prompts(self, session: ScriptedSession, texts: tuple[str, ...]) -> list[int]:
        ended = [i for i in session.obj_ids if session.concept_of[i] in texts]
        for obj_id in ended:
            self.remove_object(session, obj_id)
        session.class_names = tuple(t for t in session.class_names if t not in texts)
        return ended

    def remove_object(self, session: ScriptedSession, obj_id: int) -> None:
        session.obj_ids.remove(obj_id)
        session.removed.append(obj_id)
        labels = self._labels[id(session)]
        for label in [k for k, v in labels.items() if v == obj_id]:
            del labels[label]

    def prune(self, session: ScriptedSession, frame_idx: int, **_: int) -> None:
        return None

    def rebase(self, session: ScriptedSession, offset: int) -> None:
        return None

    def held(self, session: ScriptedSession) -> tuple[int, int, int]:
        return 1, len(session.obj_ids), 0


def _parse(entry: str) -> tuple[str, bool, str | None]:
    """``"a"`` -> (a, False, None); ``"a?"`` -> (a, True, None); ``"b=a"`` -> (b, False, a)."""
    if entry.endswith("?"):
        return entry[:-1], True, None
    label, equals, older = entry.partition("=")
    return label, False, older if equals else None
