"""What survives a restart: stream definitions, which streams ended, and each identifier's history.

One SQLite file under the state directory, three tables:

- ``streams``: the streams created over the API (config streams come from the YAML at every
  boot), as given, credentials included, because a stream needs them to reconnect after a
  restart: the file is created readable by its owner only (0600, directory 0700).
- ``ended_streams``: the API streams whose source finished by itself (a file that reached its
  end), with their last status. They are listed, not run again, at the next boot.
- ``video_identifiers``: per identifier (config streams too), every tracker id it ever emitted is
  at or below ``tracker_id_ceiling`` and every epoch its frames had is at or below
  ``last_epoch``; a stream that runs the identifier again starts at ``last_epoch + 1`` with ids
  above the ceiling, so ``(video_identifier, epoch, frame_id)`` and tracker ids never repeat.

Schema versions (``PRAGMA user_version``): 1 had ``streams`` only; 2 adds the other two tables.
Opening a version-1 file adds them and changes nothing else, so the last release's state
directory loads as it was (its identifiers start with no history).

Examples:
    >>> import tempfile
    >>> from pipeline.service.models import StreamSpec
    >>> store = StreamStore(tempfile.mkdtemp())
    >>> store.put(StoredStream.new("cam1", StreamSpec(source="testpattern", classes=["person"])))
    >>> [row.id for row in store.load()]
    ['cam1']
    >>> store.record_tracker_ids("cam1", 64)
    >>> store.history("cam1").tracker_id_ceiling, store.history("cam1").next_epoch
    (64, 0)
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pipeline.errors import ConfigError
from pipeline.redact import redact
from pipeline.service.models import StreamSpec

__all__ = ["IdentifierHistory", "StoredStream", "StreamStore"]

logger = logging.getLogger(__name__)

DATABASE_NAME = "streams.sqlite3"
SCHEMA_VERSION = 2

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS streams ("
    " id TEXT PRIMARY KEY,"
    " spec TEXT NOT NULL,"
    " paused INTEGER NOT NULL DEFAULT 0,"
    " created_at TEXT NOT NULL)",
    # Version 2.
    "CREATE TABLE IF NOT EXISTS ended_streams ("
    " id TEXT PRIMARY KEY,"
    " status TEXT NOT NULL,"
    " ended_at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS video_identifiers ("
    " video_identifier TEXT PRIMARY KEY,"
    " tracker_id_ceiling INTEGER NOT NULL DEFAULT 0,"
    " last_epoch INTEGER NOT NULL DEFAULT -1)",
)

_SELECT_STREAMS = (
    "SELECT s.id, s.spec, s.paused, s.created_at, e.status, e.ended_at"
    " FROM streams s LEFT JOIN ended_streams e ON e.id = s.id"
)


@dataclass(frozen=True)
class StoredStream:
    """One stream: its id, definition, paused flag, creation time, and how it ended if it did.

    Attributes:
        final_status: the stream's status when its source finished by itself (state ``ENDED``);
            None while it is meant to run.
        ended_at: when that happened.
    """

    id: str
    spec: StreamSpec
    paused: bool
    created_at: datetime
    final_status: Mapping[str, Any] | None = None
    ended_at: datetime | None = None

    @classmethod
    def new(cls, stream_id: str, spec: StreamSpec) -> StoredStream:
        return cls(id=stream_id, spec=spec, paused=False, created_at=datetime.now(UTC))

    @property
    def ended(self) -> bool:
        return self.final_status is not None


@dataclass(frozen=True)
class IdentifierHistory:
    """What earlier runs of one video_identifier used (nothing yet: ceiling 0, epoch -1).

    Attributes:
        tracker_id_ceiling: no tracker id above it was ever emitted for the identifier.
        last_epoch: the highest epoch its frames ever had; -1 when it never ran.
    """

    video_identifier: str
    tracker_id_ceiling: int = 0
    last_epoch: int = -1

    @property
    def next_epoch(self) -> int:
        """The epoch the identifier's next run starts at."""
        return self.last_epoch + 1


