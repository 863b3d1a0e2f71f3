"""Arguments of Roboflow's ``InferencePipeline`` that ported code may still pass, and why not here.

Roboflow code ported to sam3-stream often still passes these; each is refused by name with the
reason and what to use instead, rather than as an unknown source option.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.errors import ConfigError

_PLATFORM = "fetching workflows from the Roboflow platform is not supported: pass "
_FIXED_BUFFERING = (
    "buffering is fixed per source kind: freshest frame for live sources, every frame for files"
)
_PER_FRAME = "sinks are called once per frame, never with multi-source batches"

ROBOFLOW_ONLY_OPTIONS: Mapping[str, str] = {
    "workspace_name": _PLATFORM + "workflow_specification",
    "workflow_id": _PLATFORM + "workflow_specification",
    "model_id": "give model= (a Hub id or a local directory) and class_names=",
    "watchdog": "use status_update_handlers= and status()",
    "active_learning_enabled": "active learning is a Roboflow platform feature",
    "source_buffer_filling_strategy": _FIXED_BUFFERING,
    "source_buffer_consumption_strategy": _FIXED_BUFFERING,
    "predictions_queue_size": "the result queue is small and fixed, to keep latency low",
    "sink_mode": _PER_FRAME,
    "batch_collection_timeout": _PER_FRAME,
    "workflows_thread_pool_workers": "the one sam3_video step has nothing to run in parallel",
    "serialize_results": "on_prediction receives sv.Detections; sinks.JsonlSink writes JSON",
}
"""Roboflow-only argument name -> why it does not apply here and what to do instead."""


def refuse_roboflow_only(options: Mapping[str, Any]) -> None:
    """Name the first Roboflow-only argument in ``options`` and why it does not apply here.

    Raises:
        ConfigError: with ``field`` set to the argument's name.

    Examples:
        >>> refuse_roboflow_only({"max_fps": 5})  # not Roboflow-only: nothing happens
        >>> refuse_roboflow_only({"watchdog": object()})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        pipeline.errors.ConfigError: watchdog= is not supported: use status_update_handlers=...
    """
    for name in options:
        if name in ROBOFLOW_ONLY_OPTIONS:
            raise ConfigError(
                f"{name}= is not supported: {ROBOFLOW_ONLY_OPTIONS[name]}", field=name
            )
