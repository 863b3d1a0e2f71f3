"""What the routes share, and the service's boot and shutdown around it.

Boot happens on a background thread after the server listens: load the model, then start the
config's streams and the stored ones. ``/healthz`` answers at once; ``/readyz`` only once both are
done (``ServiceState.ready``), with the load error if there was one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from fastapi.concurrency import run_in_threadpool

from pipeline.config.serve_config import ServeConfig
from pipeline.redact import redact
from pipeline.service.api_access import ApiAccess
from pipeline.service.engine import ModelEngine
from pipeline.service.manager import PipelineFactory, StreamManager
from pipeline.service.metrics import ServiceMetrics
from pipeline.service.models import ConfiguredStream
from pipeline.service.settings import ServiceSettings
from pipeline.service.store import StreamStore
from pipeline.service.viewer_slots import ViewerSlots
from pipeline.service.webrtc import use_loopback_host_candidates

logger = logging.getLogger(__name__)


class ServiceState:
    """The manager, the engine and the store of one app, and whether boot finished.

    Routes get these through ``pipeline.service.dependencies``; tests and the server reach them
    as ``app.state.service``.

    Args:
        manager: runs the streams.
        engine: the model holder; loaded on the boot thread if it is not yet.
        store: the manager's store, closed at shutdown (None: streams live in memory only).
        boot_streams: streams to start once the model is loaded (from ``--config``).
        on_fatal: called with the reason when the model fails to load (``serve`` exits then).
    """

    def __init__(
        self,
        manager: StreamManager,
        engine: ModelEngine,
        *,
        store: StreamStore | None = None,
        boot_streams: Sequence[ConfiguredStream] = (),
        on_fatal: Callable[[str], None] | None = None,
    ) -> None:
        self.manager = manager
        self.engine = engine
        self.store = store
        self.booted = threading.Event()
        self._boot_streams = boot_streams
        self._on_fatal = on_fatal

    @classmethod
    def from_settings(
        cls,
        settings: ServiceSettings,
        *,
        engine: ModelEngine,
        config: ServeConfig | None,
        pipeline_factory: PipelineFactory,
        on_fatal: Callable[[str], None] | None,
    ) -> ServiceState:
        """Open the store and build the manager as ``settings`` say (see ``create_app``).

        Raises:
            ConfigError: the output root cannot be created or the media root is not a directory.
        """
        if settings.ice.loopback_only:
            use_loopback_host_candidates()
        store = StreamStore(settings.state_dir) if settings.state_dir is not None else None
        try:  # after the store, which creates the state directory 0700 (the output root's parent)
            access = ApiAccess.from_settings(settings)
        except BaseException:
            if store is not None:
                store.close()
            raise
        manager = StreamManager(
            engine,
            store=store,
            metrics=ServiceMetrics(),
            max_streams=settings.max_streams,
            pipeline_factory=pipeline_factory,
            ice=settings.ice,
            event_buffer=settings.event_buffer,
            access=access,
            viewer_slots=ViewerSlots(settings.viewers),
            cluster=settings.cluster,
        )
        return cls(
            manager,
            engine,
            store=store,
            boot_streams=config.streams if config else (),
            on_fatal=on_fatal,
        )

    @property
    def ready(self) -> bool:
        """The model is loaded and the boot streams were started."""
        return self.engine.ready and self.booted.is_set()

    def start(self) -> None:
        """Boot in the background, so the server listens (and ``/healthz`` answers) meanwhile."""
        threading.Thread(target=self._boot, name="service-boot", daemon=True).start()

    def _boot(self) -> None:
        if self.engine.load() and self._start_cluster():
            self.manager.start_boot_streams(self._boot_streams)
            self.booted.set()
            logger.info("ready: %d streams running", len(self.manager))
        elif self._on_fatal is not None:
            self._on_fatal(self.engine.error or "model failed to load")

    def _start_cluster(self) -> bool:
        """Start the Ray workers, if any; False (with the reason in ``engine.error``) if not."""
        try:
            self.manager.start_cluster()
        except Exception as error:
            self.engine.error = f"the Ray workers did not start: {redact(error)}"
            logger.error("%s", self.engine.error)
            return False
        return True

    async def stop(self) -> None:
        """Close viewers on the event loop, then stop streams, free the model, close the store."""
        await self.manager.close_viewers()
        await run_in_threadpool(self.manager.close)
        await run_in_threadpool(self.engine.close)
        if self.store is not None:
            self.store.close()
