"""Errors a user can cause.

Each carries a message that says what to do; the CLI prints it on one line.
"""

from __future__ import annotations

import functools
from typing import Any

from tracker.errors import InferenceError, ModelLoadError, Sam3StreamError

__all__ = [
    "ConfigError",
    "InferenceError",
    "ModelLoadError",
    "Sam3StreamError",
    "SourceError",
]


class ConfigError(Sam3StreamError, ValueError):
    """A flag, config file field or API field is invalid.

    Attributes:
        field: the option or field at fault (``"threshold"``, ``"video_identifiers"``,
            ``"stall_timeout_s"``), so a caller can point at it (the service's 422 names it)
            without parsing the message; None when no single field is at fault.

    Examples:
        >>> error = ConfigError("threshold must be in [0, 1], got 1.5", field="threshold")
        >>> error.field, str(error)
        ('threshold', 'threshold must be in [0, 1], got 1.5')
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # Keyword-only state is lost by the default pickling (Ray sends errors between
        # processes): rebuild with it.
        return functools.partial(type(self), field=self.field), self.args


class SourceError(Sam3StreamError):
    """A video reference can never work (missing file, unknown scheme, unreadable file)."""
