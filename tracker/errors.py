"""Errors of the model side that a user can cause or must act on.

``Sam3StreamError`` is the root of every user-facing error in sam3-stream; it lives here, in the
package every other one may import, so the CLI and the service can catch one type.
"""

from __future__ import annotations


class Sam3StreamError(Exception):
    """Base class of every user-facing error of sam3-stream."""


class ModelLoadError(Sam3StreamError):
    """The SAM3 weights could not be loaded: missing, gated, or not a SAM3 video checkpoint."""


class InferenceError(Sam3StreamError):
    """SAM3 failed on one frame. The session was reseeded; the next frame works again."""
