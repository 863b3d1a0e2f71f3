"""Turn what a user typed (path, URL, index, ``testpattern``) into the right ``VideoSource``.

The rules, in one place:

====================================  ======================================================
reference                             source
====================================  ======================================================
``int`` or all-digit ``str`` (``0``)  ``WebcamSource`` (camera index)
``/dev/videoN``                       ``WebcamSource``
``testpattern[?fps=..&size=..]``      ``TestPatternSource``
``rtsp(s)://``, ``rtmp(s)://``,       ``LiveStreamSource`` (HLS is just an ``http(s)`` URL to
``http(s)://``                        an ``.m3u8`` playlist)
``file:///path`` or any other string  ``FileSource`` (must exist and decode, checked now)
====================================  ======================================================

Anything that can never work (a missing or undecodable file, an unknown URL scheme, a malformed
URL, a value of the wrong type) raises ``SourceError`` here, at once; anything that might work later
(a camera that is off) is retried by the source in the background.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from pipeline.errors import SourceError
from pipeline.redact import redact
from pipeline.sources.base import StateListener, VideoSource
from pipeline.sources.file import FileSource
from pipeline.sources.live import LIVE_SCHEMES, LiveStreamSource
from pipeline.sources.source_options import SourceOptions
from pipeline.sources.testpattern import TESTPATTERN, TestPatternSource
from pipeline.sources.webcam import WebcamSource

logger = logging.getLogger(__name__)

VideoReference = str | int | os.PathLike[str]

_SCHEME = re.compile(r"^(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*)://")
_V4L2_DEVICE = re.compile(r"^/dev/video\d+$")


def make_source(
    reference: VideoReference,
    *,
    source_id: int = 0,
    video_identifier: str | None = None,
    options: SourceOptions | None = None,
    on_state_change: StateListener | None = None,
    first_frame_id: int = 1,
    **option_fields: Any,
) -> VideoSource:
    """Make the source for one reference (not started).

    Args:
        reference: see the module table.
        source_id: index in the pipeline.
        video_identifier: unique name; defaults to the redacted reference.
        options: source tuning; or pass its fields as keyword arguments (``realtime=True``).
        on_state_change: called on every state change.
        first_frame_id: the id of its first frame (a rerun continues the previous run's ids).

    Raises:
        SourceError: the reference can never work.
        ConfigError: an unknown or invalid option.

    Examples:
        >>> make_source("testpattern?fps=5&size=64x48").kind
        'testpattern'
    """
    if options is None:
        options = SourceOptions.from_kwargs(**option_fields)
    elif option_fields:
        options = SourceOptions.from_kwargs(**{**_as_dict(options), **option_fields})
    common: dict[str, Any] = {
        "source_id": source_id,
        "video_identifier": video_identifier,
        "options": options,
        "on_state_change": on_state_change,
        "first_frame_id": first_frame_id,
    }
    if isinstance(reference, bool) or not isinstance(reference, str | int | os.PathLike):
        raise SourceError(
            f"a video reference must be a path, URL, camera index or 'testpattern', "
            f"got {type(reference).__name__}: {redact(reference)!r}"
        )
    if isinstance(reference, int):
        return WebcamSource(reference, **common)
    if isinstance(reference, os.PathLike):
        return FileSource(reference, **common)
    text = reference.strip()
    if not text:
        raise SourceError(
            "empty video reference: give a file path, URL, camera index or 'testpattern'"
        )
    if text.isdigit():
        return WebcamSource(int(text), **common)
    if _V4L2_DEVICE.match(text):
        return WebcamSource(text, **common)
    if text == TESTPATTERN or text.startswith(TESTPATTERN + "?"):
        return TestPatternSource(text, **common)
    match = _SCHEME.match(text)
    if match is None:
        return FileSource(text, **common)
    scheme = match["scheme"].lower()
    if scheme == "file":
        return FileSource(unquote(urlsplit(text).path), **common)
    if scheme in LIVE_SCHEMES:
        _check_network_url(text)
        return LiveStreamSource(text, **common)
    raise SourceError(
        f"unknown scheme {scheme!r} in {redact(text)!r}: supported are "
        f"{', '.join(s + '://' for s in LIVE_SCHEMES)}, file://, a file path, a camera index "
        "and 'testpattern'"
    )


def make_sources(
    references: VideoReference | Sequence[VideoReference],
    *,
    video_identifiers: Sequence[str | None] | None = None,
    **kwargs: Any,
) -> list[VideoSource]:
    """Make one source per reference (a single reference or a list), ``source_id`` = position.

    Every reference is checked before any source is returned, so a bad third camera fails the
    whole call instead of leaving two half-made sources behind.
    """
    if isinstance(references, str | int | os.PathLike):
        references = [references]
    references = list(references)
    if not references:
        raise SourceError("no video reference given")
    if video_identifiers is not None and len(video_identifiers) != len(references):
        raise SourceError(
            f"{len(video_identifiers)} video identifiers for {len(references)} sources: give one "
            "per source"
        )
    identifiers = list(video_identifiers or [None] * len(references))
    return [
        make_source(reference, source_id=index, video_identifier=identifier, **kwargs)
        for index, (reference, identifier) in enumerate(zip(references, identifiers, strict=True))
    ]


def _check_network_url(url: str) -> None:
    """Malformed URLs can never connect: say so now rather than retry forever."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        # urllib's message quotes the part it choked on, which may be a piece of the password.
        raise SourceError(
            f"malformed URL {redact(url)!r}: bad port or host (percent-encode '/', '?', '#', '@' "
            "and spaces in a user name or password)"
        ) from None
    if not parts.hostname:
        raise SourceError(f"URL {redact(url)!r} has no host")
    if port == 0:
        raise SourceError(f"URL {redact(url)!r} has port 0")


def _as_dict(options: SourceOptions) -> dict[str, Any]:
    return {name: getattr(options, name) for name in options.__dataclass_fields__}


def describe(reference: VideoReference) -> str:
    """The reference as it may be shown anywhere: a string with credentials redacted."""
    return redact(os.fspath(reference) if isinstance(reference, os.PathLike) else reference)


__all__ = ["VideoReference", "describe", "make_source", "make_sources"]
