"""``sam3-stream bench quality --model PATH [--clips N] [--frames F] [--size WxH] [--seed S]``."""

from __future__ import annotations

import argparse
import json

_CLIPS, _FRAMES, _SIZE, _SEED = 4, 32, "320x240", 10_000  # _SEED: quality.HELD_OUT_SEED_START


def register(benches: argparse._SubParsersAction) -> None:
    parser = benches.add_parser(
        "quality",
        help="tracking quality on held-out synthetic clips: ours vs plain HF (MOTA, IDF1, IoU)",
        description="Generates N clips of moving shapes from seeds S..S+N-1 (held out: training "
        f"seeds stay below {_SEED}), prompts each clip with the shape names present in it, "
        "runs the frames through our streaming registry and through the plain HF loop (each "
        "in its own process), and scores both against the ground truth with motmetrics: "
        "MOTA, IDF1, ID switches, precision, recall, FP, FN, mostly tracked, and the mean mask "
        "IoU of matched pairs (match: mask IoU >= 0.5), per concept and over all. Prints a "
        "table per variant, the ours/plain ratios and ms/frame, then one JSON line.",
    )
    parser.add_argument(
        "--model",
        default=None,
        help="model id or directory (default: the bundled small SAM3 trained on shapes, "
        "which knows colour words: pass --classes red green ...)",
    )
    parser.add_argument("--clips", type=int, default=_CLIPS, help=f"clips (default {_CLIPS})")
    parser.add_argument(
        "--frames", type=int, default=_FRAMES, help=f"frames per clip (default {_FRAMES})"
    )
    parser.add_argument("--size", default=_SIZE, help=f"frame WIDTHxHEIGHT (default {_SIZE})")
    parser.add_argument(
        "--seed", type=int, default=_SEED, help=f"first clip's seed (default {_SEED})"
    )
    parser.add_argument(
        "--classes",
        nargs="+",
        default=None,
        help="concepts prompted on every clip, e.g. circle red 'red star' (default: the "
        "shape names present in each clip); absent ones count their detections as FP",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="output score threshold (default: the threshold train-small-model calibrated "
        "into a shapes checkpoint's config, else 0.5)",
    )
    parser.add_argument(
        "--max-objects",
        type=int,
        default=None,
        help="ours' live-track budget per stream (default: the tracker's)",
    )
    parser.add_argument("--device", default="auto")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    import sys

    from pipeline.bench.quality import (
        HELD_OUT_SEED_START,
        QualitySettings,
        format_report,
        report_json,
        run_quality_bench,
    )
    from pipeline.errors import ConfigError

    try:
        width, height = (int(side) for side in args.size.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--size {args.size!r} must look like 320x240", field="size") from None
    if args.seed < 0:
        raise ConfigError(f"--seed must be 0 or more, got {args.seed}", field="seed")
    classes = [name for entry in args.classes or [] for name in entry.split(",") if name.strip()]
    model, threshold = _model_and_threshold(args.model, args.threshold)
    try:
        settings = QualitySettings(
            model=model,
            clips=args.clips,
            frames=args.frames,
            width=width,
            height=height,
            seed=args.seed,
            classes=tuple(classes),
            threshold=threshold,
            device=args.device,
            max_objects=args.max_objects,
        )
    except ValueError as error:  # "field: why", the field as its flag
        field, _, why = str(error).partition(": ")
        raise ConfigError(f"--{field.replace('_', '-')}: {why}", field=field) from None
    if args.seed < HELD_OUT_SEED_START:
        print(
            f"sam3-stream: warning: seeds below {HELD_OUT_SEED_START} may be training clips; "
            "the figures are then not held-out figures",
            file=sys.stderr,
        )
    results = run_quality_bench(settings)
    print(format_report(settings, results))
    print(json.dumps(report_json(settings, results)))
    return 0


def _model_and_threshold(model: str | None, threshold: float | None) -> tuple[str, float]:
    """The model to measure (the bundled one by default) and its output threshold: as given,
    else the one calibrated into a shapes checkpoint, else 0.5 (SAM3's usual)."""
    from pipeline.errors import ConfigError
    from tracker.shapes_checkpoint import is_shapes_model, shapes_model_path, shapes_model_threshold

    if model is None:
        try:
            model = str(shapes_model_path())
        except FileNotFoundError as error:
            raise ConfigError(f"--model: {error}", field="model") from None
    if threshold is not None:
        return model, threshold
    if is_shapes_model(model):
        try:
            return model, shapes_model_threshold(model)
        except ValueError as error:
            raise ConfigError(f"--threshold: {error}", field="threshold") from None
    return model, 0.5
