"""What one run of a video_identifier leaves for the next: its epoch, its tracker ids, its files.

Every time the service runs an identifier (a stream created, restarted at boot or on request) it
continues where the identifier's earlier runs stopped, in this process or before a restart:

- **epoch**: the run starts at the last epoch its frames ever had + 1 (``first_epoch``), so
  ``(video_identifier, epoch, frame_id)`` never repeats; reconnects during the run are recorded
  as they happen.
- **tracker ids**: the registry continues above the highest id the identifier ever emitted; with a
  store, each block of ids is reserved there before it is used (``TrackerIds``), so even a killed
  server never hands out an id twice, and a clean stop records the exact highest.
- **files**: a run after the first (``first_epoch`` > 0) appends to its JSONL files (the sink
  always appends) and writes its video to ``NAME.EPOCH.EXT`` instead of ``NAME.EXT``
  (``sinks_for_run``): an MP4 cannot be appended to, and the earlier run's video must survive.

Without a store (no ``--state-dir``) the same rules hold for the life of the process.

Examples:
    >>> sinks_for_run(["video:out/dock.mp4", "jsonl:dock.jsonl"], first_epoch=3)
    ['video:out/dock.3.mp4', 'jsonl:dock.jsonl']
    >>> sinks_for_run(["video:dock.mp4"], first_epoch=0)
    ['video:dock.mp4']
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pipeline.loop.status_events import EventType, StatusUpdate
from pipeline.service.store import IdentifierHistory, StreamStore
from tracker import SessionRegistry

logger = logging.getLogger(__name__)

__all__ = ["RunHistory", "RunWatcher", "sinks_for_run"]


def sinks_for_run(sinks: Sequence[str], *, first_epoch: int) -> list[str]:
    """The sink specs a run opens: a re-run's ``video:`` file gets the epoch in its name.

    ``video:NAME.EXT`` becomes ``video:NAME.EPOCH.EXT`` (``NAME.EPOCH`` without an extension).
    Every other sink is unchanged (JSONL files are appended to).
    """
    if first_epoch <= 0:
        return list(sinks)
    run_sinks = []
    for spec in sinks:
        kind, separator, path = spec.strip().partition(":")
        if kind.lower() == "video" and separator and path:
            directory, slash, name = path.rpartition("/")
            stem, dot, extension = name.rpartition(".")
            name = f"{stem}.{first_epoch}.{extension}" if dot and stem else f"{name}.{first_epoch}"
            spec = f"{kind}:{directory}{slash}{name}"
        run_sinks.append(spec)
    return run_sinks


class RunHistory:
    """Each identifier's epochs and tracker ids, in the store when there is one, else in memory.

    Thread-safe. The store's writes are few: one per run start, per reconnect, per block of
    ``tracker.tracker_ids.RESERVATION_BLOCK`` new tracks, and per clean stop.
    """

    def __init__(self, store: StreamStore | None) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._last_epochs: dict[str, int] = {}  # this process's own, for a server without store

    def of(self, video_identifier: str) -> IdentifierHistory:
        """What the identifier's earlier runs used (stored, or seen by this process)."""
        stored = (
            self.store.history(video_identifier)
            if self.store is not None
            else IdentifierHistory(video_identifier)
        )
        with self._lock:
            seen = self._last_epochs.get(video_identifier, -1)
        if seen > stored.last_epoch:
            return IdentifierHistory(video_identifier, stored.tracker_id_ceiling, seen)
        return stored

    def begin_run(self, registry: SessionRegistry, video_identifier: str, first_epoch: int) -> None:
        """Before the run's first frame: record its epoch, continue its ids above every old one."""
        self.saw_epoch(video_identifier, first_epoch)
        ceiling = self.of(video_identifier).tracker_id_ceiling
        if self.store is None:
            registry.set_id_floor(video_identifier, ceiling)
        else:
            registry.set_id_floor(
                video_identifier, ceiling, reserve=self._reservation(video_identifier)
            )

    def saw_epoch(self, video_identifier: str, epoch: int) -> None:
        """Frames of ``video_identifier`` have ``epoch`` (a run started, a source reconnected)."""
        with self._lock:
            if epoch <= self._last_epochs.get(video_identifier, -1):
                return
            self._last_epochs[video_identifier] = epoch
        if self.store is not None:
            try:
                self.store.record_epoch(video_identifier, epoch)
            except Exception as error:
                logger.error("cannot record epoch %d of %s: %s", epoch, video_identifier, error)

    def end_run(self, registry: SessionRegistry, video_identifier: str) -> None:
        """After a clean stop (no frame of it in the model): store the exact highest id."""
        registry.set_id_floor(video_identifier, 0)  # keeps the ids, stops reserving
        if self.store is None:
            return
        highest = registry.highest_tracker_id(video_identifier)
        if highest > 0:
            try:
                self.store.settle_tracker_ids(video_identifier, highest)
            except Exception as error:
                logger.error("cannot record the ids of %s: %s", video_identifier, error)

    def _reservation(self, video_identifier: str) -> Callable[[int], None]:
        store = self.store
        assert store is not None

        def reserve(ceiling: int) -> None:
            # Called on the inference thread before an id above the last ceiling is used. A
            # failed write is logged, not raised: one broken disk must not stop every stream.
            try:
                store.record_tracker_ids(video_identifier, ceiling)
            except Exception as error:
                logger.error(
                    "cannot record tracker ids of %s up to %d: %s", video_identifier, ceiling, error
                )

        return reserve


@dataclass
class RunWatcher:
    """A ``status_update_handler`` of one run: records reconnect epochs, reports a natural end.

    ``on_ended`` is called (on the pipeline's thread) when the pipeline ended by itself, that is
    every source finished without ``terminate()``; it is set once the pipeline exists.
    """

    history: RunHistory
    video_identifier: str
    on_ended: Callable[[], None] | None = field(default=None)

    def __call__(self, update: StatusUpdate) -> None:
        if update.event_type == EventType.SOURCE_STATE_CHANGED:
            epoch = update.payload.get("epoch")
            if isinstance(epoch, int):
                self.history.saw_epoch(self.video_identifier, epoch)
        elif update.event_type == EventType.PIPELINE_ENDED and self.on_ended is not None:
            self.on_ended()
