"""The only module that imports Ray: join the cluster, shape the worker actor, read its deaths.

Imported only when the service runs with ``cluster`` settings (``serve --ray``), so a server
without them never imports Ray. Ray's own machinery does the distributed work: the actor
placement by resources (``num_gpus`` / ``num_cpus``), process restarts (``max_restarts``), and
the death of a worker reported as ``RayActorError`` on the calls the front door makes anyway.
"""

from __future__ import annotations

import logging
import os
from typing import Any

# Read when Ray is imported. Without it the driver installs absl's crash handler, which also
# catches SIGTERM: it prints a bogus crash dump and, about one stop in ten, aborts the server
# (exit -6) after its own graceful shutdown. The server handles SIGTERM itself (uvicorn).
os.environ.setdefault("RAY_DISABLE_FAILURE_SIGNAL_HANDLER", "1")

import ray
from ray.exceptions import GetTimeoutError, RayActorError

from pipeline.cluster.settings import ClusterSettings
from pipeline.cluster.worker import StreamWorker

logger = logging.getLogger(__name__)

WORKER_CONCURRENCY = 16
"""Threads per worker actor: one long ``poll``, stream starts/stops and runtime calls at once."""
WORKER_RESTARTS = -1
"""Ray restarts a dead worker's process (a fresh model, no streams) for as long as it can; the
front door sees it answer again and places waiting streams on it."""

WorkerGone = (RayActorError,)
"""What a call to a dead (or restarting) worker raises: its streams must move."""
NotYet = (GetTimeoutError,)
"""What a call that took longer than its timeout raises: ask again later."""


def join_cluster(settings: ClusterSettings) -> bool:
    """Connect this process to the cluster unless it already is; True if this call connected.

    An app embedded in a program that called ``ray.init`` itself (tests, notebooks) keeps that
    connection, whatever ``address`` says.
    """
    if ray.is_initialized():
        return False
    ray.init(
        address=settings.address,
        configure_logging=False,
        log_to_driver=False,
    )
    return True


def leave_cluster() -> None:
    ray.shutdown()


def worker_count(settings: ClusterSettings) -> int:
    """``settings.workers``, else one per ``gpus_per_worker`` share of the cluster's GPUs, or 1."""
    if settings.workers is not None:
        return settings.workers
    gpus = float(ray.cluster_resources().get("GPU", 0.0))
    if settings.gpus_per_worker > 0 and gpus >= settings.gpus_per_worker:
        return int(gpus // settings.gpus_per_worker)
    return 1


def start_worker(settings: ClusterSettings, name: str, **worker_kwargs: Any) -> Any:
    """A ``StreamWorker`` actor shaped as ``settings`` say (its handle; it loads meanwhile)."""
    actor_class = ray.remote(  # type: ignore[call-overload]
        num_gpus=settings.gpus_per_worker,
        num_cpus=settings.cpus_per_worker,
        max_concurrency=WORKER_CONCURRENCY,
        max_restarts=WORKER_RESTARTS,
        max_task_retries=0,
    )(StreamWorker)
    return actor_class.options(name=None).remote(name, **worker_kwargs)


def call(handle: Any, method: str, *args: Any, timeout: float | None = None) -> Any:
    """Call ``handle.method(*args)`` and wait for its result.

    Raises:
        RayActorError: the worker died (``WorkerGone``).
        GetTimeoutError: no answer within ``timeout`` (``NotYet``).
    """
    return ray.get(getattr(handle, method).remote(*args), timeout=timeout)


def send(handle: Any, method: str, *args: Any) -> Any:
    """Start ``handle.method(*args)``; ``wait`` for the reference later."""
    return getattr(handle, method).remote(*args)


def wait(reference: Any, timeout: float | None) -> Any:
    return ray.get(reference, timeout=timeout)


def kill(handle: Any, *, restart: bool = False) -> None:
    """End a worker's process: for good, or (``restart``) so that Ray starts a fresh one."""
    try:
        ray.kill(handle, no_restart=not restart)
    except Exception as error:  # already gone
        logger.debug("killing a worker: %s", error)
