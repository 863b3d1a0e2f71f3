"""Errors a user can cause.

Each carries a message that says what to do; the CLI prints it on one line.
"""

from __future__ import annotations

from tracker.errors import InferenceError, ModelLoadError, Sam3StreamError

__all__ = [
    "ConfigError",
    "InferenceError",
    "ModelLoadError",
    "Sam3StreamError",
    "SourceError",
]


class ConfigError(Sam3StreamError, ValueError):
    """A flag, config file field or API field is invalid."""


class SourceError(Sam3StreamError):
    """A video reference can never work (missing file, unknown scheme, unreadable file)."""
