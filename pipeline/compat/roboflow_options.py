"""Arguments of Roboflow's ``InferencePipeline`` factories that ported code may still pass.

Two tables, each the one place its rule lives:

- ``ACCEPTED_NO_OPS``: accepted and ignored, because what they configure does not exist here and
  ignoring them changes nothing the caller can observe (a thread pool we do not have);
- ``ROBOFLOW_ONLY_OPTIONS``: refused by name with the reason and what to use instead, because
  ignoring them would silently drop something the caller asked for (a watchdog, a dataset
  upload, another buffering policy).

``api_key`` is accepted and unused by both factories: a parameter of ``init_with_workflow`` (as
in Roboflow's signature), an accepted argument of ``init``. ``sink_mode`` and ``exec_session_id``
are in neither table: they are options of the pipeline itself (``PipelineOptions``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.errors import ConfigError

ACCEPTED_NO_OPS: Mapping[str, str] = {
    "api_key": "nothing here talks to Roboflow's platform (init_with_workflow names it too)",
    "workflows_thread_pool_workers": (
        "there is no workflow thread pool: the one sam3_video step runs on the inference thread"
    ),
    "execution_engine_thread_pool_workers": (
        "there is no execution engine pool: the one sam3_video step runs on the inference thread"
    ),
    "cancel_thread_pool_tasks_on_exit": (
        "there is no thread pool whose tasks could outlive the pipeline"
    ),
    "video_metadata_input_name": (
        "WorkflowVideoMetadata inputs are accepted and unused: every VideoFrame carries its "
        "metadata"
    ),
    "disable_sinks": "the workflows run here hold no sink blocks, so there is nothing to disable",
}
"""Roboflow argument name -> why accepting and ignoring it is harmless here."""

_HOSTED_MODEL = (
    "it tunes Roboflow-hosted detector post-processing; SAM3 is configured with "
    "class_names=, threshold=, model= and model_options="
)
_PLATFORM = "it fetches from the Roboflow platform; pass workflow_specification= (the JSON)"
_FIXED_BUFFERING = (
    "buffering is fixed per source kind (live sources hand the freshest frame so latency stays "
    "bounded, files hand every frame); file_buffer_frames= sizes the file buffer"
)
_ACTIVE_LEARNING = (
    "it uploads frames to a Roboflow dataset and nothing here uploads; record with "
    "sinks.JsonlSink or sinks.VideoFileSink"
)

ROBOFLOW_ONLY_OPTIONS: Mapping[str, str] = {
    "model_id": (
        "Roboflow model ids name hosted detectors and SAM3 finds text concepts; give "
        "class_names= (the concepts) and model= (a Hub id or a local directory)"
    ),
    **dict.fromkeys(
        (
            "class_agnostic_nms",
            "confidence",
            "iou_threshold",
            "max_candidates",
            "max_detections",
            "mask_decode_mode",
            "tradeoff_factor",
        ),
        _HOSTED_MODEL,
    ),
    **dict.fromkeys(
        (
            "workspace_name",
            "workflow_id",
            "workflow_version_id",
            "use_workflow_definition_cache",
            "workflows_dependencies_pre_init",
            "model_manager",
        ),
        _PLATFORM,
    ),
    "workflow_init_parameters": (
        "custom workflow blocks are not run (only sam3_video@v1, segment_anything_2_video@v1 "
        "and SAM3's image blocks); give values of parameter inputs in workflows_parameters="
    ),
    "watchdog": (
        "Roboflow's watchdogs read its VideoSource internals; use status_update_handlers= and "
        "status() (per-stage latency p50/p95, fps, drops)"
    ),
    **dict.fromkeys(
        (
            "source_buffer_filling_strategy",
            "source_buffer_consumption_strategy",
            "decoding_buffer_size",
            "video_processing_mode",
            "max_staleness",
        ),
        _FIXED_BUFFERING,
    ),
    "predictions_queue_size": (
        "the result queue is small and fixed, to keep latency low; drop the argument (slow sinks "
        "show up as dispatch_dropped in status())"
    ),
    "batch_collection_timeout": (
        "a round of frames never waits for a slow source; sink_mode decides whether "
        "on_prediction gets one frame or a list per round"
    ),
    "video_source_properties": (
        "these are OpenCV CAP_PROP settings and sources decode with PyAV; use av_options= "
        "(e.g. {'video_size': '1280x720', 'framerate': '30'} for a webcam)"
    ),
    "active_learning_enabled": _ACTIVE_LEARNING,
    "active_learning_target_dataset": _ACTIVE_LEARNING,
    "active_learning_sink": _ACTIVE_LEARNING,
    "serialize_results": (
        "on_prediction receives sv.Detections; sinks.JsonlSink, sinks.frame_record and "
        "sinks.UDPSink write JSON"
    ),
    "profiling_directory": (
        "there is no workflow profiler; use status() (per-stage latency p50/p95) and "
        "sam3-stream bench"
    ),
}
"""Roboflow-only argument name -> "<why it does not apply here>; <what to do instead>"."""


def refuse_roboflow_only(options: Mapping[str, Any]) -> None:
    """Name the first Roboflow-only argument in ``options`` and why it does not apply here.

    Raises:
        ConfigError: with ``field`` set to the argument's name.

    Examples:
        >>> refuse_roboflow_only({"max_fps": 5})  # not Roboflow-only: nothing happens
        >>> refuse_roboflow_only({"watchdog": object()})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        pipeline.errors.ConfigError: watchdog= is not supported: Roboflow's watchdogs read ...
    """
    for name in options:
        if name in ROBOFLOW_ONLY_OPTIONS:
            raise ConfigError(
                f"{name}= is not supported: {ROBOFLOW_ONLY_OPTIONS[name]}", field=name
            )


def without_accepted_no_ops(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` less the Roboflow arguments that are accepted and ignored (``ACCEPTED_NO_OPS``).

    Examples:
        >>> without_accepted_no_ops({"max_fps": 5, "workflows_thread_pool_workers": 8})
        {'max_fps': 5}
    """
    return {name: value for name, value in options.items() if name not in ACCEPTED_NO_OPS}