class StreamStore:
    """The tables above; safe to call from several threads (one lock).

    Every write commits at once: a crash right after ``POST /streams`` answered must not lose the
    stream, and a crash right after an id was reserved must not let it be reused.
    """

    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        """Open (or create, or upgrade) the store.

        Raises:
            ConfigError: the directory or database cannot be created or opened.
        """
        self.state_dir = Path(state_dir).expanduser()
        self.path = self.state_dir / DATABASE_NAME
        self._lock = threading.Lock()
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not self.path.exists():
                # Created with owner-only permissions before SQLite writes a byte of it.
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
            self._connection = sqlite3.connect(self.path, check_same_thread=False)
            with self._connection:
                for statement in _SCHEMA:
                    self._connection.execute(statement)
                self._connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except (OSError, sqlite3.Error) as error:
            raise ConfigError(
                f"cannot use state directory {str(self.state_dir)!r} ({error}): choose a writable "
                "one with --state-dir"
            ) from None

    # ---- stream definitions --------------------------------------------------------------

    def put(self, stream: StoredStream) -> None:
        """Insert or replace the definition of ``stream.id`` (its ending is kept separately)."""
        with self._lock, self._connection:
            self._connection.execute(
                "INSERT OR REPLACE INTO streams (id, spec, paused, created_at) VALUES (?, ?, ?, ?)",
                (
                    stream.id,
                    stream.spec.model_dump_json(exclude_none=True),
                    int(stream.paused),
                    stream.created_at.isoformat(),
                ),
            )

    def update(
        self, stream_id: str, *, spec: StreamSpec | None = None, paused: bool | None = None
    ) -> None:
        """Change the stored spec and/or paused flag of one stream; a missing row stays missing."""
        current = self.get(stream_id)
        if current is None:
            return
        changed = replace(
            current,
            spec=spec if spec is not None else current.spec,
            paused=paused if paused is not None else current.paused,
        )
        self.put(changed)

    def delete(self, stream_id: str) -> None:
        """Forget the stream and its ending (its identifier's history stays: ids never reused)."""
        with self._lock, self._connection:
            self._connection.execute("DELETE FROM streams WHERE id = ?", (stream_id,))
            self._connection.execute("DELETE FROM ended_streams WHERE id = ?", (stream_id,))

    def get(self, stream_id: str) -> StoredStream | None:
        with self._lock:
            row = self._connection.execute(
                f"{_SELECT_STREAMS} WHERE s.id = ?", (stream_id,)
            ).fetchone()
        return _parse(row) if row is not None else None

    def load(self) -> list[StoredStream]:
        """Every stored stream, oldest first; rows that no longer validate are logged and skipped.

        A row can stop validating after an upgrade tightens a field; one such row must not keep
        the server from starting the others.
        """
        with self._lock:
            rows = self._connection.execute(
                f"{_SELECT_STREAMS} ORDER BY s.created_at, s.id"
            ).fetchall()
        streams = []
        for row in rows:
            stream = _parse(row)
            if stream is not None:
                streams.append(stream)
        return streams

    # ---- endings -------------------------------------------------------------------------

    def mark_ended(self, stream_id: str, final_status: Mapping[str, Any]) -> None:
        """Record that the stream's source finished by itself; a missing stream stays missing.

        ``final_status`` must be JSON-ready and redacted (``payloads.jsonable``).
        """
        with self._lock, self._connection:
            self._connection.execute(
                "INSERT OR REPLACE INTO ended_streams (id, status, ended_at)"
                " SELECT id, ?, ? FROM streams WHERE id = ?",
                (json.dumps(final_status), datetime.now(UTC).isoformat(), stream_id),
            )

    def clear_ended(self, stream_id: str) -> None:
        """The stream runs again (restarted on request): it is no longer ended."""
        with self._lock, self._connection:
            self._connection.execute("DELETE FROM ended_streams WHERE id = ?", (stream_id,))

    # ---- identifier history --------------------------------------------------------------

    def history(self, video_identifier: str) -> IdentifierHistory:
        """What earlier runs of ``video_identifier`` used; an empty history if none ran."""
        with self._lock:
            row = self._connection.execute(
                "SELECT tracker_id_ceiling, last_epoch FROM video_identifiers"
                " WHERE video_identifier = ?",
                (video_identifier,),
            ).fetchone()
        if row is None:
            return IdentifierHistory(video_identifier)
        return IdentifierHistory(video_identifier, tracker_id_ceiling=row[0], last_epoch=row[1])

    def record_tracker_ids(self, video_identifier: str, ceiling: int) -> None:
        """Ids up to ``ceiling`` may have been emitted; the stored ceiling only ever rises."""
        self._upsert_max(video_identifier, "tracker_id_ceiling", ceiling)

    def settle_tracker_ids(self, video_identifier: str, highest: int) -> None:
        """After a clean stop: ``highest`` is exactly the largest id emitted (lowers a reservation).

        Only for a caller that knows no frame of the identifier is inside the model any more.
        """
        with self._lock, self._connection:
            self._connection.execute(
                "INSERT INTO video_identifiers (video_identifier, tracker_id_ceiling)"
                " VALUES (?, ?) ON CONFLICT(video_identifier)"
                " DO UPDATE SET tracker_id_ceiling = excluded.tracker_id_ceiling",
                (video_identifier, highest),
            )

    def record_epoch(self, video_identifier: str, epoch: int) -> None:
        """Frames of ``video_identifier`` had ``epoch``; the stored epoch only ever rises."""
        self._upsert_max(video_identifier, "last_epoch", epoch)

    def _upsert_max(self, video_identifier: str, column: str, value: int) -> None:
        assert column in ("tracker_id_ceiling", "last_epoch")
        with self._lock, self._connection:
            self._connection.execute(
                f"INSERT INTO video_identifiers (video_identifier, {column}) VALUES (?, ?)"
                f" ON CONFLICT(video_identifier) DO UPDATE SET {column} ="
                f" MAX({column}, excluded.{column})",
                (video_identifier, value),
            )

    def close(self) -> None:
        with self._lock:
            self._connection.close()


def _parse(row: tuple[str, str, int, str, str | None, str | None]) -> StoredStream | None:
    stream_id, spec_json, paused, created_at, status_json, ended_at = row
    try:
        spec = StreamSpec.model_validate(json.loads(spec_json))
    except (ValidationError, ValueError) as error:
        logger.error(
            "skipping stored stream %s: its definition no longer validates: %s",
            stream_id,
            redact(error),
        )
        return None
    return StoredStream(
        id=stream_id,
        spec=spec,
        paused=bool(paused),
        created_at=datetime.fromisoformat(created_at),
        final_status=json.loads(status_json) if status_json is not None else None,
        ended_at=datetime.fromisoformat(ended_at) if ended_at is not None else None,
    )
