"""Errors a user can cause through a sink: a bad spec, a bad argument, no screen to draw on.

Each message says what to do, on one line, so the CLI can print it as is. ``sinks`` cannot import
``pipeline.errors`` (the arrows point the other way); ``SinkError`` derives from the shared root
``tracker.errors.Sam3StreamError`` so the CLI and service catch one type.
"""

from __future__ import annotations

from tracker.errors import Sam3StreamError


class SinkError(Sam3StreamError):
    """Base class of every user-facing error raised by ``sinks``."""


class SinkConfigError(SinkError, ValueError):
    """An argument given to a sink can never work (unknown mask format, bad URL, bad port)."""


class SinkSpecError(SinkConfigError):
    """A ``--sink`` string (or its YAML twin) does not name a sink we know how to build."""


class DisplayUnavailableError(SinkError, RuntimeError):
    """An on-screen window was asked for where no display can be opened.

    Raised once, at the first frame; the screen sink then stays failed instead of raising per
    frame.
    """


class SinkWriteError(SinkError):
    """A sink could not write its output (disk full, file system gone, no permission any more).

    The sink stops taking frames for good (later ones are counted as dropped): what it would write
    next is lost too, so ``sam3-stream run`` ends the run on it rather than carry on without output.
    """


class WebhookDeliveryError(SinkError):
    """A batch could not be delivered to the webhook after every retry; it was dropped."""
