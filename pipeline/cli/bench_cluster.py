"""``sam3-stream bench cluster [--model DIR] [--streams N] [--workers K] [--ray ADDRESS] ...``."""

from __future__ import annotations

import argparse
import logging
import os


def register(benches: argparse._SubParsersAction) -> None:
    parser = benches.add_parser(
        "cluster",
        help="the same camera streams in-process vs on K Ray workers: fps and frame age at the "
        "front door",
        description=(
            "Plays one generated clip as --streams real-time cameras through the service app, "
            "first in this process, then on --workers Ray worker actors (the cluster at --ray, "
            "or a local one the bench starts and stops), creating streams over HTTP and reading "
            "detections over SSE. Prints aggregate frames/s and frame age (p50/p95/max) at the "
            "front door for both, the cluster/in-process ratios, and a JSON line. On a machine "
            "with fewer devices than workers the workers share its cores: no speed-up is "
            "expected there, the ratio shows the Ray path's overhead; on a multi-GPU host use "
            "--device cuda --workers <GPUs> --streams 4x that."
        ),
    )
    parser.add_argument(
        "--model",
        default=None,
        help="model id or directory, which must exist on every node of the cluster (default: "
        "a tiny random checkpoint built for the run on this machine; figures then measure the "
        "plumbing, not SAM3)",
    )
    parser.add_argument("--streams", type=int, default=4, help="camera streams (default 4)")
    parser.add_argument("--workers", type=int, default=2, help="Ray worker actors (default 2)")
    parser.add_argument(
        "--duration", type=float, default=20.0, help="measured seconds (default 20)"
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=5.0,
        help="seconds after every stream's first event before the window starts (default 5)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="runs of each variant, order alternating (in, cluster, cluster, in, ...); "
        "figures pool all runs (default 1)",
    )
    parser.add_argument("--fps", type=int, default=15, help="the cameras' frame rate (default 15)")
    parser.add_argument("--size", default="320x240", help="the clip's WIDTHxHEIGHT")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda (for both variants)")
    parser.add_argument("--classes", default="square, circle")
    parser.add_argument("--threshold", type=float, default=0.0)
    parser.add_argument(
        "--max-objects", type=int, default=3, help="object budget per stream (default 3)"
    )
    parser.add_argument(
        "--ray",
        default=None,
        metavar="ADDRESS",
        help="a running cluster (auto, HOST:PORT, ray://HOST:PORT); default: start a local "
        "one-node cluster for the run and stop it after",
    )
    parser.add_argument(
        "--gpus-per-worker",
        type=float,
        default=None,
        help="GPUs each worker reserves (default: 1 when the bench runs on CUDA, else 0)",
    )
    parser.add_argument("--cpus-per-worker", type=float, default=1.0)
    parser.add_argument(
        "--local-cpus",
        type=int,
        default=None,
        help="CPUs the local cluster offers (default: the machine's, at least what the "
        "workers reserve)",
    )
    parser.add_argument(
        "--start-timeout",
        type=float,
        default=300.0,
        help="seconds for the model/workers to load and every stream to send a first event",
    )
    parser.set_defaults(handler=_run)


def _check(args: argparse.Namespace) -> tuple[int, int]:
    """Every argument checked before anything loads; returns the clip size.

    Raises:
        ConfigError: one line naming the flag.
    """
    import importlib.util

    from pipeline.config.ray_config import gpus_per_worker_problem, ray_address_problem
    from pipeline.errors import ConfigError

    for flag, value in (("--streams", args.streams), ("--workers", args.workers)):
        if value < 1:
            raise ConfigError(f"{flag} must be at least 1, got {value}", field=flag)
    if args.workers > args.streams:
        raise ConfigError(
            f"--workers {args.workers} is more than --streams {args.streams}: a worker "
            "would run nothing",
            field="--workers",
        )
    if args.repeats < 1:
        raise ConfigError(f"--repeats must be at least 1, got {args.repeats}", field="--repeats")
    if args.duration <= 0 or args.warmup < 0:
        raise ConfigError("--duration must be > 0 and --warmup >= 0", field="--duration")
    if args.fps < 1 or args.max_objects < 1:
        raise ConfigError("--fps and --max-objects must be at least 1", field="--fps")
    if args.start_timeout <= 0:
        raise ConfigError("--start-timeout must be > 0", field="--start-timeout")
    if not 0.0 <= args.threshold <= 1.0:
        raise ConfigError(f"--threshold must be in [0, 1], got {args.threshold}")
    try:
        width, height = (int(side) for side in args.size.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--size {args.size!r} must look like 320x240", field="--size") from None
    if width < 16 or height < 16:
        raise ConfigError(f"--size {args.size!r}: at least 16x16", field="--size")
    if args.ray is not None and (problem := ray_address_problem(args.ray)) is not None:
        raise ConfigError(f"--ray: {problem}", field="--ray")
    if args.gpus_per_worker is not None and (
        problem := gpus_per_worker_problem(args.gpus_per_worker)
    ):
        raise ConfigError(f"--gpus-per-worker {problem}", field="--gpus-per-worker")
    if args.cpus_per_worker < 0:
        raise ConfigError("--cpus-per-worker must be 0 or more", field="--cpus-per-worker")
    if args.local_cpus is not None and args.local_cpus < 1:
        raise ConfigError("--local-cpus must be at least 1", field="--local-cpus")
    if importlib.util.find_spec("ray") is None:
        raise ConfigError("bench cluster needs Ray: pip install 'sam3-stream[ray]'")
    return width, height


def _run(args: argparse.Namespace) -> int:
    import json
    import math
    import tempfile

    from pipeline.bench.cluster import ClusterBenchSetup, format_report, run_cluster_bench
    from pipeline.errors import ConfigError
    from tracker.inputs import normalise_class_names

    size = _check(args)
    if not args.verbose:  # one access-log line per request would bury the table
        for name in ("httpx", "pipeline.service.access_log"):
            logging.getLogger(name).setLevel(logging.WARNING)
    classes = list(normalise_class_names(args.classes))
    if not classes:
        raise ConfigError("--classes must name at least one concept, e.g. 'person, car'")
    device = _device(args.device)
    gpus = args.gpus_per_worker
    if gpus is None:
        gpus = 1.0 if device.startswith("cuda") else 0.0
    local_cpus = args.local_cpus or max(
        os.cpu_count() or 1, math.ceil(args.workers * args.cpus_per_worker)
    )
    with tempfile.TemporaryDirectory(prefix="sam3-bench-model-") as scratch:
        model = args.model or _tiny_model(scratch)
        setup = ClusterBenchSetup(
            model=model,
            streams=args.streams,
            workers=args.workers,
            duration_s=args.duration,
            warmup_s=args.warmup,
            fps=args.fps,
            size=size,
            device=device,
            classes=classes,
            threshold=args.threshold,
            max_objects=args.max_objects,
            ray_address=args.ray,
            gpus_per_worker=gpus,
            cpus_per_worker=args.cpus_per_worker,
            local_cpus=local_cpus,
            start_timeout_s=args.start_timeout,
            repeats=args.repeats,
        )
        report = run_cluster_bench(setup)
    print(format_report(report))
    print(json.dumps(report.as_dict(), allow_nan=False), flush=True)
    return 0


def _device(device: str) -> str:
    """``auto`` made concrete here, so both variants and the workers run on the same kind."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _tiny_model(scratch: str) -> str:
    from tracker import build_tiny_model

    print("no --model: building a tiny random checkpoint (figures measure the plumbing)")
    return str(build_tiny_model(os.path.join(scratch, "tiny-sam3"), image_size=224, seed=0))
