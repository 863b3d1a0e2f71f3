"""``sam3-stream bench throughput --model PATH --streams N --frames M [--device ...]``."""

from __future__ import annotations

import argparse


def register(benches: argparse._SubParsersAction) -> None:
    parser = benches.add_parser(
        "throughput",
        help="many streams on one model: plain HF loop vs ours, frames/s and where time goes",
        description=(
            "Decodes one clip, then runs the same frames for --streams streams three ways on one "
            "loaded model: the plain HF streaming loop (one session per stream, in turn), this "
            "service's registry with one thread per stream, and the same with the vision "
            "backbone batched across streams. Prints aggregate and per-stream frames/s, the "
            "ratios, and a per-stage breakdown."
        ),
    )
    parser.add_argument("--model", required=True, help="model id or directory")
    parser.add_argument("--streams", type=int, default=2)
    parser.add_argument("--frames", type=int, default=40, help="timed frames per stream")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto", help="auto, float32, bfloat16, float16")
    parser.add_argument("--classes", default="square, circle")
    parser.add_argument("--threshold", type=float, default=0.0)
    parser.add_argument(
        "--gather-window-ms",
        type=float,
        default=20.0,
        help="longest wait for streams of the previous round (tracker's default)",
    )
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument(
        "--max-objects",
        type=int,
        default=None,
        help="cap on objects per stream (random tiny weights otherwise add objects every frame)",
    )
    parser.add_argument("--video", default=None, help="a video file (default: a synthetic clip)")
    parser.add_argument("--size", default="320x240", help="synthetic clip WIDTHxHEIGHT")
    parser.add_argument("--warmup", type=int, default=2, help="untimed frames per stream first")
    parser.add_argument(
        "--repeats", type=int, default=1, help="runs of every variant, order alternating"
    )
    parser.add_argument(
        "--compile-vision", action="store_true", help="torch.compile the vision encoder (CUDA)"
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from pipeline.bench.throughput import format_report, run_throughput_bench
    from pipeline.errors import ConfigError
    from tracker.inputs import normalise_class_names

    if args.streams < 1 or args.frames < 1 or args.warmup < 0 or args.repeats < 1:
        raise ConfigError("--streams, --frames and --repeats must be >= 1, --warmup >= 0")
    if args.gather_window_ms < 0 or args.max_batch < 1:
        raise ConfigError("--gather-window-ms must be >= 0 and --max-batch >= 1")
    try:
        width, height = (int(side) for side in args.size.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--size {args.size!r} must look like 320x240") from None
    classes = list(normalise_class_names(args.classes))
    if not classes:
        raise ConfigError("--classes must name at least one concept, e.g. 'person, car'")
    overrides = {} if args.max_objects is None else {"max_num_objects": args.max_objects}
    report = run_throughput_bench(
        args.model,
        streams=args.streams,
        frames=args.frames,
        device=args.device,
        dtype=args.dtype,
        classes=classes,
        threshold=args.threshold,
        gather_window_ms=args.gather_window_ms,
        max_batch=args.max_batch,
        overrides=overrides,
        video=args.video,
        size=(width, height),
        warmup=args.warmup,
        repeats=args.repeats,
        compile_vision=args.compile_vision,
    )
    print(format_report(report))
    return 0
