"""Request and response bodies of the HTTP service, and the stream definition it stores.

``StreamSpec`` is what defines a stream: the body of ``POST /streams``, the row kept in SQLite, and
(with an ``id``) an entry of the YAML config. Validation lives here, so a bad field is a 422 that
names it before anything is started. Unknown fields are refused (``extra="forbid"``): a typo such as
``treshold`` must not silently fall back to the default.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator

from pipeline.redact import redact
from pipeline.service.log_text import has_control_characters
from tracker.inputs import MAX_CLASS_NAMES

STREAM_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
"""Stream ids and video identifiers: safe in URLs, file names and Prometheus labels."""

MAX_OBJECTS_LIMIT = 10_000
"""The largest per-stream budget accepted: the port's own ``max_num_objects`` default."""

ClassName = Annotated[str, Field(min_length=1, max_length=200)]

TOO_MANY_CLASSES = (
    f"at most {MAX_CLASS_NAMES} class names are allowed, counting duplicates and blanks"
)
CONTROL_CHARACTERS = "must not contain control characters (newline, tab, escape, NUL, ...)"


def normalise_classes(value: Any) -> Any:
    """Accept a list or a comma-separated string (as the tracker does); strip, drop empty, dedupe.

    Normalised here as well as in the tracker so that what the API stores and reports is exactly
    the list the tracker uses, and an all-blank list is a 422 instead of a stream that never
    detects anything. The count is checked before any entry is looked at (a 30,000-entry list is
    refused at once), and de-duplication is one pass: this runs on the event loop.
    """
    if isinstance(value, str):
        if value.count(",") >= MAX_CLASS_NAMES:
            raise ValueError(TOO_MANY_CLASSES)
        value = value.split(",")
    if not isinstance(value, list):
        return value
    if len(value) > MAX_CLASS_NAMES:
        raise ValueError(TOO_MANY_CLASSES)
    names: list[Any] = []
    seen: set[str] = set()
    for name in value:
        if isinstance(name, str):
            name = name.strip()
            if not name or name in seen:
                continue
            if has_control_characters(name):
                raise ValueError(CONTROL_CHARACTERS)
            seen.add(name)
        names.append(name)
    return names


def refuse_control_characters(value: Any) -> Any:
    """Refuse a string, or a list holding one, with a newline, escape, NUL or other control char.

    No path or URL has one, and the text would reach log lines (where it could forge a line).
    """
    texts = value if isinstance(value, list) else [value]
    if any(isinstance(text, str) and has_control_characters(text) for text in texts):
        raise ValueError(CONTROL_CHARACTERS)
    return value


class SourceOptionsBody(BaseModel):
    """The source tuning a client may set (``pipeline.sources.SourceOptions``, a safe subset).

    Attributes:
        realtime: files only: pace the file like a live camera (drops frames if the model is slow).
        stall_timeout_s: live sources: seconds without a frame before reconnecting.
        open_timeout_s: live sources: longest wait for a connection to open.
        max_reconnect_attempts: live sources: give up after this many failures in a row
            (absent: retry forever).
        rtsp_transport: ``tcp`` (default) or ``udp``.
    """

    model_config = ConfigDict(extra="forbid")

    realtime: bool | None = None
    stall_timeout_s: float | None = Field(default=None, gt=0, le=3600)
    open_timeout_s: float | None = Field(default=None, gt=0, le=3600)
    max_reconnect_attempts: int | None = Field(default=None, ge=0, le=1_000_000)
    rtsp_transport: Literal["tcp", "udp"] | None = None

    def as_kwargs(self) -> dict[str, Any]:
        """The fields that were set, as ``InferencePipeline.init(**source_options)`` takes them."""
        return self.model_dump(exclude_none=True)


class StreamSpec(BaseModel):
    """What a stream is: one source, the concepts to find in it, and where results go.

    Attributes:
        source: file path, ``rtsp(s)://``, ``rtmp://``, ``http(s)://`` URL, camera index or
            ``testpattern``. Credentials in URLs are kept (the source needs them) but never shown.
        classes: the concepts to segment and track, e.g. ``["person", "forklift"]``.
        threshold: minimum detection confidence, in [0, 1].
        max_fps: cap on frames processed per second (files wait, live sources drop).
        sinks: extra outputs, as ``sam3-stream run --sink`` takes them (``jsonl:PATH``,
            ``video:PATH``, ``webhook:URL``, ``udp:HOST:PORT``); ``screen`` is refused on a server.
        video_identifier: the tracker session name; defaults to the stream id.
        source_options: source tuning (see ``SourceOptionsBody``).
        max_objects: live tracks at most in this stream (>= 1): when a new object needs room the
            stalest track is evicted. Absent: the server's budget (``serve --max-objects``).
    """

    model_config = ConfigDict(extra="forbid")

    source: str = Field(min_length=1, max_length=4096, examples=["rtsp://127.0.0.1:8554/cam"])
    classes: Annotated[list[ClassName], Field(min_length=1, max_length=MAX_CLASS_NAMES)] = Field(
        examples=[["person", "forklift"]]
    )
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    max_fps: float | None = Field(default=None, gt=0, le=1000)
    sinks: list[Annotated[str, Field(min_length=1, max_length=4096)]] = Field(
        default_factory=list, max_length=16
    )
    video_identifier: str | None = Field(default=None, pattern=STREAM_ID_PATTERN)
    source_options: SourceOptionsBody | None = None
    max_objects: int | None = Field(default=None, ge=1, le=MAX_OBJECTS_LIMIT)

    _normalise_classes = field_validator("classes", mode="before")(normalise_classes)
    _printable_sinks = field_validator("sinks")(refuse_control_characters)

    @field_validator("source")
    @classmethod
    def _source_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("source must not be blank: give a file path, URL or camera index")
        return str(refuse_control_characters(value.strip()))


