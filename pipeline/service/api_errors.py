"""Errors the HTTP service turns into status codes: one class per answer a client can get.

Each carries a message that says what to do. ``error_responses`` maps them to responses in one place
(``ServiceError.status_code``), so a route never builds an error response by hand.
"""

from __future__ import annotations

from pipeline.errors import Sam3StreamError


class ServiceError(Sam3StreamError):
    """Base class: an HTTP status code and a message for the client."""

    status_code = 400


class StreamNotFoundError(ServiceError):
    """No stream has this id (never had one, or it was deleted)."""

    status_code = 404

    def __init__(self, stream_id: str) -> None:
        super().__init__(f"no stream with id {stream_id!r}: GET /streams lists the streams")
        self.stream_id = stream_id


class StreamLimitError(ServiceError):
    """The server already runs as many streams as it was told to."""

    status_code = 429


class StreamConflictError(ServiceError):
    """The request clashes with a stream that exists (same id or video_identifier)."""

    status_code = 409


class InvalidStreamError(ServiceError):
    """A field of a stream request is well-formed JSON but cannot work (unknown scheme, bad sink).

    Answered as 422 with the same body shape as pydantic's validation errors, naming ``field``.
    """

    status_code = 422

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class ModelNotReadyError(ServiceError):
    """The model is still loading (or failed to load); streams cannot start yet."""

    status_code = 503


class WebRTCOfferError(ServiceError):
    """The SDP offer could not be used (malformed, or it offers no video to receive)."""

    status_code = 422


class TrackedObjectNotFoundError(ServiceError):
    """The stream has no live object with this tracker id (never had, ended, or removed)."""

    status_code = 404

    def __init__(self, stream_id: str, tracker_id: int) -> None:
        super().__init__(
            f"tracker_id: stream {stream_id!r} has no live object {tracker_id} (it ended, was "
            f"removed, or never existed): its detections list the live ones"
        )
        self.tracker_id = tracker_id
