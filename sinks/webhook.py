"""POST frame records to an HTTP endpoint from a background worker, never blocking the pipeline."""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import supervision as sv

from sinks.base import Sink, SinkState
from sinks.compact import CompactDetections
from sinks.errors import SinkConfigError, WebhookDeliveryError
from sinks.log_throttle import LogThrottle
from sinks.serialize import MaskFormat, check_mask_format, dumps, frame_record

logger = logging.getLogger(__name__)

PERMANENT_STATUS = frozenset(range(400, 500)) - {408, 425, 429}
"""Client errors that a retry cannot fix: the batch is dropped at once. 408/425/429 are retried."""


ABANDON_GRACE_S = 1.0
"""How long ``close`` waits for a request in flight once the drain timeout has passed."""


def check_webhook_url(url: str) -> None:
    """Refuse a URL whose host is not plain to see; the message never repeats the URL.

    An ``@`` after the host (``http://user:pa/ss@host/``: is ``pa/ss`` a password or a path?) makes
    the URL ambiguous: an HTTP client would post to ``user``, and a name built from it would show
    the password. Percent-encoding the ``@`` (``%40``) removes the doubt.

    Raises:
        SinkConfigError: not ``http://`` or ``https://``, no host, a bad port, or an ``@`` after
            the host.
    """
    if not url.startswith(("http://", "https://")):
        raise SinkConfigError("a webhook URL must start with http:// or https://")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        parts = None
    if parts is None or not parts.hostname or "@" in parts.path + parts.query + parts.fragment:
        raise SinkConfigError(
            "a webhook URL needs a host and a numeric port, and every '/', '?', '#', '@' or space "
            "in its user name or password percent-encoded (%2F, %3F, %23, %40, %20)"
        )


