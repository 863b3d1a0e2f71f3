"""``sam3-stream bench session --model PATH --frames N``."""

from __future__ import annotations

import argparse


def register(benches: argparse._SubParsersAction) -> None:
    parser = benches.add_parser(
        "session",
        help="plain HF streaming session vs ours: memory held, RSS, per-frame time",
    )
    parser.add_argument("--model", required=True, help="model id or directory")
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--interval", type=int, default=100, help="frames per printed row")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--classes", default="square, circle")
    parser.add_argument(
        "--max-objects",
        type=int,
        default=None,
        help="cap on objects (random tiny weights otherwise add objects every frame)",
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from pipeline.bench.session import format_report, run_session_bench
    from pipeline.errors import ConfigError
    from tracker.inputs import normalise_class_names

    if args.frames < args.interval or args.interval < 1:
        raise ConfigError("--frames must be at least --interval, and --interval at least 1")
    overrides = {} if args.max_objects is None else {"max_num_objects": args.max_objects}
    results = run_session_bench(
        args.model,
        frames=args.frames,
        interval=args.interval,
        device=args.device,
        classes=list(normalise_class_names(args.classes)),
        overrides=overrides,
    )
    print(format_report(results))
    return 0
