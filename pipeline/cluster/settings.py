"""How the front door finds and uses a Ray cluster: what ``serve --ray`` and ``ray:`` turn into.

Standard library only, like ``pipeline.service.settings``: ``--help`` must not import Ray, and a
server without ``--ray`` never imports it at all.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_STREAMS_PER_WORKER = 8
"""Streams one worker runs at once unless told otherwise (one GPU's share of cameras)."""
DEFAULT_FAILOVER_TIMEOUT_S = 30.0
"""A dead worker's streams are running again on a survivor within this time, or shown waiting."""


@dataclass(frozen=True)
class ClusterSettings:
    """Where the cluster is and how each worker is shaped.

    Attributes:
        address: ``auto`` (the cluster ``ray start`` started on this machine, or ``RAY_ADDRESS``),
            ``HOST:PORT`` of a head's GCS, or ``ray://HOST:PORT`` (Ray Client).
        workers: worker actors to start; None: one per GPU the cluster has, else one.
        gpus_per_worker: GPUs each worker reserves (1, a fraction to share a GPU, 0 on CPUs).
        cpus_per_worker: CPUs each worker reserves.
        max_streams_per_worker: streams one worker runs at once; the cluster is full when every
            worker has this many.
        failover_timeout_s: how long a dead worker's streams may take to run again elsewhere.
    """

    address: str = "auto"
    workers: int | None = None
    gpus_per_worker: float = 1.0
    cpus_per_worker: float = 1.0
    max_streams_per_worker: int = DEFAULT_STREAMS_PER_WORKER
    failover_timeout_s: float = DEFAULT_FAILOVER_TIMEOUT_S

    def __post_init__(self) -> None:
        if not self.address.strip():
            raise ValueError("ray address: empty (use auto, HOST:PORT or ray://HOST:PORT)")
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"ray workers: {self.workers} (at least 1)")
        if self.gpus_per_worker < 0 or self.cpus_per_worker < 0:
            raise ValueError("ray gpus/cpus per worker: negative")
        if self.max_streams_per_worker < 1:
            raise ValueError(f"ray max streams per worker: {self.max_streams_per_worker} (>= 1)")
        if self.failover_timeout_s <= 0:
            raise ValueError(f"ray failover timeout: {self.failover_timeout_s} s (> 0)")
