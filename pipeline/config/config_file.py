"""Reading a YAML config file and validating its fields, with one error style for every mistake.

``run --config`` and ``serve --config`` files both go through here, so a missing file, broken
YAML or a bad field reads the same whichever command the user ran, always on one line::

    cannot read config cam.yaml: No such file or directory
    cam.yaml: not UTF-8 text (byte 0xff at offset 0); save the config as UTF-8
    cam.yaml: not valid YAML at line 3, column 9: expected ',' or ']', but got '<stream end>'
    cam.yaml: expected a mapping of fields, got list
    cam.yaml: source_options.stall_timeout_s: Input should be greater than 0
    --threshold: Input should be less than or equal to 1     (a value given by a flag)

Messages go through ``redact``: a camera URL in a config must not leak its password into an
error printed on a shared terminal.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from pipeline.errors import ConfigError
from pipeline.redact import redact

ConfigModel = TypeVar("ConfigModel", bound=BaseModel)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The raw mapping of a YAML config file, not validated yet (an empty file is ``{}``).

    Raises:
        ConfigError: the file is missing, not UTF-8, not YAML, or not a mapping; one line.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read config {path}: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {error.object[error.start]:#04x} at offset "
            f"{error.start}); save the config as UTF-8"
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of fields, got {type(data).__name__}")
    return data


def validate_config(
    model: type[ConfigModel],
    data: Any,
    *,
    origin: str,
    flags: Mapping[str, str] | None = None,
) -> ConfigModel:
    """Validate ``data`` (a mapping, as YAML gives it) into ``model``.

    Args:
        model: the pydantic model of the whole file.
        data: the raw values.
        origin: what errors name first, e.g. the file path.
        flags: top-level field -> the command-line flag that set it, so errors name the flag.

    Raises:
        ConfigError: one line naming the first bad field (and how many more there are); its
            ``field`` is the field's dotted path (``streams.0.threshold``).
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{origin}: expected a mapping of fields, got {type(data).__name__}")
    try:
        return model.model_validate(dict(data))
    except ValidationError as error:
        first = error.errors()[0]
        location = [str(part) for part in first["loc"]]
        field = ".".join(location) or None
        flag = (flags or {}).get(location[0]) if location else None
        where = flag or f"{origin}: {field or '(top level)'}"
        raise ConfigError(f"{where}: {_message(error)}", field=field) from None


def _message(error: ValidationError) -> str:
    """The first problem in words a config author uses, and how many more there are."""
    first = error.errors()[0]
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        message = "unknown field"
    elif first["type"] == "missing":
        message = "required field is missing"
    message = re.sub(r"^Value error, ", "", message)
    more = len(error.errors()) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return redact(message) + suffix
