"""What every video source is: a thread that decodes into a bounded buffer, with a readable state.

A source has a lifecycle (``start`` / ``stop``), a state (``SourceState``) with change events,
user controls (``pause`` / ``mute`` / ``resume``) and counters (``stats()``). Subclasses only write
``_run()``, the body of the decode thread, using the helpers here to publish frames and link
states; everything a pipeline loop touches (``read``, ``stats``, the controls) lives in this class
so that file, stream, webcam and test-pattern sources behave the same from outside.

States. The reported state combines the *link* (what the decode thread is doing: CONNECTING,
RECONNECTING, RUNNING, ENDED, ERROR) with the *mode* the user chose (running, PAUSED, MUTED):
ENDED and ERROR win, then PAUSED, then a (re)connecting link, then MUTED, else RUNNING.

Pause and mute. While PAUSED nothing is decoded: a file waits where it is (buffered frames kept),
a live source closes its connection (a camera held open but unread would fill its buffers with
stale video) and reconnects on ``resume()``, with ``epoch + 1``. While MUTED the source keeps
decoding and discards the frames, so a live source stays connected and a file moves on.
``read()`` returns nothing in either mode.

Stopping. ``stop()`` must return promptly in every state, but a decode thread can be stuck inside
FFmpeg (``av.open`` on a hung camera) where Python cannot interrupt it. So ``stop()`` signals,
waits a bounded time, and otherwise abandons the daemon thread: FFmpeg's own open/read timeouts
release it later, and the closed buffer and the stop flag make sure it publishes nothing more.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

import numpy as np
import supervision as sv

from pipeline.redact import redact
from pipeline.sources.frame_size import oversized_frame
from pipeline.sources.source_options import SourceOptions
from pipeline.video_frame import VideoFrame
from sinks.frame_queue import FrameNotifier, FrameQueue

logger = logging.getLogger(__name__)

# How many recent frame times the measured fps averages over (``sv.FPSMonitor``), and how long
# without a frame before it reads 0 (a stalled camera must not keep reporting its old rate).
_FPS_WINDOW = 30
_FPS_STALE_S = 2.0
# Timings of frames published but not read yet; a buffer holds a handful, the rest were dropped.
_TIMINGS_KEPT = 64


class SourceState(enum.StrEnum):
    """The state a source reports; a ``str`` so it serialises as its name in status payloads.

    Roboflow's ``StreamState`` names are aliases of the same members (``StreamState`` is this
    class): ``INITIALISING`` is ``CONNECTING``, ``RESTARTING`` is ``RECONNECTING``.
    ``NOT_STARTED`` is never a source's state; it is the ``previous_state`` of the first
    ``SOURCE_STATE_UPDATE`` event after ``start()``, as in Roboflow.
    """

    NOT_STARTED = "NOT_STARTED"
    CONNECTING = "CONNECTING"
    RUNNING = "RUNNING"
    RECONNECTING = "RECONNECTING"
    PAUSED = "PAUSED"
    MUTED = "MUTED"
    ENDED = "ENDED"
    ERROR = "ERROR"
    INITIALISING = "CONNECTING"  # Roboflow's name
    RESTARTING = "RECONNECTING"  # Roboflow's name

    @property
    def is_terminal(self) -> bool:
        """No frame will be decoded again in this state."""
        return self in (SourceState.ENDED, SourceState.ERROR)


class _Mode(enum.Enum):
    """What the user asked for; combined with the link state into the reported ``SourceState``."""

    RUNNING = "running"
    PAUSED = "paused"
    MUTED = "muted"


@dataclass(frozen=True)
class SourceStateChange:
    """One state transition, handed to every state listener.

    Attributes:
        source_id: index of the source in its pipeline.
        video_identifier: the source's unique name (credentials redacted).
        reference: the source reference, credentials redacted.
        old: previous state; None for the first event after ``start()``.
        new: the state entered.
        epoch: the source's epoch at the time of the change.
        reason: why, in words, credentials redacted (e.g. "stream stalled for 5.0 s").
        timestamp: wall clock (UTC) of the change.
    """

    source_id: int
    video_identifier: str
    reference: str
    old: SourceState | None
    new: SourceState
    epoch: int
    reason: str | None
    timestamp: datetime


StreamState = SourceState
"""Roboflow's name for the source state enum (``inference...camera.video_source.StreamState``)."""

StateListener = Callable[[SourceStateChange], None]


