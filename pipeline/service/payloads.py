"""Turn whatever a pipeline reports into JSON a client may see: plain types, credentials redacted.

A pipeline's ``status().to_dict()`` and its status events carry enums, datetimes, numpy scalars,
dataclasses and strings that may quote a camera URL. Everything that leaves the service goes
through ``jsonable``: strings are redacted, and non-finite floats become null (JSON has no NaN,
and a NaN must not turn a status request into a 500).
"""

from __future__ import annotations

import dataclasses
import enum
import math
import os
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np

from pipeline.redact import redact


def jsonable(value: Any) -> Any:
    """A JSON-ready, redacted copy of ``value``.

    Examples:
        >>> jsonable({"url": "rtsp://u:p@cam/1", "fps": float("nan"), "n": np.int64(3)})
        {'url': 'rtsp://u:***@cam/1', 'fps': None, 'n': 3}
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {redact(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(item) for item in value]
    if isinstance(value, os.PathLike):
        return redact(os.fspath(value))
    return redact(value)
