"""Sessions per video_identifier: the reseed rules, LRU and idle expiry, thread safety.

``RESEED_TRIGGERS`` is the whole reseed rule of DESIGN.md: a fresh HF session is created only when
the session does not exist, the epoch changed (reconnect/restart), ``frame_id`` went backwards, the
normalised class list changed, or the caller reset it. Nothing else resets it: no periodic reseed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import supervision as sv

from tracker.detections import empty_detections
from tracker.errors import InferenceError
from tracker.inputs import check_threshold, normalise_class_names, to_rgb
from tracker.stream_session import REBASE_AT, SessionStats, StreamSession

logger = logging.getLogger(__name__)

RESEED_TRIGGERS = (
    "new session",
    "epoch changed",
    "frame_id went backwards",
    "class names changed",
    "reset by caller",
)


def reseed_reason(
    session: StreamSession, *, epoch: int, frame_id: int, class_names: tuple[str, ...]
) -> str | None:
    """Which of ``RESEED_TRIGGERS`` applies to this frame, or None to keep the session."""
    if not session.has_hf_session:
        return RESEED_TRIGGERS[0]
    if session.epoch is not None and epoch != session.epoch:
        return RESEED_TRIGGERS[1]
    if session.last_frame_id is not None and frame_id < session.last_frame_id:
        return RESEED_TRIGGERS[2]
    if class_names != session.class_names:
        return RESEED_TRIGGERS[3]
    return None


class SessionRegistry:
    """Streaming sessions keyed by ``video_identifier`` over one shared ``Sam3VideoTracker``.

    Examples:
        >>> import numpy as np
        >>> from tracker import Sam3VideoTracker, SessionRegistry, build_tiny_model
        >>> tracker = Sam3VideoTracker.from_pretrained(str(build_tiny_model("/tmp/tiny-sam3")))
        >>> registry = SessionRegistry(tracker)
        >>> frame = np.zeros((120, 160, 3), dtype=np.uint8)
        >>> detections = registry.process(
        ...     frame, video_identifier="cam-1", frame_id=0, class_names="person", threshold=0.0
        ... )
        >>> len(registry)
        1
    """

    def __init__(
        self,
        tracker: Any,
        *,
        max_sessions: int = 64,
        idle_timeout_s: float = 300.0,
        memory_frames: int = 15,
        lost_object_frames: int | None = 90,
        max_conditioning_frames: int = 16,
        rebase_at: int = REBASE_AT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_sessions < 1:
            raise ValueError(f"max_sessions must be >= 1, got {max_sessions}")
        if memory_frames < 1:
            raise ValueError(f"memory_frames must be >= 1, got {memory_frames}")
        self.tracker = tracker
        self.max_sessions = max_sessions
        self.idle_timeout_s = idle_timeout_s
        self.memory_frames = memory_frames
        self.lost_object_frames = lost_object_frames
        self.max_conditioning_frames = max_conditioning_frames
        self.rebase_at = rebase_at
        self._clock = clock
        self._lock = threading.Lock()
        self._sessions: OrderedDict[str, StreamSession] = OrderedDict()
        # Ids survive close/expiry too: an identifier that comes back continues above its old ids.
        self._highest_ids: dict[str, int] = {}
        self._session_locks: dict[str, threading.Lock] = {}

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)

    def __contains__(self, video_identifier: object) -> bool:
        with self._lock:
            return video_identifier in self._sessions

    def identifiers(self) -> list[str]:
        with self._lock:
            return list(self._sessions)

    def process(
        self,
        image: np.ndarray,
        *,
        video_identifier: str,
        frame_id: int,
        class_names: str | Iterable[str],
        threshold: float = 0.5,
        epoch: int = 0,
    ) -> sv.Detections:
        """Segment and track every instance of ``class_names`` in one BGR frame.

        Raises:
            ValueError: bad image, class names or threshold (message names the problem).
            InferenceError: the model failed on this frame; the session was dropped and the next
                frame starts a fresh one with ids above the old ones.
        """
        names = normalise_class_names(class_names)
        threshold = check_threshold(threshold)
        rgb = to_rgb(image)
        if not names:
            return empty_detections()
        session, session_lock = self._checkout(video_identifier)
        with session_lock:
            reason = reseed_reason(session, epoch=epoch, frame_id=frame_id, class_names=names)
            if reason is not None:
                session.reseed(names, reason, count=reason != RESEED_TRIGGERS[0])
            session.epoch = epoch
            session.last_frame_id = frame_id
            try:
                detections = session.step(rgb, threshold)
            except Exception as error:
                session.close()
                raise InferenceError(
                    f"SAM3 failed on frame {frame_id} of {video_identifier} "
                    f"({type(error).__name__}: {error}); its session was reset"
                ) from error
            finally:
                self._remember_ids(video_identifier, session)
        return detections

    def _checkout(self, video_identifier: str) -> tuple[StreamSession, threading.Lock]:
        with self._lock:
            now = self._clock()
            self._expire_idle(now, keep=video_identifier)
            session = self._sessions.get(video_identifier)
            if session is None:
                session = StreamSession(
                    self.tracker,
                    video_identifier,
                    memory_frames=self.memory_frames,
                    lost_object_frames=self.lost_object_frames,
                    max_conditioning_frames=self.max_conditioning_frames,
                    rebase_at=self.rebase_at,
                )
                session.highest_tracker_id = self._highest_ids.get(video_identifier, 0)
                self._sessions[video_identifier] = session
                self._session_locks.setdefault(video_identifier, threading.Lock())
                self._evict_lru()
            self._sessions.move_to_end(video_identifier)
            session.last_used = now
            return session, self._session_locks[video_identifier]

    def _remember_ids(self, video_identifier: str, session: StreamSession) -> None:
        with self._lock:
            previous = self._highest_ids.get(video_identifier, 0)
            self._highest_ids[video_identifier] = max(previous, session.highest_tracker_id)

    def _expire_idle(self, now: float, keep: str | None = None) -> None:
        for video_identifier, session in list(self._sessions.items()):
            if video_identifier != keep and now - session.last_used > self.idle_timeout_s:
                logger.info("closing idle session %s", video_identifier)
                self._drop(video_identifier)

    def _evict_lru(self) -> None:
        while len(self._sessions) > self.max_sessions:
            video_identifier = next(iter(self._sessions))
            logger.info("closing least recently used session %s", video_identifier)
            self._drop(video_identifier)

    def _drop(self, video_identifier: str) -> None:
        session = self._sessions.pop(video_identifier, None)
        if session is not None:
            self._highest_ids[video_identifier] = max(
                self._highest_ids.get(video_identifier, 0), session.highest_tracker_id
            )
            session.close()

    def reset(self, video_identifier: str) -> None:
        """Reseed on the next frame (the ``reset by caller`` trigger); ids continue."""
        with self._lock:
            session = self._sessions.get(video_identifier)
        if session is None:
            return
        with self._session_locks[video_identifier]:
            if session.has_hf_session:
                session.reseeds += 1
                logger.info("reseeding %s: %s", video_identifier, RESEED_TRIGGERS[4])
            session.close()

    def close(self, video_identifier: str) -> None:
        """Free the identifier's session now; a later frame starts a new one, ids continue."""
        with self._lock:
            self._drop(video_identifier)

    def close_all(self) -> None:
        with self._lock:
            for video_identifier in list(self._sessions):
                self._drop(video_identifier)

    def expire_idle(self) -> None:
        """Close sessions idle for longer than ``idle_timeout_s`` (also done on every frame)."""
        with self._lock:
            self._expire_idle(self._clock())

    def stats(self, video_identifier: str) -> SessionStats:
        """Statistics of one identifier's session, as of its last finished frame.

        Does not wait for a frame in flight: a busy stream must not stall status or metrics.

        Raises:
            KeyError: the identifier has no open session.
        """
        with self._lock:
            session = self._sessions.get(video_identifier)
        if session is None:
            raise KeyError(f"no session for video_identifier {video_identifier!r}")
        return session.stats()