@dataclass(frozen=True)
class FrameTiming:
    """When a frame entered the buffer and how long decoding it took (for latency statistics).

    Kept beside the frame rather than in ``VideoFrame`` so the shared record stays as DESIGN.md
    fixes it; the pipeline fetches it with ``VideoSource.frame_timing(frame_id)``.

    Attributes:
        published_at: ``time.monotonic()`` when the frame was handed to the buffer.
        decode_s: seconds spent decoding and converting it; None where the source cannot tell
            (OpenCV webcams decode inside ``read()``, together with the wait for the sensor).
    """

    published_at: float
    decode_s: float | None

    @property
    def grabbed_at(self) -> float:
        """``time.monotonic()`` when decoding of the frame started: where its age counts from."""
        return self.published_at - (self.decode_s or 0.0)


@dataclass(frozen=True)
class SourceStats:
    """A consistent snapshot of a source's counters, as ``status()`` reports them.

    Attributes:
        frames_decoded: frames that came out of the decoder (delivered, dropped or muted).
        frames_delivered: frames handed out by ``read()``.
        frames_dropped: frames thrown away unread because a newer one came (live) or on pause.
        frames_muted: frames decoded and discarded while MUTED.
        decode_errors: packets the decoder rejected (skipped, the stream went on).
        reconnects: successful reconnects; equals ``epoch`` for live sources.
        connect_failures: failed connection attempts since start.
        epoch: 0 at the first connect, +1 at every reconnect.
        declared_fps: the rate the source declares (0.0 when unknown).
        measured_fps: the rate frames actually came out of the decoder lately.
        resolution: (width, height) of the last frame, or None before the first one.
        buffer_len / buffer_capacity / buffer_high_water: the frame buffer's occupancy now, its
            bound, and the most it ever held.
        last_error: the last failure, credentials redacted; None if none.
        end_reason: why the source ENDED or went to ERROR ("end of file", "stopped",
            "truncated: the file ends after frame 17 of 40", ...; see ``file_end_reason``),
            credentials redacted; None while it runs.
    """

    source_id: int
    video_identifier: str
    reference: str
    kind: str
    is_live: bool
    state: SourceState
    epoch: int
    frames_decoded: int
    frames_delivered: int
    frames_dropped: int
    frames_muted: int
    decode_errors: int
    reconnects: int
    connect_failures: int
    declared_fps: float
    measured_fps: float
    resolution: tuple[int, int] | None
    buffer_len: int
    buffer_capacity: int
    buffer_high_water: int
    last_error: str | None
    end_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; the state as its name."""
        data = asdict(self)
        data["state"] = self.state.value
        return data


@dataclass
class _Counters:
    """Mutable counters, guarded by the source's lock."""

    frames_decoded: int = 0
    frames_delivered: int = 0
    frames_muted: int = 0
    decode_errors: int = 0
    reconnects: int = 0
    connect_failures: int = 0
    declared_fps: float = 0.0
    resolution: tuple[int, int] | None = None
    last_error: str | None = None
    fps: sv.FPSMonitor = field(default_factory=lambda: sv.FPSMonitor(sample_size=_FPS_WINDOW))


