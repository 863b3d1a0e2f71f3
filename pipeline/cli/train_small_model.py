"""``sam3-stream train-small-model OUT``: train the small SAM3 on synthetic shapes, on the CPU.

Today this trains the detector (text -> instances, presence) and saves a whole checkpoint that
``Sam3VideoTracker.from_pretrained(OUT)`` loads; the tracker phase (mask propagation with memory)
is added separately, so the saved tracker weights are still the random initialisation.
"""

from __future__ import annotations

import argparse

TRACKER_NOTE = "detector phase only: the tracker phase is added separately (tracker weights random)"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train-small-model",
        help="train a small SAM3 on generated shapes (CPU); detector phase for now",
        description="Trains the transformers SAM3 detector of a small checkpoint on generated "
        "clips of moving shapes (concepts: shape names, colour words, colour + shape) and writes "
        "it to OUT. "
        "The budget is a step count derived from --minutes, so a seed gives the same weights on "
        f"any machine. Note: {TRACKER_NOTE}.",
    )
    parser.add_argument("out", metavar="OUT", help="directory to write the checkpoint to")
    parser.add_argument(
        "--minutes",
        type=float,
        default=30.0,
        help="time budget on 2 CPU cores, turned into a fixed step count (default 30)",
    )
    parser.add_argument("--seed", type=int, default=0, help="initialisation and data seed")
    parser.add_argument(
        "--image-size",
        type=int,
        default=168,
        help="model input side, a multiple of 14 (default 168)",
    )
    parser.add_argument(
        "--concepts",
        choices=("all", "shapes", "colours"),
        default="all",
        help="prompt vocabulary: shape names and colour words (default), shapes, or colours",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from pipeline.errors import ConfigError

    if args.minutes <= 0:
        raise ConfigError(f"--minutes must be positive, got {args.minutes}")
    if args.seed < 0:
        raise ConfigError(f"--seed must be 0 or more, got {args.seed}")
    if args.image_size <= 0 or args.image_size % 14:
        raise ConfigError(f"--image-size must be a positive multiple of 14, got {args.image_size}")
    if args.threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {args.threads}")

    import time

    from tracker.training.shapes_model import save_shapes_model
    from tracker.training.train_detector import seconds_per_step, steps_for_minutes, train_detector

    steps = steps_for_minutes(args.minutes, args.image_size)
    print(
        f"training the detector: {steps} steps at {args.image_size} px "
        f"(~{seconds_per_step(args.image_size):.2f} s/step on 2 cores), seed {args.seed}; "
        f"{TRACKER_NOTE}"
    )
    started = time.perf_counter()
    model, processor, report = train_detector(
        steps=steps,
        seed=args.seed,
        image_size=args.image_size,
        threads=args.threads,
        progress=not args.no_progress,
        concepts=args.concepts,
    )
    minutes = (time.perf_counter() - started) / 60
    card = {
        "trained_on": "synthetic shapes (tracker.training), not SAM3's abilities",
        "phases": ["detector"],
        "note": TRACKER_NOTE,
        "steps": steps,
        "image_size": args.image_size,
        "seed": args.seed,
        "concepts": args.concepts,
        "minutes": round(minutes, 2),
        "backbone_kind_accuracy": report.backbone_kind_accuracy,
        "evaluation": report.evaluation,
        "loss_history": report.history,
    }
    path = save_shapes_model(model, processor, args.out, card)
    figures = report.evaluation
    groups = [("", "shape prompts" if args.concepts != "colours" else "colour prompts")]
    if "colour_presence_accuracy" in figures:
        groups.append(("colour_", "colour prompts"))
    labels = (
        ("presence accuracy", "presence_accuracy"),
        ("recall@0.5", "recall_at_0_5"),
        ("best mask IoU", "best_mask_iou"),
        ("top score hit", "top_score_hit"),
        ("negatives clean", "negatives_clean"),
    )
    for prefix, name in groups:
        parts = ", ".join(f"{label} {figures.get(prefix + key, 0):.3f}" for label, key in labels)
        print(f"held-out {name}: {parts}")
    print(f"({steps} steps, {minutes:.1f} min)")
    print(f"checkpoint written to {path} ({TRACKER_NOTE})")
    return 0
