"""Defaults of ``sam3-stream serve`` that the CLI shows before anything heavy is imported."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_PORT = 9001
DEFAULT_MAX_STREAMS = 16
"""Streams one server runs at once unless told otherwise; one more is answered 429."""


def default_state_dir() -> Path:
    """``$XDG_DATA_HOME/sam3-stream``, else ``~/.local/share/sam3-stream`` (the XDG default)."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local/share")
    return Path(base) / "sam3-stream"
