"""``serve --ray ADDRESS [--ray-*]``: the flags that put streams on a Ray cluster, and their merge.

The flags and the ``ray:`` block of ``serve --config`` (``pipeline.config.ray_config``) become one
``ClusterSettings``; a flag given on the command line wins over the file's field, as every other
serve setting does. Nothing here imports Ray: ``serve --help`` and a server without ``--ray``
must never pay for it (or need it installed), so whether Ray is installed is asked of the import
system (``importlib.util.find_spec``) without importing it.

GPUs per worker: a worker reserves 1 GPU unless told otherwise, except with ``--device cpu``,
where it reserves none (a CPU-only cluster has no GPU to give, and Ray would wait forever to place
a worker asking for one). ``--device cuda`` with 0 GPUs per worker is refused: Ray hides every
GPU from an actor that reserved none.
"""

from __future__ import annotations

import argparse
import importlib.util
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.cluster.settings import ClusterSettings
    from pipeline.config.serve_config import ServeConfig

RAY_EXTRA_HINT = "pip install 'sam3-stream[ray]'"
REACH_TIMEOUT_S = 5.0
"""How long ``serve`` tries to open a TCP connection to the head before saying it is unreachable:
Ray itself keeps retrying a wrong address for minutes before it gives up."""

_FIELDS = {
    # ClusterSettings field: the flag that sets it
    "workers": "--ray-workers",
    "gpus_per_worker": "--ray-gpus-per-worker",
    "cpus_per_worker": "--ray-cpus-per-worker",
    "max_streams_per_worker": "--ray-max-streams-per-worker",
}


