"""``sam3-stream bench image --model PATH [--prompts N] [--repeats R]``."""

from __future__ import annotations

import argparse
import sys


def register(benches: argparse._SubParsersAction) -> None:
    parser = benches.add_parser(
        "image",
        help="N concept prompts per image: one batched request vs one forward per prompt",
        description=(
            "Loads the model once, then serves the same N text prompts on one image two ways, "
            "alternating: one request carrying all N (one vision pass, prompts batched) and one "
            "request per prompt. Prints ms per request (median, p90) both ways and the ratio, "
            "then the same as one JSON line."
        ),
    )
    parser.add_argument("--model", required=True, help="model id or directory")
    parser.add_argument("--prompts", type=int, default=8, help="prompts per request (1-16)")
    parser.add_argument("--repeats", type=int, default=5, help="timed requests per way")
    parser.add_argument("--warmup", type=int, default=1, help="untimed requests per way first")
    parser.add_argument("--size", default="640x480", help="synthetic image WIDTHxHEIGHT")
    parser.add_argument("--image", default=None, help="an image file instead of the synthetic one")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto", help="auto, float32, bfloat16, float16")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from pipeline.bench.image import format_report, run_image_bench
    from pipeline.errors import ConfigError
    from tracker.image import MAX_PROMPTS

    if not 1 <= args.prompts <= MAX_PROMPTS:
        raise ConfigError(f"--prompts must be in [1, {MAX_PROMPTS}], got {args.prompts}")
    if args.repeats < 1 or args.warmup < 0:
        raise ConfigError("--repeats must be >= 1 and --warmup >= 0")
    try:
        width, height = (int(side) for side in args.size.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--size {args.size!r} must look like 640x480") from None
    if width < 1 or height < 1:
        raise ConfigError(f"--size {args.size!r} must be positive")
    try:
        report = run_image_bench(
            args.model,
            prompts=args.prompts,
            repeats=args.repeats,
            warmup=args.warmup,
            size=(width, height),
            device=args.device,
            dtype=args.dtype,
            image=args.image,
            progress=lambda message: print(message, file=sys.stderr, flush=True),
        )
    except ValueError as error:  # an unreadable --image, from the model side
        raise ConfigError(" ".join(str(error).split())) from None
    print(format_report(report))
    return 0
