"""Sessions per video_identifier: which are open, for how long, and which frames are in the model.

The registry opens a ``StreamSession`` on an identifier's first frame, hands it every frame, and
closes it on idle expiry, beyond ``max_sessions`` (least recently used first) or when the caller
asks; ``_drop`` is the only way a session leaves. The session owns every per-frame rule, the
reseed rule (``tracker.reseed``) included. The registry keeps what outlives a session: the
identifier's ``TrackerIds`` and its lock.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import supervision as sv

from tracker.detections import empty_detections
from tracker.inputs import check_threshold, normalise_class_names, to_rgb
from tracker.session_rules import SessionRules
from tracker.stream_session import SessionStats, StreamSession
from tracker.tracker_ids import RESERVATION_BLOCK, IdReservation, TrackerIds
from tracker.visual_prompts import VisualPrompt

logger = logging.getLogger(__name__)


def _check_frame_keys(video_identifier: Any, frame_id: Any, epoch: Any) -> None:
    """The keys a session and its reseed rule compare: a name and two integers.

    Checked before the frame reaches a session, so ``frame_id="x"`` fails here, by name, not as
    a ``TypeError`` inside the reseed rule (or, worse, a session keyed on ``None``).
    """
    if not isinstance(video_identifier, str) or not video_identifier:
        raise ValueError(f"video_identifier must be a non-empty string, got {video_identifier!r}")
    for name, value in (("frame_id", frame_id), ("epoch", epoch)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise ValueError(f"{name} must be an integer, got {value!r}")


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
        # Defaults live in SessionRules, where each knob is checked.
        memory_frames: int = SessionRules.memory_frames,
        lost_object_frames: int | None = SessionRules.lost_object_frames,
        max_conditioning_frames: int = SessionRules.max_conditioning_frames,
        rebase_at: int = SessionRules.rebase_at,
        max_objects: int = SessionRules.max_objects,
        confirm_frames: int = SessionRules.confirm_frames,
        hotstart_delay: int | None = SessionRules.hotstart_delay,
        hotstart_unmatch_thresh: int | None = SessionRules.hotstart_unmatch_thresh,
        hotstart_dup_thresh: int | None = SessionRules.hotstart_dup_thresh,
        max_unmatched_frames: int | None = SessionRules.max_unmatched_frames,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_sessions < 1:
            raise ValueError(f"max_sessions must be >= 1, got {max_sessions}")
        self.tracker = tracker
        self.max_sessions = max_sessions
        self.idle_timeout_s = idle_timeout_s
        self.rules = SessionRules(
            memory_frames=memory_frames,
            lost_object_frames=lost_object_frames,
            max_conditioning_frames=max_conditioning_frames,
            rebase_at=rebase_at,
            max_objects=max_objects,
            confirm_frames=confirm_frames,
            hotstart_delay=hotstart_delay,
            hotstart_unmatch_thresh=hotstart_unmatch_thresh,
            hotstart_dup_thresh=hotstart_dup_thresh,
            max_unmatched_frames=max_unmatched_frames,
        )
        _warn_if_port_caps_below(tracker, max_objects)
        self._clock = clock
        # Guards the maps below; also signals ``wait_idle`` when a frame leaves the model.
        self._lock = threading.Condition()
        self._sessions: OrderedDict[str, StreamSession] = OrderedDict()  # least recent first
        self._last_used: dict[str, float] = {}
        self._in_flight: dict[str, int] = {}
        # Outlive a session: an identifier that comes back continues above its old ids, and its
        # next session waits for a frame the closed one still has inside the model.
        self._tracker_ids: dict[str, TrackerIds] = {}
        self._session_locks: dict[str, threading.Lock] = {}
        self._max_objects: dict[str, int] = {}  # per-identifier budgets (set_max_objects)

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
            ValueError: bad image, identifier, frame id, epoch, class names or threshold
                (message names the argument).
            InferenceError: the model failed on this frame; the session was dropped and the next
                frame starts a fresh one with ids above the old ones.
        """
        _check_frame_keys(video_identifier, frame_id, epoch)
        names = normalise_class_names(class_names)
        threshold = check_threshold(threshold)
        rgb = to_rgb(image)
        if not names and not self._has_visual_work(video_identifier, rgb, frame_id):
            return empty_detections()
        with self._frame_in_flight(video_identifier):
            session, session_lock = self._checkout(video_identifier)
            with session_lock:
                return session.process(
                    rgb, frame_id=frame_id, epoch=epoch, class_names=names, threshold=threshold
                )

    def add_prompt(self, video_identifier: str, prompt: VisualPrompt) -> list[int]:
        """Track what ``prompt`` points at in ``video_identifier``'s frames, from its next one.

        The prompt is placed on the identifier's first frame whose ``frame_id`` is at least
        ``prompt.frame_id`` (None: its next frame); it may come before the identifier's first
        frame. Its objects run beside the concept tracks (ids unique across both) and keep
        running without class names. What happens on a reseed is ``tracker.visual_tracks``' rule.

        Returns:
            The tracker ids of the prompt's new objects (one per box, one for points alone), or
            ``[prompt.tracker_id]`` when it refines that object.

        Raises:
            ValueError: naming the field: ``video_identifier``; ``boxes[i]`` / ``points[i]`` off
                the stream's last frame; ``tracker_id`` not a prompted object here; ``frame_id``
                older than the session can place; ``max_objects`` full of prompted objects.
        """
        if not isinstance(prompt, VisualPrompt):
            raise ValueError(f"prompt: must be a VisualPrompt, got {type(prompt).__name__}")
        _check_frame_keys(video_identifier, 0, 0)
        session, session_lock = self._checkout(video_identifier)
        with session_lock:
            return session.add_prompt(prompt)

    def remove_object(self, video_identifier: str, tracker_id: int) -> None:
        """End one live object of the identifier now (prompted or found by a concept).

        Raises:
            KeyError: the identifier has no live object with ``tracker_id``.
        """
        with self._lock:
            session = self._sessions.get(video_identifier)
            session_lock = self._session_locks.get(video_identifier)
        if session is None or session_lock is None:
            raise KeyError(tracker_id)
        with session_lock:
            session.remove_object(tracker_id)

    def _has_visual_work(self, video_identifier: str, rgb: np.ndarray, frame_id: int) -> bool:
        """Whether a frame without class names must run; if not, the session (if any) still
        learns the frame's size and id, so a prompt can be checked against them at once."""
        with self._lock:
            session = self._sessions.get(video_identifier)
        if session is None:
            return False
        if session.has_visual_work:
            return True
        session.note_frame(rgb, frame_id)
        return False

    def set_max_objects(self, video_identifier: str, max_objects: int | None) -> None:
        """Give one identifier its own object budget (None: back to the registry's).

        Applies from the identifier's next frame, to its open session and any later one.

        Raises:
            ValueError: ``max_objects`` < 1.
        """
        rules = self.rules if max_objects is None else replace(self.rules, max_objects=max_objects)
        if max_objects is not None:
            _warn_if_port_caps_below(self.tracker, max_objects)
        with self._lock:
            if max_objects is None:
                self._max_objects.pop(video_identifier, None)
            else:
                self._max_objects[video_identifier] = max_objects
            session = self._sessions.get(video_identifier)
            if session is not None:
                session.rules = rules

    def set_id_floor(
        self,
        video_identifier: str,
        floor: int,
        *,
        reserve: IdReservation | None = None,
        block: int = RESERVATION_BLOCK,
    ) -> None:
        """Make the identifier's new ids continue above ``floor`` (or above its own, if higher).

        How a caller that stores ids carries them across restarts of the process: give the
        highest id the identifier ever emitted (as stored) before its first frame, and a
        ``reserve`` callback that stores each ceiling before ids pass it (``TrackerIds``).
        Calling it again replaces the callback (None: stop reserving).

        Raises:
            ValueError: ``floor`` < 0 or ``block`` < 1.
        """
        with self._lock:
            ids = self._tracker_ids.setdefault(video_identifier, TrackerIds())
        ids.raise_floor(floor, reserve=reserve, block=block)

    def highest_tracker_id(self, video_identifier: str) -> int:
        """The largest id the identifier ever emitted here, or its floor; 0 when neither.

        Unlike ``stats()`` this needs no open session: the ids outlive sessions.
        """
        with self._lock:
            ids = self._tracker_ids.get(video_identifier)
        return ids.highest if ids is not None else 0

    def reset(self, video_identifier: str) -> None:
        """Reseed now (``ReseedReason.RESET_BY_CALLER``): the next frame starts fresh; ids go on."""
        with self._lock:
            session = self._sessions.get(video_identifier)
        if session is None:
            return
        with self._session_locks[video_identifier]:
            session.reset()

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

    def wait_idle(self, timeout: float, video_identifier: str | None = None) -> bool:
        """Block until no frame (of ``video_identifier``, or of any stream) is inside the model.

        A stopped pipeline leaves a frame already inside the model to finish on its own. If the
        process exits meanwhile, torch's thread pool is torn down under that thread and the C++
        runtime aborts the process (exit 134, "terminate called without an active exception");
        and a session closed meanwhile is freed only once that frame lets go of it. So shutdown,
        and a service deleting a stream, wait here first.

        Returns:
            False if ``timeout`` seconds passed first.
        """
        with self._lock:
            if video_identifier is None:
                return self._lock.wait_for(lambda: not self._in_flight, timeout)
            return self._lock.wait_for(lambda: video_identifier not in self._in_flight, timeout)

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

    def all_stats(self) -> dict[str, SessionStats]:
        """Statistics of every open session that has finished a frame, by video_identifier.

        Never waits for a frame in flight; a session whose first frame is still inside the model
        has nothing to report yet and is left out.
        """
        with self._lock:
            sessions = list(self._sessions.items())
        every = {video_identifier: session.stats() for video_identifier, session in sessions}
        return {name: stats for name, stats in every.items() if stats.frames_processed}

    @contextlib.contextmanager
    def _frame_in_flight(self, video_identifier: str) -> Iterator[None]:
        """Count the frame as inside the model until the block ends (see ``wait_idle``)."""
        with self._lock:
            self._in_flight[video_identifier] = self._in_flight.get(video_identifier, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                self._in_flight[video_identifier] -= 1
                if not self._in_flight[video_identifier]:
                    del self._in_flight[video_identifier]
                self._lock.notify_all()

    def _checkout(self, video_identifier: str) -> tuple[StreamSession, threading.Lock]:
        with self._lock:
            now = self._clock()
            self._expire_idle(now, keep=video_identifier)
            session = self._sessions.get(video_identifier)
            if session is None:
                session = self._sessions[video_identifier] = StreamSession(
                    self.tracker,
                    video_identifier,
                    self._tracker_ids.setdefault(video_identifier, TrackerIds()),
                    self._rules_of(video_identifier),
                )
                self._evict_lru()
            self._sessions.move_to_end(video_identifier)
            self._last_used[video_identifier] = now
            return session, self._session_locks.setdefault(video_identifier, threading.Lock())

    def _rules_of(self, video_identifier: str) -> SessionRules:
        """The registry's rules with the identifier's own budget, if it has one."""
        max_objects = self._max_objects.get(video_identifier)
        if max_objects is None:
            return self.rules
        return replace(self.rules, max_objects=max_objects)

    def _expire_idle(self, now: float, keep: str | None = None) -> None:
        for video_identifier in list(self._sessions):
            idle_s = now - self._last_used.get(video_identifier, now)
            if video_identifier != keep and idle_s > self.idle_timeout_s:
                logger.info("closing idle session %s", video_identifier)
                self._drop(video_identifier)

    def _evict_lru(self) -> None:
        while len(self._sessions) > self.max_sessions:
            video_identifier = next(iter(self._sessions))
            logger.info("closing least recently used session %s", video_identifier)
            self._drop(video_identifier)

    def _drop(self, video_identifier: str) -> None:
        """The one way a session leaves the registry; the caller holds ``_lock``."""
        session = self._sessions.pop(video_identifier, None)
        self._last_used.pop(video_identifier, None)
        if session is not None:
            session.close()


_WARNED_PORT_CAPS: set[tuple[int, int]] = set()  # (tracker, max_objects) already warned about


def _warn_if_port_caps_below(tracker: Any, max_objects: int) -> None:
    """Say so when the port's own ``max_num_objects`` would refuse objects before the budget acts.

    The port drops a frame's new detections once its live objects plus the new ones pass
    ``max_num_objects`` (10,000 by default), however stale the live ones are. The budget keeps at
    most ``max_objects`` live between frames, so the port's cap must leave room above it for one
    frame's new detections (up to the detector's query count per concept).
    """
    config = getattr(tracker, "config", None)
    port_cap = getattr(config, "max_num_objects", None)
    decoder = getattr(getattr(config, "detector_config", None), "detr_decoder_config", None)
    per_frame = int(getattr(decoder, "num_queries", 0) or 0)
    if port_cap is not None and port_cap < max_objects + per_frame:
        if (id(tracker), max_objects) in _WARNED_PORT_CAPS:
            return
        _WARNED_PORT_CAPS.add((id(tracker), max_objects))
        logger.warning(
            "the model's max_num_objects (%d) is below max_objects (%d) plus one frame of new "
            "detections (%d): the port may refuse new objects before the budget makes room; "
            "leave max_num_objects at its default and set max_objects instead",
            port_cap,
            max_objects,
            per_frame,
        )