class VideoSource(ABC):
    """Base class of every source: lifecycle, state, controls, counters and the frame buffer.

    The buffer is a ``FrameQueue`` (one policy for every hand-over of frames): a live source
    keeps one slot, so a new frame replaces an unread one (dropped, counted) and the consumer
    always gets the freshest; a file holds ``options.file_buffer_frames`` and its decoder waits
    for room, so no frame is lost.

    Args:
        reference: what the user passed (path, URL, index); only its redacted form is kept for
            display, the raw value stays private to the decode thread.
        source_id: index in the pipeline, copied into every ``VideoFrame``.
        video_identifier: unique name of the source; defaults to the redacted reference.
        options: tuning shared by all kinds (timeouts, backoff, buffer size).
        on_state_change: called with a ``SourceStateChange`` on every transition, on the thread
            that caused it. Keep it quick; exceptions are logged and swallowed.
        first_frame_id: the id of the first frame decoded (1). A pipeline that runs its sources
            again (``start()`` after the end) continues the ids, as Roboflow's does.
    """

    kind: ClassVar[str] = "source"

    def __init__(
        self,
        reference: object,
        *,
        source_id: int = 0,
        video_identifier: str | None = None,
        options: SourceOptions | None = None,
        on_state_change: StateListener | None = None,
        first_frame_id: int = 1,
    ) -> None:
        self.reference = redact(reference)
        self.source_id = source_id
        self.video_identifier = redact(video_identifier) if video_identifier else self.reference
        self.options = options or SourceOptions()
        live = self.is_live
        self._buffer: FrameQueue[VideoFrame] = FrameQueue(
            1 if live else self.options.file_buffer_frames, is_live=lambda _frame: live
        )
        self._listeners: list[StateListener] = [on_state_change] if on_state_change else []
        self._lock = threading.RLock()
        self._emit_lock = threading.RLock()
        self._mode_changed = threading.Condition(self._lock)
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._counters = _Counters()
        self._mode = _Mode.RUNNING
        # Counts pause() calls, so a decode loop notices a pause that was resumed before it looked.
        self._pauses = 0
        self._link = SourceState.CONNECTING
        self._published: SourceState | None = None
        self._epoch = self.options.first_epoch
        self._next_frame_id = first_frame_id  # frame N of a file has frame_id N (first run)
        self._timings: OrderedDict[int, FrameTiming] = OrderedDict()
        self._end_reason: str | None = None
        # stop(keep_buffered=True): no more decoding, but read() hands out what is buffered.
        self._draining = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.source_id} {self.reference!r} {self.state.value}>"

    # ----------------------------------------------------------------- public surface

    @property
    def is_live(self) -> bool:
        """Live sources drop stale frames; files (unless ``realtime``) deliver every frame."""
        return True

    @property
    def state(self) -> SourceState:
        with self._lock:
            return self._effective_state()

    @property
    def epoch(self) -> int:
        with self._lock:
            return self._epoch

    @property
    def next_frame_id(self) -> int:
        """The id the next decoded frame gets: where a rerun of this source continues."""
        with self._lock:
            return self._next_frame_id

    @property
    def exhausted(self) -> bool:
        """True once the source is ENDED/ERROR (or stopped) and every buffered frame was read."""
        return self.state.is_terminal and len(self._buffer) == 0

    def add_state_listener(self, listener: StateListener) -> None:
        """Also call ``listener`` on every state change (see ``on_state_change``)."""
        self._listeners.append(listener)

    def set_notifier(self, notifier: FrameNotifier | None) -> None:
        """Poke ``notifier`` whenever a frame lands in the buffer (set before ``start()``)."""
        self._buffer.notifier = notifier

    def start(self) -> None:
        """Start the decode thread. Returns at once: connecting happens in the background."""
        with self._lock:
            if self._thread is not None:
                raise RuntimeError(f"source {self.reference} was already started")
            self._thread = threading.Thread(
                target=self._thread_main, name=f"source-{self.source_id}-{self.kind}", daemon=True
            )
        self._publish(reason="starting")
        self._thread.start()

    def read(self, timeout: float | None = None) -> VideoFrame | None:
        """The next frame, waiting up to ``timeout`` s; None if none came (or paused/muted/ended).

        ``timeout=0`` polls, which is how a loop over several sources takes turns fairly.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            ready = self._mode_changed.wait_for(
                lambda: self._mode is _Mode.RUNNING or self._stop_event.is_set(),
                _remaining(deadline),
            )
            if not ready or (self._stop_event.is_set() and not self._draining):
                return None
        frame = self._buffer.get(_remaining(deadline))
        if frame is not None:
            with self._lock:
                self._counters.frames_delivered += 1
        return frame

    def pause(self) -> None:
        """Stop decoding until ``resume()``; live sources release the camera meanwhile."""
        self._set_mode(_Mode.PAUSED, "paused by user")

    def mute(self) -> None:
        """Keep decoding but discard frames until ``resume()``; live sources stay connected."""
        self._set_mode(_Mode.MUTED, "muted by user")

    def resume(self) -> None:
        """Undo ``pause()`` or ``mute()``."""
        self._set_mode(_Mode.RUNNING, "resumed by user")

    def stop(self, timeout: float = 0.5, *, keep_buffered: bool = False) -> bool:
        """Stop the source and return within about ``timeout`` s, whatever it was doing.

        Args:
            timeout: how long to wait for the decode thread.
            keep_buffered: stop decoding but let ``read()`` still hand out the frames already
                buffered (a graceful stop: SIGTERM loses no decoded frame); ``exhausted`` turns
                True once they are read. A later plain ``stop()`` throws them away.

        Returns True when the decode thread has finished, False when it is still blocked inside
        FFmpeg and was abandoned (it exits by itself when its I/O timeout fires).
        """
        already_stopping = self._stop_event.is_set()
        with self._lock:
            self._draining = keep_buffered and (self._draining or not already_stopping)
        self._stop_event.set()
        if self._draining:
            self._buffer.close()
        else:
            self._buffer.stop()
        with self._lock:
            self._mode_changed.notify_all()
        if not already_stopping:
            self._set_link(SourceState.ENDED, "stopped", force=True)
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return thread is None
        thread.join(timeout)
        if thread.is_alive():
            logger.debug(
                "%s: decode thread still blocked in I/O after %.1f s; abandoned, it exits when "
                "its read timeout fires",
                self.reference,
                timeout,
            )
            return False
        return True

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the decode thread to finish (e.g. a file to end); True if it did.

        From the decode thread itself (a state listener that stops everything) it cannot wait
        for itself and returns False at once.
        """
        if self._thread is None:
            return True
        if self._thread is threading.current_thread():
            return False
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def frame_timing(self, frame_id: int) -> FrameTiming | None:
        """Take the timing of a frame returned by ``read()`` (each is handed out once)."""
        with self._lock:
            return self._timings.pop(frame_id, None)

    def stats(self) -> SourceStats:
        """A snapshot of the counters (cheap; safe from any thread)."""
        with self._lock:
            c = self._counters
            return SourceStats(
                source_id=self.source_id,
                video_identifier=self.video_identifier,
                reference=self.reference,
                kind=self.kind,
                is_live=self.is_live,
                state=self._effective_state(),
                epoch=self._epoch,
                frames_decoded=c.frames_decoded,
                frames_delivered=c.frames_delivered,
                frames_dropped=self._buffer.dropped,
                frames_muted=c.frames_muted,
                decode_errors=c.decode_errors,
                reconnects=c.reconnects,
                connect_failures=c.connect_failures,
                declared_fps=c.declared_fps,
                measured_fps=self._measured_fps_locked(),
                resolution=c.resolution,
                buffer_len=len(self._buffer),
                buffer_capacity=self._buffer.capacity,
                buffer_high_water=self._buffer.high_water,
                last_error=c.last_error,
                end_reason=self._end_reason,
            )

    # ----------------------------------------------------------------- for subclasses

    @abstractmethod
    def _run(self) -> None:
        """Body of the decode thread: connect, decode, publish; return when stopping or done."""

    @property
    def _stopping(self) -> bool:
        # Also once the link is terminal: an oversized frame ended the source from the inside,
        # and a reconnecting decode loop must not take that for a lost connection.
        return self._stop_event.is_set() or self._link.is_terminal

    @property
    def _paused(self) -> bool:
        return self._mode is _Mode.PAUSED

    def _wait_while_paused(self) -> bool:
        """Block while PAUSED; True when the source is stopping (the caller should return)."""
        with self._lock:
            self._mode_changed.wait_for(
                lambda: self._mode is not _Mode.PAUSED or self._stop_event.is_set()
            )
        return self._stopping

    def _sleep(self, seconds: float) -> bool:
        """Sleep that ``stop()`` interrupts; True when the source is stopping."""
        return self._stop_event.wait(max(0.0, seconds))

    def _set_link(self, link: SourceState, reason: str | None = None, force: bool = False) -> None:
        """Record what the decode thread is doing; ignored after ``stop()`` unless ``force``."""
        with self._emit_lock:
            with self._lock:
                if self._link.is_terminal or (self._stopping and not force):
                    return
                self._link = link
                if link.is_terminal:
                    self._end_reason = redact(reason) if reason else link.value.lower()
            self._publish(reason)

    def _begin_epoch(self, reconnect: bool) -> None:
        """A connection opened: a reconnect bumps the epoch so the tracker reseeds."""
        with self._lock:
            self._counters.fps.reset()  # the rate of the old connection says nothing
            if reconnect:
                self._epoch += 1
                self._counters.reconnects += 1

    def _record_failure(self, message: str, connect: bool = False) -> None:
        with self._lock:
            self._counters.last_error = redact(message)
            if connect:
                self._counters.connect_failures += 1

    def _record_decode_error(self, message: str) -> None:
        with self._lock:
            self._counters.decode_errors += 1
            self._counters.last_error = redact(message)

    def _set_declared_fps(self, fps: float) -> None:
        with self._lock:
            self._counters.declared_fps = fps

    def _count_decoded(self) -> int | None:
        """Count one decoded frame and give it its id; None if it is to be discarded (MUTED).

        Ids count decoded frames, so a consumer sees a gap wherever frames were dropped or muted.
        """
        with self._lock:
            frame_id = self._next_frame_id
            self._next_frame_id += 1
            self._counters.frames_decoded += 1
            self._counters.fps.tick()
            if self._mode is _Mode.MUTED:
                self._counters.frames_muted += 1
                return None
            return frame_id

    def _publish_frame(
        self,
        image: np.ndarray,
        frame_id: int,
        timestamp: datetime | None = None,
        *,
        from_file: bool = False,
        decode_s: float | None = None,
    ) -> bool:
        """Wrap ``image`` (H, W, 3) uint8 BGR in a ``VideoFrame`` and hand it to the buffer.

        ``frame_id`` comes from ``_count_decoded()``; ``decode_s`` is how long decoding it took.
        Returns False when the buffer refused the frame (the source is stopping). A live frame
        that replaced an unread one was accepted: the buffer counts the drop.

        A frame over ``frame_size.MAX_FRAME_PIXELS`` is not published: it ends the source in
        ERROR, naming the cap, and False is returned (the decode loop returns).
        """
        oversized = oversized_frame(image.shape[1], image.shape[0])
        if oversized is not None:
            logger.error("%s: %s", redact(self.reference), oversized)
            self._record_failure(oversized)
            self._set_link(SourceState.ERROR, oversized)
            return False
        with self._lock:
            self._counters.resolution = (image.shape[1], image.shape[0])
            frame = VideoFrame(
                image=image,
                frame_id=frame_id,
                # Naive local time, Roboflow's convention: datetime.now() - frame_timestamp works.
                frame_timestamp=timestamp or datetime.now(),
                fps=self._counters.declared_fps,
                measured_fps=self._measured_fps_locked(),
                source_id=self.source_id,
                video_identifier=self.video_identifier,
                comes_from_video_file=from_file,
                epoch=self._epoch,
            )
            flowing = self._link is SourceState.RUNNING
            self._timings[frame_id] = FrameTiming(time.monotonic(), decode_s)
            while len(self._timings) > _TIMINGS_KEPT:
                self._timings.popitem(last=False)
        if not flowing:
            self._set_link(SourceState.RUNNING, "frames flowing")
        return self._buffer.put(frame) is not frame

    # ----------------------------------------------------------------- internals

    def _thread_main(self) -> None:
        try:
            self._run()
        except Exception as error:  # a bug in a decode loop must not die silently
            logger.exception("%s: decode thread crashed", self.reference)
            self._record_failure(f"decode thread crashed: {error}")
            self._set_link(SourceState.ERROR, redact(f"decode thread crashed: {error}"))
        finally:
            self._buffer.close()

    def _set_mode(self, mode: _Mode, reason: str) -> None:
        with self._emit_lock:
            with self._lock:
                if self._mode is mode:
                    return
                self._mode = mode
                self._pauses += mode is _Mode.PAUSED
                self._mode_changed.notify_all()
            if mode is _Mode.MUTED or (mode is _Mode.PAUSED and self.is_live):
                # Muted frames are discarded, and a live frame held over a pause would be stale;
                # a paused file keeps its frames, none may be lost.
                self._buffer.clear()
            self._publish(reason)

    def _effective_state(self) -> SourceState:
        if self._link.is_terminal:
            return self._link
        if self._mode is _Mode.PAUSED:
            return SourceState.PAUSED
        if self._link in (SourceState.CONNECTING, SourceState.RECONNECTING):
            return self._link
        if self._mode is _Mode.MUTED:
            return SourceState.MUTED
        return SourceState.RUNNING

    def _publish(self, reason: str | None) -> None:
        """Emit a ``SourceStateChange`` if the reported state changed (caller holds _emit_lock)."""
        with self._emit_lock:
            with self._lock:
                new = self._effective_state()
                old = self._published
                if new is old:
                    return
                self._published = new
                change = SourceStateChange(
                    source_id=self.source_id,
                    video_identifier=self.video_identifier,
                    reference=self.reference,
                    old=old,
                    new=new,
                    epoch=self._epoch,
                    reason=redact(reason) if reason else None,
                    timestamp=datetime.now(UTC),
                )
            level = (
                logging.WARNING
                if new in (SourceState.RECONNECTING, SourceState.ERROR)
                else logging.INFO
            )
            logger.log(
                level,
                "source %d %s: %s -> %s%s",
                self.source_id,
                self.reference,
                old.value if old else "-",
                new.value,
                f" ({change.reason})" if change.reason else "",
            )
            for listener in list(self._listeners):
                try:
                    listener(change)
                except Exception:
                    logger.exception("%s: state listener failed", self.reference)

    def _measured_fps_locked(self) -> float:
        monitor = self._counters.fps
        times = monitor.all_timestamps
        if not times or time.monotonic() - times[-1] > _FPS_STALE_S:
            return 0.0
        return monitor.fps


def _remaining(deadline: float | None) -> float | None:
    if deadline is None:
        return None
    return max(0.0, deadline - time.monotonic())