def webhook_display_url(url: str) -> str:
    """The URL as logs and status may show it: scheme, host and port; the rest is ``***``.

    User names, passwords, paths and query strings of webhooks are secrets (Slack, Discord and
    most chat hooks put the token in the path). ``pipeline.redact`` hides the same parts of a
    ``webhook:URL`` spec in free text. ``url`` has passed ``check_webhook_url``.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    hidden = parts.path not in ("", "/") or parts.query or parts.fragment
    return urlunsplit((parts.scheme, netloc, "/***" if hidden else parts.path, "", ""))


@dataclass(frozen=True)
class _FrameMeta:
    """What a record needs from a ``VideoFrame``; queued instead of the frame and its big image."""

    video_identifier: str
    source_id: int
    frame_id: int
    epoch: int
    frame_timestamp: datetime | None
    width: int
    height: int

    @classmethod
    def of(cls, frame: Any) -> _FrameMeta:
        height, width = frame.image.shape[:2]
        return cls(
            video_identifier=frame.video_identifier,
            source_id=frame.source_id,
            frame_id=frame.frame_id,
            epoch=frame.epoch,
            frame_timestamp=frame.frame_timestamp,
            width=width,
            height=height,
        )


class WebhookSink(Sink):
    """POSTs each frame's record (schema: ``sinks.serialize``) as JSON to ``url``.

    ``on_prediction`` only queues (masks cropped and bit-packed, see ``sinks.compact``, so a long
    outage holds little memory); a worker thread serialises and posts. Failed posts (connection
    errors, timeouts, 5xx, 408/425/429) are retried with exponential backoff; other 4xx answers and
    batches that exhaust their retries are dropped, counted and reported to the error listeners.
    When the queue is full the oldest frame is dropped and counted, so a dead endpoint costs a
    bounded amount of memory and never slows the stream.

    The body is the frame record itself when ``batch_frames`` is 1, else a JSON array of up to
    ``batch_frames`` records (a partial batch is sent on ``flush()`` and ``close()``).

    Args:
        url: ``http://`` or ``https://`` endpoint.
        headers: extra request headers (e.g. ``{"Authorization": "Bearer ..."}``).
        batch_frames: frames per POST.
        timeout_s: per-request timeout.
        max_queue: frames held while the endpoint is slow or down; beyond it the oldest go.
        mask_format: ``"rle"``, ``"polygon"`` or ``"none"`` (smallest bodies).
        max_retries: retries per batch before it is dropped; None retries until ``close``.
        backoff_s: first retry delay; doubles per retry up to ``max_backoff_s``.
        max_backoff_s: longest delay between retries.
        drain_timeout_s: how long ``close`` keeps delivering what is queued before dropping it.
    """

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        batch_frames: int = 1,
        timeout_s: float = 5.0,
        max_queue: int = 64,
        mask_format: str = "rle",
        max_retries: int | None = 5,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        drain_timeout_s: float = 10.0,
    ) -> None:
        check_webhook_url(url)
        if batch_frames < 1 or max_queue < 1:
            raise SinkConfigError("webhook batch_frames and max_queue must be at least 1")
        self._shown_url = webhook_display_url(url)
        super().__init__(f"webhook:{self._shown_url}")
        self.url = url
        self.batch_frames = batch_frames
        self.max_queue = max_queue
        self.mask_format: MaskFormat = check_mask_format(mask_format)
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.drain_timeout_s = drain_timeout_s
        self._client = httpx.Client(
            timeout=timeout_s, headers={"Content-Type": "application/json", **(headers or {})}
        )
        self._queue: deque[tuple[CompactDetections, _FrameMeta]] = deque()
        self._changed = threading.Condition()
        self._in_flight = 0
        self._flushers = 0
        self._draining = False
        self._abandon = threading.Event()
        self._retry_log = LogThrottle()
        self._worker = threading.Thread(target=self._run, name=f"sink-{self.name}", daemon=True)
        self._worker.start()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued is delivered or dropped; False if ``timeout`` passed."""
        with self._changed:
            self._flushers += 1
            self._changed.notify_all()
            try:
                return self._changed.wait_for(
                    lambda: not self._queue and not self._in_flight, timeout
                )
            finally:
                self._flushers -= 1

    def _write(self, detections: sv.Detections, frame: Any) -> None:
        compact = CompactDetections.of(detections, keep_masks=self.mask_format != "none")
        item = (compact, _FrameMeta.of(frame))
        with self._changed:
            if self._state is not SinkState.OPEN:
                self.stats.add(dropped=1)
                return
            if len(self._queue) >= self.max_queue:
                self._queue.popleft()
                self.stats.add(dropped=1)
            self._queue.append(item)
            self._changed.notify_all()

    def _batch_ready(self) -> bool:
        return (
            self._abandon.is_set()
            or self._draining
            or len(self._queue) >= self.batch_frames
            or (bool(self._queue) and self._flushers > 0)
        )

    def _run(self) -> None:
        try:
            self._deliver_until_closed()
        finally:
            self._client.close()

    def _deliver_until_closed(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(self._batch_ready)
                if self._abandon.is_set() or not self._queue:
                    return  # draining finished, or close gave up waiting
                count = min(self.batch_frames, len(self._queue))
                batch = [self._queue.popleft() for _ in range(count)]
                self._in_flight = count
            try:
                self._deliver(batch)
            except Exception as error:  # a bug must not kill the worker and freeze the queue
                logger.exception("%s: unexpected error delivering a batch", self.name)
                self.stats.add(dropped=len(batch))
                self._report_error(error)
            finally:
                with self._changed:
                    self._in_flight = 0
                    self._changed.notify_all()

    def _body(self, batch: list[tuple[CompactDetections, _FrameMeta]]) -> bytes:
        records = [
            frame_record(
                compact.restore(),
                meta,
                mask_format=self.mask_format,
                size=(meta.width, meta.height),
            )
            for compact, meta in batch
        ]
        return dumps(records[0] if self.batch_frames == 1 else records).encode()

    def _deliver(self, batch: list[tuple[CompactDetections, _FrameMeta]]) -> None:
        body = self._body(batch)
        attempt = 0
        while True:
            permanent = False
            try:
                response = self._client.post(self.url, content=body)
            except httpx.HTTPError as error:  # its message may quote the URL: show our name's
                problem = f"{type(error).__name__}: {error}".replace(self.url, self._shown_url)
            else:
                if response.is_success:
                    self.stats.add(frames_written=len(batch))
                    return
                problem = f"HTTP {response.status_code}"
                permanent = response.status_code in PERMANENT_STATUS
            out_of_retries = self.max_retries is not None and attempt >= self.max_retries
            if permanent or out_of_retries or self._abandon.is_set():
                self._give_up(batch, attempt + 1, problem)
                return
            delay = min(self.backoff_s * 2**attempt, self.max_backoff_s)
            attempt += 1
            self.stats.add(retries=1)
            suppressed = self._retry_log.allow()
            if suppressed is not None:
                logger.warning(
                    "%s: %s; retrying in %.1fs (%d similar warnings suppressed)",
                    self.name,
                    problem,
                    delay,
                    suppressed,
                )
            if self._abandon.wait(delay):
                self._give_up(batch, attempt, problem)
                return

    def _give_up(self, batch: list[Any], attempts: int, problem: str) -> None:
        self.stats.add(dropped=len(batch))
        self._report_error(
            WebhookDeliveryError(
                f"{self.name}: dropped {len(batch)} frame(s) after {attempts} attempt(s): {problem}"
            )
        )

    def _close(self) -> None:
        with self._changed:
            self._draining = True
            self._changed.notify_all()
        self._worker.join(self.drain_timeout_s)
        if self._worker.is_alive():
            self._abandon.set()
            with self._changed:
                self._changed.notify_all()
            # A request in flight cannot be interrupted; the daemon worker counts it when it
            # returns and closes the client then. close() stays bounded instead of waiting it out.
            self._worker.join(ABANDON_GRACE_S)
        with self._changed:
            left = len(self._queue)
            self._queue.clear()
        if left:
            logger.warning("%s: closed with %d frame(s) undelivered", self.name, left)
            self.stats.add(dropped=left)
