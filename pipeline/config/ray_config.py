"""The ``ray:`` block of a serve config, and the one rule for what a Ray address may look like.

A site that runs its cameras on a Ray cluster writes the cluster into the same file as the cameras::

    ray:
      address: auto            # or 10.0.0.2:6379, or ray://10.0.0.2:10001
      workers: 4               # default: one per GPU in the cluster
      gpus_per_worker: 0.5     # two workers share a GPU
      max_streams_per_worker: 6

Every field but ``address`` may be left out; ``serve --ray-*`` flags override the fields they name
(``pipeline.cli.serve_ray``). Standard library and pydantic only: Ray is never imported here.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

RAY_ADDRESS_HELP = "auto, HOST:PORT or ray://HOST:PORT"
_HOST_PORT = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(?P<port>\d{1,5})$")


def ray_address_problem(address: str) -> str | None:
    """Why ``address`` cannot name a Ray cluster, or None when it can.

    ``auto`` finds the cluster ``ray start`` started on this machine (or ``$RAY_ADDRESS``);
    ``HOST:PORT`` is a head's GCS port (6379 by default); ``ray://HOST:PORT`` is Ray Client
    (10001 by default). Anything else would only fail later, inside ``ray.init``, with a message
    about Ray's internals.

    Examples:
        >>> ray_address_problem("10.0.0.2:6379") is None
        True
        >>> ray_address_problem("10.0.0.2")
        "'10.0.0.2' is not auto, HOST:PORT or ray://HOST:PORT"
    """
    if address == "auto":
        return None
    rest = address.removeprefix("ray://")
    match = _HOST_PORT.match(rest)
    if match is None:
        return f"{address!r} is not {RAY_ADDRESS_HELP}"
    if not 1 <= int(match["port"]) <= 65535:
        return f"{address!r}: port must be in 1-65535"
    return None


def gpus_per_worker_problem(gpus: float) -> str | None:
    """Why a worker cannot reserve ``gpus`` GPUs, or None: Ray takes fractions up to 1 only.

    Examples:
        >>> gpus_per_worker_problem(0.25) is None, gpus_per_worker_problem(2) is None
        (True, True)
        >>> gpus_per_worker_problem(1.5)
        'must be 0, a fraction up to 1 (workers share a GPU) or a whole number, got 1.5'
    """
    if gpus < 0 or (gpus > 1 and not float(gpus).is_integer()):
        return (
            f"must be 0, a fraction up to 1 (workers share a GPU) or a whole number, got {gpus:g}"
        )
    return None


class RayConfig(BaseModel):
    """The ``ray:`` block: where the cluster is and how each worker is shaped.

    Fields left out (None) take ``serve``'s defaults (see ``pipeline.cli.serve_ray``).

    Attributes:
        address: ``auto``, ``HOST:PORT`` (the head's GCS) or ``ray://HOST:PORT`` (Ray Client).
        workers: worker actors; None: one per GPU in the cluster (one on a CPU-only cluster).
        gpus_per_worker: GPUs each worker reserves (0: CPU; 0.5: two workers per GPU).
        cpus_per_worker: CPUs each worker reserves.
        max_streams_per_worker: streams one worker runs at once.
        failover_timeout_s: how long a worker may go unanswered before its streams move.
    """

    model_config = ConfigDict(extra="forbid")

    address: str = "auto"
    workers: int | None = Field(default=None, ge=1)
    gpus_per_worker: float | None = Field(default=None, ge=0)
    cpus_per_worker: float | None = Field(default=None, ge=0)
    max_streams_per_worker: int | None = Field(default=None, ge=1)
    failover_timeout_s: float | None = Field(default=None, gt=0)

    @field_validator("address")
    @classmethod
    def _address(cls, address: str) -> str:
        problem = ray_address_problem(address.strip())
        if problem is not None:
            raise ValueError(problem)
        return address.strip()

    @field_validator("gpus_per_worker")
    @classmethod
    def _gpus(cls, gpus: float | None) -> float | None:
        problem = None if gpus is None else gpus_per_worker_problem(gpus)
        if problem is not None:
            raise ValueError(problem)
        return gpus
