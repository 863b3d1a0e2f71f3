"""YAML pipeline configs (``sam3-stream run --config FILE``), validated by pydantic models.

Every field is checked before anything starts, and a mistake is reported on one line that names
the field: ``configs/cam.yaml: source_options.stall_timeout_s: must be greater than 0``. Unknown
fields are errors too, because a misspelt option silently falling back to its default is the
worst kind of config bug on a camera nobody watches.

Example (``configs/rtsp-camera.yaml``)::

    sources:
      - reference: rtsp://user:password@192.168.1.10:554/stream1
        video_identifier: loading-dock
    classes: [person, forklift]
    threshold: 0.5
    sinks: ["jsonl:detections.jsonl"]
    source_options:
      stall_timeout_s: 5

Visual tracking (``configs/visual-prompts.yaml``): ``prompts`` lists objects to track from each
source's first frame, by box and/or labelled points (schema in ``pipeline.config.prompt_config``);
``classes`` may then be left out::

    prompts:
      - box: [10, 20, 200, 220]
      - points: [[50, 60], [70, 80, 0]]
        class_name: forklift
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from pipeline.config.config_file import read_config_file, validate_config
from pipeline.config.prompt_config import UNNAMED, PromptConfig
from tracker.inputs import normalise_class_names
from tracker.session_rules import DEFAULT_MAX_OBJECTS
from tracker.weights import REAL_MODEL

SINK_KINDS = ("screen", "video", "jsonl", "webhook", "udp")
_DEVICE_PATTERN = r"^(auto|cpu|mps|cuda(:\d+)?)$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceConfig(_Strict):
    """One source: its reference, and optionally the name it goes by.

    A bare string (or camera index) is accepted for ``reference`` alone.
    """

    reference: str | int
    video_identifier: str | None = Field(default=None, min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _bare_reference(cls, value: Any) -> Any:
        if isinstance(value, str | int) and not isinstance(value, bool):
            return {"reference": value}
        return value


class SourceOptionsConfig(_Strict):
    """``pipeline.sources.SourceOptions``, field for field (see its docstring for each one)."""

    realtime: bool = False
    stall_timeout_s: float = Field(default=5.0, gt=0)
    open_timeout_s: float = Field(default=10.0, gt=0)
    max_reconnect_attempts: int | None = Field(default=None, ge=0)
    backoff_initial_s: float = Field(default=0.5, gt=0)
    backoff_max_s: float = Field(default=10.0, gt=0)
    backoff_jitter: float = Field(default=0.25, ge=0, lt=1)
    file_buffer_frames: int = Field(default=4, ge=1)
    rtsp_transport: Literal["tcp", "udp"] = "tcp"
    decoder_threads: int = Field(default=0, ge=0)
    av_options: dict[str, str] = Field(default_factory=dict)
    first_epoch: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _backoff_order(self) -> SourceOptionsConfig:
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError("backoff_max_s must be >= backoff_initial_s")
        return self


class PipelineConfig(_Strict):
    """A whole ``sam3-stream run``: sources, concepts, model, sinks and tuning.

    Attributes:
        sources: one or more references (path, URL, camera index, ``testpattern?...``), each a
            string or ``{reference, video_identifier}``.
        prompts: objects to track by box and/or points from each source's first frame (visual
            tracking); one entry, one object.
        classes: concepts to track, a list or one comma-separated string; may be empty when
            ``prompts`` are given.
        threshold: minimum detection score in [0, 1].
        model: Hub id or local directory of a SAM3 video checkpoint.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        max_fps: most frames per second processed per source; null for no cap.
        sinks: sink specs (``screen``, ``video:PATH``, ``jsonl:PATH``, ``webhook:URL``,
            ``udp:HOST:PORT``); none means detections are only counted in the status.
        source_options: reconnect, stall and buffering tuning for every source.
        max_objects: live tracks per source at most (>= 1); when a new object needs room the
            stalest track is evicted. null: the tracker's default budget
            (``tracker.session_rules.DEFAULT_MAX_OBJECTS``).
        model_options: ``Sam3VideoConfig`` overrides, e.g. ``{new_det_thresh: 0.6}``; prefer
            ``max_objects`` to the port's ``max_num_objects``, which refuses new objects once full.
        show_progress: progress bar for files, periodic status line for live sources.
        status_interval_s: seconds between live status lines.
    """

    sources: list[SourceConfig] = Field(min_length=1)
    # Before classes, which are validated knowing whether there are prompts.
    prompts: list[PromptConfig] = Field(default_factory=list)
    classes: list[str] = Field(default_factory=list, validate_default=True)
    threshold: float = Field(default=0.5, ge=0, le=1)
    model: str = Field(default=REAL_MODEL, min_length=1)
    device: str = Field(default="auto", pattern=_DEVICE_PATTERN)
    max_fps: float | None = Field(default=None, gt=0)
    sinks: list[str] = Field(default_factory=list)
    source_options: SourceOptionsConfig = Field(default_factory=SourceOptionsConfig)
    max_objects: int | None = Field(default=None, ge=1, validate_default=True)
    model_options: dict[str, Any] = Field(default_factory=dict)
    show_progress: bool = True
    status_interval_s: float = Field(default=10.0, gt=0)

    @field_validator("classes", mode="before")
    @classmethod
    def _split_classes(cls, value: Any) -> Any:
        if isinstance(value, str):
            return list(normalise_class_names(value))
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return list(normalise_class_names(value))
        return value

    @field_validator("classes")
    @classmethod
    def _concepts_or_prompts(cls, value: list[str], info: ValidationInfo) -> list[str]:
        # prompts missing from info.data failed validation: that is the error to report.
        if not value and info.data.get("prompts", [None]) == []:
            raise ValueError(
                "List should have at least 1 item: a concept to track, unless prompts "
                "(--box / --point) are given"
            )
        return value

    @field_validator("max_objects")
    @classmethod
    def _room_for_prompts(cls, value: int | None, info: ValidationInfo) -> int | None:
        # Each prompt is a live object for good; the tracker would refuse the one past the budget.
        budget = DEFAULT_MAX_OBJECTS if value is None else value
        prompted = len(info.data.get("prompts", []))
        if prompted > budget:
            raise ValueError(
                f"{prompted} prompted objects do not fit {budget} live objects per source "
                f"({'the default' if value is None else 'max_objects'}); raise max_objects"
            )
        return value

    @field_validator("sinks")
    @classmethod
    def _known_sink_kinds(cls, value: list[str]) -> list[str]:
        for spec in value:
            kind = spec.strip().partition(":")[0].lower()
            if kind not in SINK_KINDS:
                raise ValueError(
                    f"unknown sink {spec!r}: expected screen, video:PATH, jsonl:PATH, "
                    "webhook:URL or udp:HOST:PORT"
                )
        return value

    @property
    def references(self) -> list[str | int]:
        return [source.reference for source in self.sources]

    @property
    def video_identifiers(self) -> list[str | None]:
        return [source.video_identifier for source in self.sources]


def parse_config(
    data: Any, *, origin: str, flags: Mapping[str, str] | None = None
) -> PipelineConfig:
    """Validate ``data`` (a dict, as YAML gives it) into a ``PipelineConfig``.

    Args:
        data: the raw values.
        origin: what to name in errors, e.g. the file path.
        flags: field name -> the command-line flag that set it, so errors name the flag.

    Raises:
        ConfigError: one line naming the first bad field (and how many more there are).
    """
    config = validate_config(PipelineConfig, data, origin=origin, flags=flags)
    for index, prompt in enumerate(config.prompts):
        if prompt.origin == UNNAMED:  # not from a flag: name the file's entry
            prompt.named(f"{origin}: prompts.{index}")
    return config


def load_config(path: str | Path) -> PipelineConfig:
    """Read and validate a YAML config file.

    Raises:
        ConfigError: the file is missing, not YAML, or has a bad field; one line.
    """
    return parse_config(read_config_file(path), origin=str(path))
