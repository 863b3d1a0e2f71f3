"""``PipelineOptions``: every argument of ``InferencePipeline.init``, checked once, in one place.

``init`` and ``init_with_workflow`` (whose signatures are Roboflow's) both end in
``PipelineOptions.from_keywords``; the constructor of ``InferencePipeline`` takes the result. A
bad argument fails with a ``ConfigError`` whose ``field`` is the argument's name, before anything
is opened or loaded. ``set_class_names`` and ``set_threshold`` apply the same rules at runtime.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import re
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.compat.roboflow_options import refuse_roboflow_only, without_accepted_no_ops
from pipeline.errors import ConfigError
from pipeline.loop.contracts import FrameProcessor, PredictionSink
from pipeline.loop.status_events import StatusUpdateHandler
from pipeline.sources import SourceOptions, VideoReference
from sinks.active_learning import ACTIVE_LEARNING_REFUSAL, active_learning_sink
from tracker.inputs import check_threshold, normalise_class_names
from tracker.visual_prompts import VisualPrompt
from tracker.weights import REAL_MODEL

_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
_TRACKER_METHODS = ("new_session", "step")
"""What a session calls on its tracker first; an object without them fails at construction."""
_REGISTRY_METHODS = ("process", "close")
"""``FrameProcessor``: what the loop calls on a registry."""


class SinkMode(enum.Enum):
    """How ``on_prediction`` is called when a pipeline runs several sources (Roboflow's enum).

    - ``ADAPTIVE`` (default): one source -> one call per frame with single objects; several
      sources -> ``BATCH``.
    - ``BATCH``: one call per round over the sources with lists, one entry per source in
      ``source_id`` order, ``None`` (prediction and frame) where a source had no frame this round.
    - ``SEQUENTIAL``: one call per frame with single objects, whatever the number of sources.

    A round holds what the sources had ready when the loop went round them once; it never waits
    for a slow, paused or reconnecting source (that source's entry is ``None``).

    Examples:
        >>> check_sink_mode("Batch") is SinkMode.BATCH
        True
    """

    ADAPTIVE = "adaptive"
    BATCH = "batch"
    SEQUENTIAL = "sequential"


def check_sink_mode(sink_mode: Any) -> SinkMode:
    """A ``SinkMode`` member, or its value as a string in any case (``"batch"``)."""
    if isinstance(sink_mode, SinkMode):
        return sink_mode
    if isinstance(sink_mode, str):
        for mode in SinkMode:
            if sink_mode.lower() == mode.value:
                return mode
    choices = ", ".join(mode.value for mode in SinkMode)
    raise ConfigError(
        f"sink_mode must be a SinkMode or one of {choices}, got {sink_mode!r}", field="sink_mode"
    )


def mint_exec_session_id() -> str:
    """A new execution session id in Roboflow's format: ``"<time_ns>_<4 hex digits>"``."""
    return f"{time.time_ns()}_{uuid.uuid4().hex[:4]}"


def discard_predictions(predictions: Any, video_frame: Any) -> None:
    """The sink of ``on_prediction=None`` (as in Roboflow): results are counted, then dropped."""


@dataclass(frozen=True, kw_only=True)
class PipelineOptions:
    """What a pipeline is built from, checked and normalised.

    Construct it with the values a user passed (a ``"person, forklift"`` string, a list of
    sinks, a mapping of source options): ``__post_init__`` checks each, in the order of
    ``init``'s arguments, and stores its normalised form. ``from_keywords`` splits ``init``'s
    keyword arguments between these fields and the source options.

    Attributes:
        references: one entry per source (each checked when its source is made).
        class_names: the concepts, at least one (none only with ``allow_empty_classes``).
        on_prediction: one sink, or a tuple of sinks the pipeline fans out to and owns;
            ``discard_predictions`` when None was given.
        sink_mode: single calls or lists per round with several sources (``SinkMode``).
        exec_session_id: Roboflow's execution session id as given; None: the pipeline mints
            one. Nothing here tracks usage, so it only names the run (``exec_session_id``).
        source_options: the same for every source.
        tracker / registry: a model to share; None loads ``model`` on ``device``.
        max_objects: live tracks per stream at most (``SessionRegistry(max_objects=...)``);
            None: the registry's default budget.
        prompts: box/point prompts placed on each source's first frame, by ``source_id``
            (the key None: every source); with prompts, ``class_names`` may be empty.
        allow_empty_classes: set by ``from_workflow_keywords`` only: a workflow's empty
            ``class_names`` means empty predictions on every frame (Roboflow's rule), while
            ``init`` refuses an empty list as the mistake it almost always is.

    The other fields are ``init``'s arguments of the same name.

    Examples:
        >>> options = PipelineOptions.from_keywords("clip.mp4", "person, forklift", print,
        ...     threshold=0.3, stall_timeout_s=2.0)
        >>> options.class_names, options.threshold, options.source_options.stall_timeout_s
        (('person', 'forklift'), 0.3, 2.0)
    """

    references: tuple[VideoReference, ...]
    class_names: tuple[str, ...]
    on_prediction: PredictionSink | tuple[PredictionSink, ...]
    model: str = REAL_MODEL
    threshold: float = 0.5
    max_fps: float | None = None
    device: str = "auto"
    video_identifiers: Sequence[str | None] | None = None
    status_update_handlers: tuple[StatusUpdateHandler, ...] = ()
    tracker: Any = None
    registry: FrameProcessor | None = None
    show_progress: bool = False
    status_interval_s: float = 10.0
    max_objects: int | None = None
    model_options: Mapping[str, Any] | None = None
    sink_mode: SinkMode = SinkMode.ADAPTIVE
    exec_session_id: str | None = None
    prompts: Any = None
    source_options: SourceOptions = field(default_factory=SourceOptions)
    allow_empty_classes: bool = False

    def __post_init__(self) -> None:
        store = object.__setattr__  # frozen: each field is replaced by its checked form once
        store(self, "prompts", check_prompts(self.prompts))
        store(
            self,
            "class_names",
            check_class_names(
                self.class_names, allow_empty=self.allow_empty_classes or bool(self.prompts)
            ),
        )
        store(self, "threshold", check_threshold_option(self.threshold))
        store(self, "max_fps", _check_max_fps(self.max_fps))
        store(self, "device", check_device(self.device))
        store(self, "on_prediction", _check_sinks(self.on_prediction))
        store(self, "status_update_handlers", _check_handlers(self.status_update_handlers))
        if not self.status_interval_s > 0:
            raise ConfigError(
                f"status_interval_s must be > 0, got {self.status_interval_s}",
                field="status_interval_s",
            )
        store(self, "max_objects", check_max_objects(self.max_objects))
        store(self, "video_identifiers", _check_identifiers(self.video_identifiers))
        if (
            self.tracker is not None
            and self.registry is not None
            and tracker_of(self.registry) is not self.tracker
        ):
            raise ConfigError(
                "give tracker= or registry=, not both (a registry has a tracker)", field="tracker"
            )
        _check_has_methods(self.tracker, "tracker", _TRACKER_METHODS, "a tracker.Sam3VideoTracker")
        _check_has_methods(
            self.registry, "registry", _REGISTRY_METHODS, "a tracker.SessionRegistry"
        )
        store(self, "model_options", _check_model_options(self.model_options))
        store(self, "sink_mode", check_sink_mode(self.sink_mode))
        if self.exec_session_id is not None and not isinstance(self.exec_session_id, str):
            raise ConfigError(
                f"exec_session_id must be a string (or None to mint one), got "
                f"{self.exec_session_id!r}",
                field="exec_session_id",
            )
        if not isinstance(self.source_options, SourceOptions):
            store(self, "source_options", SourceOptions.from_kwargs(**self.source_options))
        store(self, "references", _as_references(self.references))
        if self.prompts:
            _check_prompted_sources(self.prompts, len(self.references))
            if self.registry is not None and not callable(
                getattr(self.registry, "add_prompt", None)
            ):
                raise ConfigError(
                    f"prompts= needs a registry with add_prompt(...); "
                    f"{type(self.registry).__name__} has none",
                    field="prompts",
                )

    @classmethod
    def from_keywords(
        cls, video_reference: Any, class_names: Any, on_prediction: Any, **keywords: Any
    ) -> PipelineOptions:
        """Options from ``init``'s arguments: keywords that are not fields are source options.

        Raises:
            ConfigError: a Roboflow-only argument, or any bad argument (``field`` names it).
        """
        return cls._split(video_reference, class_names, on_prediction, keywords, False)

    @classmethod
    def from_workflow_keywords(
        cls, video_reference: Any, class_names: Any, on_prediction: Any, **keywords: Any
    ) -> PipelineOptions:
        """As ``from_keywords``, for ``init_with_workflow``: empty ``class_names`` allowed."""
        return cls._split(video_reference, class_names, on_prediction, keywords, True)

    @classmethod
    def _split(
        cls,
        video_reference: Any,
        class_names: Any,
        on_prediction: Any,
        keywords: Mapping[str, Any],
        allow_empty_classes: bool,
    ) -> PipelineOptions:
        refuse_roboflow_only(keywords)
        keywords = without_accepted_no_ops(keywords)
        own = {name: value for name, value in keywords.items() if name in KEYWORD_OPTIONS}
        # Still a mapping: __post_init__ checks it in its turn, after the options before it.
        source_options: Any = {k: v for k, v in keywords.items() if k not in KEYWORD_OPTIONS}
        return cls(
            references=video_reference,
            class_names=class_names,
            on_prediction=on_prediction,
            source_options=source_options,
            allow_empty_classes=allow_empty_classes,
            **own,
        )


KEYWORD_OPTIONS = frozenset(option.name for option in dataclasses.fields(PipelineOptions)) - {
    "references",
    "class_names",
    "on_prediction",
    "source_options",
    "allow_empty_classes",
}
"""``init``'s keyword arguments that are options of the pipeline, not of its sources."""


def tracker_of(registry: FrameProcessor) -> Any:
    """The tracker a registry runs (``SessionRegistry.tracker``); None for a stand-in without."""
    return getattr(registry, "tracker", None)


def check_class_names(class_names: Any, *, allow_empty: bool = False) -> tuple[str, ...]:
    """Normalised concepts (``"a, b"`` or a list); at least one unless ``allow_empty``."""
    try:
        names = normalise_class_names(class_names)
    except (ValueError, TypeError) as error:
        raise ConfigError(f"class_names: {error}", field="class_names") from None
    if not names and not allow_empty:
        raise ConfigError(
            "class_names is empty: give at least one concept, e.g. class_names='person, forklift'",
            field="class_names",
        )
    return names


PromptsBySource = dict[int | None, tuple[VisualPrompt, ...]]
"""Initial prompts by ``source_id``; the key None holds those for every source."""


def check_prompts(prompts: Any) -> PromptsBySource:
    """``init``'s ``prompts=``: one ``VisualPrompt``, a list of them (every source), or a mapping
    ``{source_id: [prompts]}``; normalised to ``PromptsBySource`` (empty: none)."""
    if prompts is None:
        return {}
    if isinstance(prompts, VisualPrompt):
        return {None: (prompts,)}
    if isinstance(prompts, Mapping):
        by_source: PromptsBySource = {}
        for source_id, listed in prompts.items():
            if isinstance(source_id, bool) or not isinstance(source_id, int) or source_id < 0:
                raise ConfigError(
                    f"prompts: keys are source ids (integers >= 0), got {source_id!r}",
                    field="prompts",
                )
            by_source[source_id] = _prompt_list(listed, f"prompts[{source_id}]")
        return by_source
    return {None: _prompt_list(prompts, "prompts")}


def _prompt_list(prompts: Any, where: str) -> tuple[VisualPrompt, ...]:
    if isinstance(prompts, VisualPrompt):
        return (prompts,)
    if not isinstance(prompts, Sequence) or isinstance(prompts, str):
        raise ConfigError(
            f"{where}: must be a VisualPrompt or a list of them, got {type(prompts).__name__}",
            field="prompts",
        )
    for index, prompt in enumerate(prompts):
        if not isinstance(prompt, VisualPrompt):
            raise ConfigError(
                f"{where}[{index}]: must be a tracker.VisualPrompt, got {type(prompt).__name__}",
                field="prompts",
            )
    return tuple(prompts)


def _check_prompted_sources(prompts: PromptsBySource, sources: int) -> None:
    for source_id in prompts:
        if source_id is not None and source_id >= sources:
            raise ConfigError(
                f"prompts: no source {source_id} (this pipeline has 0..{sources - 1})",
                field="prompts",
            )


def check_threshold_option(threshold: Any) -> float:
    """A detection score threshold in [0, 1]."""
    try:
        return check_threshold(threshold)
    except ValueError as error:
        raise ConfigError(str(error), field="threshold") from None


def check_max_objects(max_objects: Any) -> int | None:
    """A budget of live tracks per stream: an int >= 1, or None for the registry's default."""
    if max_objects is None:
        return None
    if isinstance(max_objects, bool) or not isinstance(max_objects, int) or max_objects < 1:
        raise ConfigError(
            f"max_objects must be an integer >= 1 (or None for the default budget), "
            f"got {max_objects!r}",
            field="max_objects",
        )
    return max_objects


def _check_max_fps(max_fps: Any) -> float | None:
    if max_fps is None:
        return None
    if isinstance(max_fps, bool) or not isinstance(max_fps, int | float) or not max_fps > 0:
        raise ConfigError(
            f"max_fps must be a number > 0 (or None for no cap), got {max_fps!r}", field="max_fps"
        )
    return float(max_fps)


def _check_identifiers(identifiers: Any) -> tuple[str | None, ...] | None:
    """None, or one name (or None: derived from the reference) per source, as a tuple."""
    if identifiers is None:
        return None
    if isinstance(identifiers, list | tuple) and all(
        name is None or isinstance(name, str) for name in identifiers
    ):
        return tuple(identifiers)
    raise ConfigError(
        "video_identifiers must be a list with one name (a string, or None to derive it from the "
        f"reference) per source, got {identifiers!r}",
        field="video_identifiers",
    )


def _check_has_methods(value: Any, name: str, methods: tuple[str, ...], example: str) -> None:
    """``value`` is None or has every one of ``methods``, so a wrong object fails now, by name."""
    if value is None:
        return
    missing = [method for method in methods if not callable(getattr(value, method, None))]
    if missing:
        raise ConfigError(
            f"{name} must be {example} (with {', '.join(methods)}), got {value!r}", field=name
        )


def _check_model_options(model_options: Any) -> dict[str, Any] | None:
    """None, or ``Sam3VideoConfig`` overrides: no other name may reach the model loader."""
    if model_options is None:
        return None
    from tracker.model_config import check_config_overrides  # transformers: only when given

    try:
        return check_config_overrides(model_options)
    except ValueError as error:
        raise ConfigError(str(error), field="model_options") from None


def check_device(device: Any) -> str:
    """A device name the pipeline accepts (``auto``, ``cpu``, ``mps``, ``cuda``, ``cuda:N``)."""
    if not isinstance(device, str) or not _DEVICE.match(device):
        raise ConfigError(
            f"device must be auto, cpu, mps, cuda or cuda:N, got {device!r}", field="device"
        )
    return device


def _check_sinks(on_prediction: Any) -> PredictionSink | tuple[PredictionSink, ...]:
    """A callable, a non-empty list of callables the pipeline fans out to, or None (discard)."""
    if on_prediction is None:
        return discard_predictions
    if isinstance(on_prediction, list | tuple):
        if on_prediction and all(callable(sink) for sink in on_prediction):
            for sink in on_prediction:
                _refuse_active_learning(sink)
            return tuple(on_prediction)
    elif callable(on_prediction):
        _refuse_active_learning(on_prediction)
        return on_prediction
    raise ConfigError(
        "on_prediction must be a callable sink(predictions, video_frame), a non-empty list of "
        f"them, or None, got {on_prediction!r}",
        field="on_prediction",
    )


def _refuse_active_learning(sink: Any) -> None:
    """Roboflow's ``active_learning_sink`` (or a ``partial`` of it) at init, not on frame one."""
    if getattr(sink, "func", sink) is active_learning_sink:
        raise ConfigError(ACTIVE_LEARNING_REFUSAL, field="on_prediction")


def _check_handlers(handlers: Any) -> tuple[Callable[..., Any], ...]:
    if handlers is None:
        return ()
    if callable(handlers):
        return (handlers,)
    if isinstance(handlers, list | tuple) and all(callable(handler) for handler in handlers):
        return tuple(handlers)
    raise ConfigError(
        "status_update_handlers must be a list of callables handler(status_update)",
        field="status_update_handlers",
    )


def _as_references(video_reference: Any) -> tuple[VideoReference, ...]:
    """One reference or a list of them (checked one by one when sources are made)."""
    if isinstance(video_reference, str | int | os.PathLike):
        return (video_reference,)
    if isinstance(video_reference, Sequence) and video_reference:
        return tuple(video_reference)
    raise ConfigError(
        "video_reference must be a path, URL, camera index or 'testpattern', or a non-empty list "
        f"of them; got {video_reference!r}",
        field="video_reference",
    )
