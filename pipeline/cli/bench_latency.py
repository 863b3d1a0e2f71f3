"""``sam3-stream bench latency``: frame age at the sink, this pipeline vs a naive FIFO queue."""

from __future__ import annotations

import argparse
import sys


def register(benches: argparse._SubParsersAction) -> None:
    parser = benches.add_parser(
        "latency",
        help="a live source faster than the model: frame age at the sink, ours vs a FIFO queue",
        description=(
            "Runs a test-pattern camera faster than the model through this pipeline, then "
            "through a naive FIFO queue, and prints frame age at the sink (p50/p95/max per "
            "window) for both. By default the model is a stand-in that sleeps --model-ms per "
            "frame (queueing alone); --model runs a real checkpoint (e.g. the tiny one)."
        ),
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds per table row")
    parser.add_argument("--fps", type=float, default=30.0, help="camera frame rate")
    parser.add_argument("--size", default="320x240", help="camera frame size WIDTHxHEIGHT")
    parser.add_argument(
        "--model-ms", type=float, default=100.0, help="stand-in model time per frame"
    )
    parser.add_argument("--model", default=None, help="a real model (Hub id or directory)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--max-objects", type=int, default=3, help="object cap for --model")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from pipeline.bench.latency import SleepingModel, run_latency_bench
    from pipeline.errors import ConfigError
    from pipeline.loop.contracts import FrameProcessor

    if not (args.duration > 0 and args.interval > 0 and 0 < args.fps <= 240):
        raise ConfigError("--duration and --interval must be > 0, --fps in (0, 240]")
    try:
        width, height = (int(side) for side in args.size.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--size {args.size!r} must look like 320x240") from None
    model: FrameProcessor
    if args.model is None:
        if not args.model_ms > 0:
            raise ConfigError(f"--model-ms must be > 0, got {args.model_ms}")
        model = SleepingModel(args.model_ms / 1000)
        what = f"stand-in model sleeping {args.model_ms:g} ms/frame"
    else:
        from tracker import Sam3VideoTracker, SessionRegistry

        tracker = Sam3VideoTracker.from_pretrained(
            args.model, device=args.device, max_num_objects=args.max_objects
        )
        model = SessionRegistry(tracker)
        what = f"model {args.model} on {tracker.device}"
    title = (
        f"frame age at the sink (s): live source {args.fps:g} fps {width}x{height}, {what}, "
        f"{args.duration:g} s per phase"
    )
    report = run_latency_bench(
        model,
        fps=args.fps,
        size=(width, height),
        duration_s=args.duration,
        interval_s=args.interval,
        title=title,
        progress=lambda message: print(message, file=sys.stderr, flush=True),
    )
    print(report)
    return 0
