"""``sam3-stream bench session --model PATH --frames N [--churn]``."""

from __future__ import annotations

import argparse

_FRAMES, _INTERVAL = 600, 100
_CHURN_FRAMES, _CHURN_INTERVAL = 400, 50
_PLAIN_FRAMES, _PLAIN_BUDGET_S = 100, 120.0


def register(benches: argparse._SubParsersAction) -> None:
    parser = benches.add_parser(
        "session",
        help="plain HF streaming session vs ours: memory held, RSS, per-frame time",
        description="Without --churn: the same sample clip, objects capped for both, memory and "
        "time compared. With --churn: 640x360 frames of four moving circles at threshold 0, "
        "where the detector adds objects every frame; plain HF (stopped early: it slows down "
        "without bound) vs ours under its object budget.",
    )
    parser.add_argument("--model", required=True, help="model id or directory")
    parser.add_argument(
        "--frames",
        type=int,
        default=None,
        help=f"frames (default {_FRAMES}; with --churn {_CHURN_FRAMES}, ours)",
    )
    parser.add_argument(
        "--interval",
        type=int,
        default=None,
        help=f"frames per printed row (default {_INTERVAL}; with --churn {_CHURN_INTERVAL})",
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--classes", default="square, circle")
    parser.add_argument(
        "--max-objects",
        type=int,
        default=None,
        help="without --churn: the port's max_num_objects for both variants (random tiny "
        "weights otherwise add objects every frame); with --churn: our object budget "
        "(default: the tracker's), plain HF has none",
    )
    parser.add_argument(
        "--churn",
        action="store_true",
        help="detection churn: plain HF vs ours while new objects appear every frame",
    )
    parser.add_argument(
        "--prompted",
        action="store_true",
        help="box-prompted tracking (two boxes on frame 0, no classes): the port's unpruned "
        "tracker-video session vs ours",
    )
    parser.add_argument(
        "--plain-frames",
        type=int,
        default=_PLAIN_FRAMES,
        help=f"--churn: frames plain HF runs at most (default {_PLAIN_FRAMES})",
    )
    parser.add_argument(
        "--plain-budget-s",
        type=float,
        default=_PLAIN_BUDGET_S,
        help=f"--churn: plain HF stops after this many seconds (default {_PLAIN_BUDGET_S:.0f})",
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from pipeline.errors import ConfigError
    from tracker.inputs import normalise_class_names

    frames = args.frames if args.frames is not None else _CHURN_FRAMES if args.churn else _FRAMES
    interval = args.interval or (_CHURN_INTERVAL if args.churn else _INTERVAL)
    if args.max_objects is not None and args.max_objects < 1:
        raise ConfigError(f"--max-objects must be at least 1, got {args.max_objects}")
    if args.churn:
        return _run_churn(args, frames, interval, list(normalise_class_names(args.classes)))
    if frames < interval or interval < 1:
        raise ConfigError("--frames must be at least --interval, and --interval at least 1")
    from pipeline.bench.session import format_report, run_session_bench

    if args.prompted:
        from pipeline.bench.prompted import run_prompted_bench

        prompted = run_prompted_bench(
            args.model, frames=frames, interval=interval, device=args.device
        )
        print(format_report(prompted))
        return 0

    overrides = {} if args.max_objects is None else {"max_num_objects": args.max_objects}
    results = run_session_bench(
        args.model,
        frames=frames,
        interval=interval,
        device=args.device,
        classes=list(normalise_class_names(args.classes)),
        overrides=overrides,
    )
    print(format_report(results))
    return 0


def _run_churn(args: argparse.Namespace, frames: int, interval: int, classes: list[str]) -> int:
    from pipeline.bench.churn import format_churn_report, run_churn_bench
    from pipeline.errors import ConfigError

    if frames < 1 or interval < 1 or args.plain_frames < 1:
        raise ConfigError("--frames, --interval and --plain-frames must be at least 1")
    if not args.plain_budget_s > 0:
        raise ConfigError(f"--plain-budget-s must be > 0, got {args.plain_budget_s}")
    runs = run_churn_bench(
        args.model,
        frames=frames,
        plain_frames=args.plain_frames,
        plain_budget_s=args.plain_budget_s,
        interval=interval,
        device=args.device,
        classes=classes,
        max_objects=args.max_objects,
    )
    print(format_churn_report(runs, interval=interval, max_objects=args.max_objects))
    return 0