def add_ray_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``--ray`` group of ``serve``; every default is None so the config file can fill it."""
    from pipeline.cluster.settings import DEFAULT_STREAMS_PER_WORKER

    group = parser.add_argument_group(
        "Ray cluster (optional extra: " + RAY_EXTRA_HINT + ")",
        "Run streams on Ray worker actors (one per GPU by default) behind this same API; "
        "each worker loads --model from its own disk. Without --ray (and no ray: block in "
        "--config) streams run in this process and Ray is never imported. Each flag "
        "overrides its field of the config's ray: block (--ray-workers: ray.workers).",
    )
    group.add_argument(
        "--ray",
        nargs="?",
        const="auto",
        default=None,
        metavar="ADDRESS",
        help="auto (the cluster `ray start` runs on this machine, or $RAY_ADDRESS; the default "
        "when ADDRESS is left out), HOST:PORT of the head (6379), or ray://HOST:PORT (Ray "
        "Client, 10001); config: ray.address",
    )
    group.add_argument(
        "--ray-workers",
        type=int,
        default=None,
        metavar="N",
        help="worker actors (default: one per GPU in the cluster, one if it has none)",
    )
    group.add_argument(
        "--ray-gpus-per-worker",
        type=float,
        default=None,
        metavar="G",
        help="GPUs each worker reserves: 1 (default), 0.5 for two workers per GPU, 0 for CPU "
        "workers (the default with --device cpu: on a CPU-only cluster pass --device cpu or 0)",
    )
    group.add_argument(
        "--ray-cpus-per-worker",
        type=float,
        default=None,
        metavar="C",
        help="CPUs each worker reserves (default 1)",
    )
    group.add_argument(
        "--ray-max-streams-per-worker",
        type=int,
        default=None,
        metavar="S",
        help=f"streams one worker runs at once (default {DEFAULT_STREAMS_PER_WORKER}); when "
        "every worker is full a new stream is answered 429",
    )


def check_ray_flags(args: argparse.Namespace) -> None:
    """Refuse a bad ``--ray*`` value by its flag, before the config file is read.

    Raises:
        ConfigError: one line naming the flag.
    """
    from pipeline.config.ray_config import gpus_per_worker_problem, ray_address_problem
    from pipeline.errors import ConfigError

    if args.ray is not None:
        problem = ray_address_problem(args.ray.strip())
        if problem is not None:
            raise ConfigError(f"--ray: {problem}", field="--ray")
    minimums: dict[str, tuple[Any, float, str]] = {
        "--ray-workers": (args.ray_workers, 1, "at least 1"),
        "--ray-cpus-per-worker": (args.ray_cpus_per_worker, 0, "0 or more"),
        "--ray-max-streams-per-worker": (args.ray_max_streams_per_worker, 1, "at least 1"),
    }
    for flag, (value, lowest, wanted) in minimums.items():
        if value is not None and value < lowest:
            raise ConfigError(f"{flag} must be {wanted}, got {value:g}", field=flag)
    if args.ray_gpus_per_worker is not None:
        problem = gpus_per_worker_problem(args.ray_gpus_per_worker)
        if problem is not None:
            raise ConfigError(f"--ray-gpus-per-worker {problem}", field="--ray-gpus-per-worker")


def cluster_settings(
    args: argparse.Namespace, config: ServeConfig | None
) -> ClusterSettings | None:
    """What ``--ray*`` flags and the config's ``ray:`` block ask for; None: run in-process.

    Raises:
        ConfigError: a ``--ray-*`` flag without a cluster to apply to, Ray not installed, or a
            GPU setting that contradicts ``--device``; one line naming the flag or field.
    """
    from pipeline.cluster.settings import ClusterSettings
    from pipeline.errors import ConfigError

    check_ray_flags(args)
    block = config.ray if config is not None else None
    given = {field: getattr(args, flag[2:].replace("-", "_")) for field, flag in _FIELDS.items()}
    if args.ray is None and block is None:
        stray = next((_FIELDS[field] for field, value in given.items() if value is not None), None)
        if stray is not None:
            raise ConfigError(
                f"{stray} needs --ray ADDRESS (or a ray: block in --config)", field=stray
            )
        return None
    if importlib.util.find_spec("ray") is None:
        raise ConfigError(
            f"--ray needs Ray, which is not installed: {RAY_EXTRA_HINT}", field="--ray"
        )
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}
    if block is not None:
        for field, value in block.model_dump(exclude_none=True).items():
            values[field], origin[field] = value, f"ray.{field}"
    if args.ray is not None:
        values["address"], origin["address"] = args.ray.strip(), "--ray"
    for field, value in given.items():
        if value is not None:
            values[field], origin[field] = value, _FIELDS[field]
    if "gpus_per_worker" not in values:
        values["gpus_per_worker"] = 0.0 if args.device == "cpu" else 1.0
    elif values["gpus_per_worker"] == 0 and args.device.startswith("cuda"):
        where = origin["gpus_per_worker"]
        raise ConfigError(
            f"{where} is 0 with --device {args.device}: Ray hides the GPUs from a worker "
            "that reserves none (give it a GPU or a fraction of one)",
            field=where,
        )
    try:
        return ClusterSettings(**values)
    except ValueError as error:  # the flags and fields are checked above; this names the rest
        raise ConfigError(f"ray: {error}") from None


def check_head_reachable(settings: ClusterSettings) -> None:
    """Refuse a ``HOST:PORT`` (or ``ray://``) address nothing answers on, in seconds, not minutes.

    ``auto`` is left to Ray, which finds the local cluster (or ``$RAY_ADDRESS``) by itself and
    says so at once when there is none.

    Raises:
        ConfigError: nothing accepts a connection at the address within ``REACH_TIMEOUT_S``.
    """
    import socket

    from pipeline.errors import ConfigError

    if settings.address == "auto":
        return
    host, _, port = settings.address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=REACH_TIMEOUT_S).close()
    except OSError as error:
        reason = error.strerror or str(error) or type(error).__name__
        raise ConfigError(
            f"--ray: cannot reach a Ray head at {settings.address} ({reason}); start one with "
            "`ray start --head` or check the address",
            field="--ray",
        ) from None
