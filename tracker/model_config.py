"""What a caller may pass through to the model: ``Sam3VideoConfig`` fields only.

``Sam3VideoModel.from_pretrained(**kwargs)`` also takes loader switches (``trust_remote_code``,
``output_loading_info``, ``device_map``...), so forwarding a user's mapping unchecked would let a
config file run remote code or change what the loader returns. The overrides a user may give are
the SAM3 video tracker's own tuning fields; anything else is refused by name before loading.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Mapping
from typing import Any

_SUB_CONFIGS = frozenset({"detector_config", "tracker_config"})
"""Whole sub-model configs: replacing one with a mapping breaks the model, so not an override."""


@functools.cache
def config_override_fields() -> frozenset[str]:
    """The ``Sam3VideoConfig`` fields a caller may override (``new_det_thresh``, ...)."""
    from transformers import Sam3VideoConfig

    parameters = inspect.signature(Sam3VideoConfig.__init__).parameters.values()
    own = {p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY}
    return frozenset(own - _SUB_CONFIGS)


def check_config_overrides(overrides: Any) -> dict[str, Any]:
    """``overrides`` as a dict, after checking each name is a ``Sam3VideoConfig`` field.

    Raises:
        ValueError: not a mapping, or a name that is not an override field (named, with the
            fields that are).
    """
    if not isinstance(overrides, Mapping):
        raise ValueError(
            f"model options must be a mapping of Sam3VideoConfig fields, got {overrides!r}"
        )
    allowed = config_override_fields()
    unknown = sorted(str(name) for name in overrides if name not in allowed)
    if unknown:
        raise ValueError(
            f"model option(s) {', '.join(unknown)} are not Sam3VideoConfig fields; "
            f"known: {', '.join(sorted(allowed))}"
        )
    return dict(overrides)
