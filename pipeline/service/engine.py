"""The one model of the server: loaded once, in the background, shared by every stream.

Loading ``facebook/sam3`` takes long enough that the HTTP server should already answer
``/healthz`` meanwhile (a container is alive) while ``/readyz`` says it is not ready yet; streams
cannot start before the model is there. One ``Sam3VideoTracker`` and one ``SessionRegistry`` serve
every stream: the model runs one frame at a time, and each stream has its own session keyed by its
``video_identifier``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from pipeline.redact import redact
from pipeline.service.api_errors import ModelNotReadyError
from tracker import SessionRegistry, SessionStats
from tracker.image import EmbeddingCache, Sam3ForInteractiveImageSegmentation, SegmentAnything3

logger = logging.getLogger(__name__)

IDLE_WAIT_S = 30.0
"""At shutdown, how long to wait for a frame still in the model (``SessionRegistry.wait_idle``)."""

TrackerLoader = Callable[[], Any]
"""Returns a loaded ``Sam3VideoTracker`` (or a stand-in with the same interface)."""


class ModelEngine:
    """Holds the tracker and the registry once loaded; says whether it is ready and why not.

    Args:
        loader: loads the tracker; called once, on the thread that calls ``load``.
        model_name: how ``/readyz`` names the model.
        max_sessions: sessions the registry keeps open (at least the stream limit).
        max_objects: the server's default object budget per stream (``serve --max-objects``);
            None: the tracker's default. A stream's own ``max_objects`` overrides it.
        worker_loader: a picklable loader of the same model for Ray workers
            (``pipeline.cluster.loading.TrackerSpec``); None: a cluster refuses to start, since
            ``loader`` may capture what must not travel (the CLI's arguments).

    Examples:
        >>> engine = ModelEngine.from_tracker(object(), model_name="stand-in")
        >>> engine.ready
        True
    """

    def __init__(
        self,
        loader: TrackerLoader,
        *,
        model_name: str,
        max_sessions: int = 64,
        max_objects: int | None = None,
        worker_loader: TrackerLoader | None = None,
    ) -> None:
        self.model_name = model_name
        self.worker_loader = worker_loader
        self._loader = loader
        self._max_sessions = max_sessions
        self._max_objects = max_objects
        self._loaded = threading.Event()
        self._tracker: Any = None
        self._registry: SessionRegistry | None = None
        self.error: str | None = None
        self._image_lock = threading.Lock()
        self._concept: SegmentAnything3 | None = None
        self._interactive: Sam3ForInteractiveImageSegmentation | None = None
        # One embedding cache for both image APIs: one image's backbone output serves concept
        # prompts and clicks, and the server's cache bound is one bound, not one per API.
        self._embeddings = EmbeddingCache()

    @classmethod
    def from_tracker(
        cls,
        tracker: Any,
        *,
        model_name: str = "sam3",
        max_sessions: int = 64,
        max_objects: int | None = None,
    ) -> ModelEngine:
        """An engine around an already loaded tracker (tests, embedding)."""
        engine = cls(
            lambda: tracker,
            model_name=model_name,
            max_sessions=max_sessions,
            max_objects=max_objects,
        )
        engine.load()
        return engine

    @property
    def max_sessions(self) -> int:
        """Sessions one registry keeps open (a Ray worker's registry gets the same)."""
        return self._max_sessions

    @property
    def max_objects(self) -> int | None:
        """The server's default object budget per stream (a Ray worker's too)."""
        return self._max_objects

    @property
    def ready(self) -> bool:
        return self._loaded.is_set() and self.error is None

    @property
    def tracker(self) -> Any:
        self.require_ready()
        return self._tracker

    @property
    def registry(self) -> SessionRegistry:
        self.require_ready()
        assert self._registry is not None
        return self._registry

    @property
    def concept_segmenter(self) -> SegmentAnything3:
        """Image concept segmentation on the loaded tracker's detector: no second weights copy.

        Its forward passes take the tracker's model lock (``Sam3VideoTracker.exclusive``), the one
        every stream's frame takes, so image requests and streams never run the model at once.
        """
        tracker = self.tracker
        with self._image_lock:
            if self._concept is None:
                self._concept = SegmentAnything3.from_tracker(tracker, cache=self._embeddings)
            return self._concept

    @property
    def interactive_segmenter(self) -> Sam3ForInteractiveImageSegmentation:
        """Point/box segmentation on the loaded tracker, with the server's one embedding cache."""
        tracker = self.tracker
        with self._image_lock:
            if self._interactive is None:
                self._interactive = Sam3ForInteractiveImageSegmentation.from_tracker(
                    tracker, cache=self._embeddings
                )
            return self._interactive

    def require_ready(self) -> None:
        """Raise ``ModelNotReadyError`` (503) until the model is loaded."""
        if self.error is not None:
            raise ModelNotReadyError(f"the model failed to load: {self.error}")
        if not self._loaded.is_set():
            raise ModelNotReadyError(
                f"the model {self.model_name!r} is still loading: retry when GET /readyz says ready"
            )

    def load(self) -> bool:
        """Load the tracker (blocking); False if it failed, with the reason in ``error``."""
        if self._loaded.is_set():
            return self.error is None
        try:
            tracker = self._loader()
        except Exception as error:
            self.error = redact(error)
            logger.error("loading model %s failed: %s", self.model_name, self.error)
        else:
            self._tracker = tracker
            self._registry = self._new_registry(tracker)
            logger.info("model %s loaded", self.model_name)
        self._loaded.set()
        return self.error is None

    def _new_registry(self, tracker: Any) -> SessionRegistry:
        if self._max_objects is None:  # the registry's own default budget
            return SessionRegistry(tracker, max_sessions=self._max_sessions)
        return SessionRegistry(
            tracker, max_sessions=self._max_sessions, max_objects=self._max_objects
        )

    def wait(self, timeout: float | None = None) -> bool:
        """Block until loading finished (either way); False on timeout."""
        return self._loaded.wait(timeout)

    def live_sessions(self) -> int:
        return len(self._registry) if self._registry is not None else 0

    def session_bytes(self) -> dict[str, int]:
        """Approximate bytes held per open session, by video_identifier (never blocks on one)."""
        return {name: stats.bytes_held for name, stats in self.session_stats().items()}

    def session_stats(self) -> dict[str, SessionStats]:
        """``SessionStats`` per open session, by video_identifier (never blocks on one)."""
        if self._registry is None:
            return {}
        return self._registry.all_stats()

    def set_stream_budget(self, video_identifier: str, max_objects: int | None) -> None:
        """A stream's own object budget (None: the server's default) until it is cleared."""
        self.registry.set_max_objects(video_identifier, max_objects)

    def close(self, timeout: float = IDLE_WAIT_S) -> None:
        """After every pipeline was terminated: wait for the model to be idle, free all sessions."""
        if self._registry is None:
            return
        if not self._registry.wait_idle(timeout):
            logger.warning("a frame was still inside the model after %.0f s", timeout)
        self._registry.close_all()
