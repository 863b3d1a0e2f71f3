"""A scripted stand-in for ``Sam3VideoTracker``.

Random weights cannot make objects appear and vanish on cue, so tests of eviction and of id
continuity across controlled appearances use this stand-in. It implements the backend protocol the
registry uses (new_session / step / prune / rebase / remove_object / held) and nothing else: tests
that can run on the real tiny model do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np

from tracker.model import FrameResult


@dataclass
class ScriptedSession:
    class_names: tuple[str, ...]
    obj_ids: list[int] = field(default_factory=list)
    next_obj_id: int = 0
    removed: list[int] = field(default_factory=list)
    frame_indices: list[int] = field(default_factory=list)


class ScriptedTracker:
    """Objects named by ``script(frame_number)`` are visible; new names become new objects.

    ``script`` returns the labels visible on the n-th frame this tracker processes (counted across
    sessions). Each label maps to one session object id while that object lives in the session.
    """

    def __init__(self, script: Callable[[int], list[str]]) -> None:
        self.script = script
        self.config = SimpleNamespace(recondition_every_nth_frame=16)
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
        for label in visible:
            if label not in labels:
                labels[label] = session.next_obj_id
                session.obj_ids.append(session.next_obj_id)
                session.next_obj_id += 1
            ids.append(labels[label])
        height, width = rgb.shape[:2]
        masks = np.zeros((len(ids), height, width), dtype=bool)
        for n in range(len(ids)):
            masks[n, n : n + 4, n : n + 4] = True
        return FrameResult(
            object_ids=np.array(ids, dtype=np.int64),
            scores=np.full(len(ids), 0.9, dtype=np.float32),
            tracker_scores=np.full(len(ids), 0.8, dtype=np.float32),
            masks=masks,
            prompts=tuple(session.class_names[0] for _ in ids),
        )

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
