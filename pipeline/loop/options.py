"""Checks of ``InferencePipeline.init`` arguments, each failing with a ``ConfigError`` naming it.

Kept apart from the loop so that every user-facing rule about arguments is in one place, and so
that the service can run the same checks on a request body before it builds anything.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pipeline.errors import ConfigError
from pipeline.sources import VideoReference
from tracker.inputs import check_threshold, normalise_class_names

_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")

# Arguments of Roboflow's InferencePipeline that code may carry over, and why they do not apply.
_PLATFORM = "fetching workflows from the Roboflow platform is not supported: pass "
ROBOFLOW_ONLY_OPTIONS = {
    "workspace_name": _PLATFORM + "workflow_specification",
    "workflow_id": _PLATFORM + "workflow_specification",
    "model_id": "give model= (a Hub id or a local directory) and class_names=",
    "watchdog": "use status_update_handlers= and status()",
    "active_learning_enabled": "active learning is a Roboflow platform feature",
    "source_buffer_filling_strategy": (
        "buffering is fixed per source kind: freshest frame for live sources, every frame for files"
    ),
    "source_buffer_consumption_strategy": (
        "buffering is fixed per source kind: freshest frame for live sources, every frame for files"
    ),
    "predictions_queue_size": "the result queue is small and fixed, to keep latency low",
    "sink_mode": "sinks are called once per frame, never with multi-source batches",
    "batch_collection_timeout": "sinks are called once per frame, never with multi-source batches",
    "workflows_thread_pool_workers": "the one sam3_video step has nothing to run in parallel",
    "serialize_results": "on_prediction receives sv.Detections; sinks.JsonlSink writes JSON",
}


def refuse_roboflow_only(options: Mapping[str, Any]) -> None:
    """Name the first Roboflow-only argument in ``options`` and why it does not apply here."""
    for name in options:
        if name in ROBOFLOW_ONLY_OPTIONS:
            raise ConfigError(f"{name}= is not supported: {ROBOFLOW_ONLY_OPTIONS[name]}")


def check_class_names(class_names: Any) -> tuple[str, ...]:
    """Normalised concepts (``"a, b"`` or a list); at least one."""
    try:
        names = normalise_class_names(class_names)
    except (ValueError, TypeError) as error:
        raise ConfigError(f"class_names: {error}") from None
    if not names:
        raise ConfigError(
            "class_names is empty: give at least one concept, e.g. class_names='person, forklift'"
        )
    return names


def check_threshold_option(threshold: Any) -> float:
    try:
        return check_threshold(threshold)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def check_max_fps(max_fps: Any) -> float | None:
    if max_fps is None:
        return None
    if isinstance(max_fps, bool) or not isinstance(max_fps, int | float) or not max_fps > 0:
        raise ConfigError(f"max_fps must be a number > 0 (or None for no cap), got {max_fps!r}")
    return float(max_fps)


def check_device(device: Any) -> str:
    if not isinstance(device, str) or not _DEVICE.match(device):
        raise ConfigError(f"device must be auto, cpu, mps, cuda or cuda:N, got {device!r}")
    return device


def check_sinks(on_prediction: Any) -> Callable[..., Any] | list[Callable[..., Any]]:
    """A callable, or a non-empty list of callables the pipeline fans out to."""
    if isinstance(on_prediction, list | tuple):
        if on_prediction and all(callable(sink) for sink in on_prediction):
            return list(on_prediction)
    elif callable(on_prediction):
        return on_prediction
    raise ConfigError(
        "on_prediction must be a callable sink(predictions, video_frame) or a non-empty list of "
        f"them, got {on_prediction!r}"
    )


def check_handlers(handlers: Any) -> list[Callable[..., Any]]:
    if handlers is None:
        return []
    if callable(handlers):
        return [handlers]
    if isinstance(handlers, list | tuple) and all(callable(handler) for handler in handlers):
        return list(handlers)
    raise ConfigError("status_update_handlers must be a list of callables handler(status_update)")


def as_references(video_reference: Any) -> list[VideoReference]:
    """One reference or a list of them, as a list (checked one by one when sources are made)."""
    if isinstance(video_reference, str | int | os.PathLike):
        return [video_reference]
    if isinstance(video_reference, Sequence) and video_reference:
        return list(video_reference)
    raise ConfigError(
        "video_reference must be a path, URL, camera index or 'testpattern', or a non-empty list "
        f"of them; got {video_reference!r}"
    )