class ConfiguredStream(StreamSpec):
    """A stream of the YAML config: a ``StreamSpec`` with the id the operator chose."""

    id: str = Field(pattern=STREAM_ID_PATTERN)


class StreamPatch(BaseModel):
    """``PATCH /streams/{id}``: change what a running stream looks for.

    A class change applies to the running tracker session from the next frame on: a removed
    class's tracks end, every other track keeps its tracker id, an added class's tracks get new ids
    above every id the stream emitted before.
    """

    model_config = ConfigDict(extra="forbid")

    classes: Annotated[list[ClassName], Field(min_length=1, max_length=MAX_CLASS_NAMES)] | None = (
        None
    )
    threshold: float | None = Field(default=None, ge=0.0, le=1.0)

    _normalise_classes = field_validator("classes", mode="before")(normalise_classes)

    @model_validator(mode="after")
    def _something_to_change(self) -> StreamPatch:
        if self.classes is None and self.threshold is None:
            raise ValueError("give classes, threshold or both")
        return self


class StreamInfo(BaseModel):
    """One stream as the API shows it: its definition (credentials redacted) and live status.

    Attributes:
        max_objects: the stream's own object budget; null: the server's.
        status: the pipeline's ``status()`` (per source: state, epoch, fps, frame counters,
            reconnects, latency percentiles), credentials redacted.
        worker: the Ray worker the stream runs on (``worker-0``); null in-process, and while a
            stream whose worker died waits for room (``status.state`` is ``WAITING`` then).
    """

    id: str
    source: str
    classes: list[str]
    threshold: float
    max_fps: float | None
    sinks: list[str]
    video_identifier: str
    source_options: dict[str, Any]
    max_objects: int | None
    origin: Literal["api", "config"]
    paused: bool
    created_at: datetime
    status: dict[str, Any]
    worker: str | None = None

    @classmethod
    def redacted(cls, **fields: Any) -> StreamInfo:
        """Build the public view: every string that may hold a URL goes through ``redact``."""
        fields["source"] = redact(fields["source"])
        fields["sinks"] = [redact(sink) for sink in fields["sinks"]]
        return cls(**fields)


class StreamList(BaseModel):
    streams: list[StreamInfo]


MAX_PROMPT_SHAPES = 64
"""Boxes, and points, one ``POST /streams/{id}/prompts`` may carry (each box is a new object)."""

MAX_TRACKER_ID = 2**63 - 1
"""Tracker ids are int64 in detections; a larger id can name no object."""

Coordinate = Annotated[float, Field(allow_inf_nan=False)]
PromptBox = Annotated[list[Coordinate], Field(min_length=4, max_length=4)]
PromptPoint = Annotated[list[Coordinate], Field(min_length=2, max_length=2)]
PointLabel = Annotated[StrictInt, Field(ge=0, le=1)]


class PromptRequest(BaseModel):
    """``POST /streams/{id}/prompts``: boxes and labelled points to track (visual prompting).

    Shapes are checked here (at most ``MAX_PROMPT_SHAPES`` boxes and points, finite numbers); how
    they combine is ``tracker.VisualPrompt``'s rule, and whether they fit the frame the tracker's:
    both answer 422 naming the field, as a bad field here does.

    Attributes:
        boxes: xyxy pixels, one new object each.
        points: (x, y) pixels, all for one object; ``labels`` gives one label per point.
        labels: 1 = the object is here, 0 = it is not.
        tracker_id: refine this object instead of making new ones (at most one box).
        frame_id: the frame the coordinates were drawn on; null: the latest frame.
        class_name: what the objects are called in detections.
        source_id: the stream's source (a service stream has one: null or 0).
    """

    model_config = ConfigDict(extra="forbid")

    boxes: list[PromptBox] = Field(
        default_factory=list, max_length=MAX_PROMPT_SHAPES, examples=[[[10, 20, 60, 80]]]
    )
    points: list[PromptPoint] = Field(default_factory=list, max_length=MAX_PROMPT_SHAPES)
    labels: list[PointLabel] = Field(default_factory=list, max_length=MAX_PROMPT_SHAPES)
    tracker_id: int | None = Field(default=None, ge=0, le=MAX_TRACKER_ID)
    frame_id: int | None = Field(default=None, ge=0, le=MAX_TRACKER_ID)
    class_name: ClassName = "foreground"
    source_id: int | None = Field(default=None, ge=0, le=MAX_TRACKER_ID)

    _printable_class_name = field_validator("class_name")(refuse_control_characters)


class PromptResult(BaseModel):
    """What a prompt made: the tracker ids, and the frame its coordinates were taken against.

    Attributes:
        tracker_ids: one per box (one for points alone), or the refined object's id.
        frame_id: the request's ``frame_id``, else the latest frame processed when it came
            (null before the stream's first frame: the prompt is placed on that frame).
    """

    tracker_ids: list[int]
    frame_id: int | None


class WebRTCOffer(BaseModel):
    """A browser's SDP offer (``RTCSessionDescription`` as JSON); it must receive video."""

    model_config = ConfigDict(extra="forbid")

    sdp: str = Field(min_length=1, max_length=100_000)
    type: Literal["offer"]


class WebRTCAnswer(BaseModel):
    sdp: str
    type: Literal["answer"] = "answer"


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    """``/readyz``: whether the model is loaded and boot streams were started."""

    ready: bool
    model: str
    error: str | None = None
    streams: int


class ErrorBody(BaseModel):
    """Every error answer: ``detail`` is a message, or for 422 a list naming each bad field."""

    detail: str | list[dict[str, Any]]
