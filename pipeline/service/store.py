"""Stream definitions that survive a restart: one SQLite file under the state directory.

Only streams created over the API are stored; config streams come from the YAML at every boot.
The source is stored as given, credentials included, because the stream needs them to reconnect
after a restart: the file is created readable by its owner only (0600, directory 0700).

Examples:
    >>> import tempfile
    >>> from pipeline.errors import ConfigError
from pipeline.redact import redact
from pipeline.service.models import StreamSpec
    >>> store = StreamStore(tempfile.mkdtemp())
    >>> store.put(StoredStream.new("cam1", StreamSpec(source="testpattern", classes=["person"])))
    >>> [row.id for row in store.load()]
    ['cam1']
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from pipeline.errors import ConfigError
from pipeline.redact import redact
from pipeline.service.models import StreamSpec

__all__ = ["StoredStream", "StreamStore"]

logger = logging.getLogger(__name__)

DATABASE_NAME = "streams.sqlite3"
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class StoredStream:
    """One row: the stream's id, its definition, whether it was paused, and when it was made."""

    id: str
    spec: StreamSpec
    paused: bool
    created_at: datetime

    @classmethod
    def new(cls, stream_id: str, spec: StreamSpec) -> StoredStream:
        return cls(id=stream_id, spec=spec, paused=False, created_at=datetime.now(UTC))


class StreamStore:
    """CRUD over the ``streams`` table; safe to call from several threads (one lock).

    Every write commits at once: a crash right after ``POST /streams`` answered must not lose the
    stream.
    """

    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        """Open (or create) the store.

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
                self._connection.execute(
                    "CREATE TABLE IF NOT EXISTS streams ("
                    " id TEXT PRIMARY KEY,"
                    " spec TEXT NOT NULL,"
                    " paused INTEGER NOT NULL DEFAULT 0,"
                    " created_at TEXT NOT NULL)"
                )
                self._connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except (OSError, sqlite3.Error) as error:
            raise ConfigError(
                f"cannot use state directory {str(self.state_dir)!r} ({error}): choose a writable "
                "one with --state-dir"
            ) from None

    def put(self, stream: StoredStream) -> None:
        """Insert or replace the row of ``stream.id``."""
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
        with self._lock, self._connection:
            self._connection.execute("DELETE FROM streams WHERE id = ?", (stream_id,))

    def get(self, stream_id: str) -> StoredStream | None:
        with self._lock:
            row = self._connection.execute(
                "SELECT id, spec, paused, created_at FROM streams WHERE id = ?", (stream_id,)
            ).fetchone()
        return _parse(row) if row is not None else None

    def load(self) -> list[StoredStream]:
        """Every stored stream, oldest first; rows that no longer validate are logged and skipped.

        A row can stop validating after an upgrade tightens a field; one such row must not keep
        the server from starting the others.
        """
        with self._lock:
            rows = self._connection.execute(
                "SELECT id, spec, paused, created_at FROM streams ORDER BY created_at, id"
            ).fetchall()
        streams = []
        for row in rows:
            stream = _parse(row)
            if stream is not None:
                streams.append(stream)
        return streams

    def close(self) -> None:
        with self._lock:
            self._connection.close()


def _parse(row: tuple[str, str, int, str]) -> StoredStream | None:
    stream_id, spec_json, paused, created_at = row
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
    )
