"""``sam3-stream train-small-model OUT``: train the small SAM3 on synthetic shapes, on the CPU.

Trains the detector (text -> instances, presence), picks its detection threshold on held-out
frames, then trains the tracker (mask propagation with memory) on the detector's frozen features,
and saves a whole checkpoint that ``Sam3VideoTracker.from_pretrained(OUT)`` loads.
"""

from __future__ import annotations

import argparse

DETECTOR_SHARE = 0.7
"""Share of ``--minutes`` for the detector; the tracker phase gets the rest."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train-small-model",
        help="train a small SAM3 on generated shapes (CPU): detector, then tracker",
        description="Trains the transformers SAM3 detector of a small checkpoint on generated "
        "clips of moving shapes (concepts: shape names, colour words, colour + shape), then its "
        "tracker, and writes it to OUT. "
        "The budget is a step count derived from --minutes, so a seed gives the same weights on "
        "any machine.",
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

    from tracker.training.detector_eval import calibrate_threshold, evaluate_detector
    from tracker.training.detector_frames import scene_for
    from tracker.training.losses import mean_parts
    from tracker.training.shapes_model import apply_thresholds, save_shapes_model
    from tracker.training.train_detector import seconds_per_step, steps_for_minutes, train_detector
    from tracker.training.train_tracker import (
        TrackerTrainingConfig,
        evaluate_tracker,
        tracker_steps_for_minutes,
        train_tracker,
    )

    detector_minutes = args.minutes * DETECTOR_SHARE
    steps = steps_for_minutes(detector_minutes, args.image_size)
    tracker_steps = tracker_steps_for_minutes(args.minutes - detector_minutes, args.image_size)
    print(
        f"training the detector: {steps} steps at {args.image_size} px "
        f"(~{seconds_per_step(args.image_size):.2f} s/step on 2 cores), then the tracker: "
        f"{tracker_steps} clips; seed {args.seed}"
    )
    started = time.perf_counter()
    model, processor, report = train_detector(
        steps=steps,
        seed=args.seed,
        image_size=args.image_size,
        threads=args.threads,
        progress=not args.no_progress,
        concepts=args.concepts,
        eval_images=0,
    )
    detector = model.detector_model
    calibration = calibrate_threshold(
        detector, processor.tokenizer, args.image_size, concepts=args.concepts
    )
    apply_thresholds(model.config, calibration.threshold)
    figures = evaluate_detector(
        detector,
        processor.tokenizer,
        args.image_size,
        concepts=args.concepts,
        threshold=calibration.threshold,
    )
    tracker_config = TrackerTrainingConfig(
        steps=tracker_steps, seed=args.seed, scene=scene_for(args.image_size)
    )
    tracker_report = train_tracker(model, tracker_config, progress=not args.no_progress)
    tracking = evaluate_tracker(model, config=tracker_config)
    minutes = (time.perf_counter() - started) / 60
    card = {
        "trained_on": "synthetic shapes (tracker.training), not SAM3's abilities",
        "phases": ["detector", "tracker"],
        "steps": steps,
        "tracker_steps": tracker_steps,
        "image_size": args.image_size,
        "seed": args.seed,
        "concepts": args.concepts,
        "minutes": round(minutes, 2),
        "backbone_kind_accuracy": report.backbone_kind_accuracy,
        "calibration": vars(calibration),
        "evaluation": figures,
        "tracking": vars(tracking),
        "loss_history": report.history,
        "tracker_loss_last_100": mean_parts(tracker_report.history[-100:]),
    }
    path = save_shapes_model(model, processor, args.out, card)
    groups = [("", "shape prompts" if args.concepts != "colours" else "colour prompts")]
    if "colour_presence_accuracy" in figures:
        groups.append(("colour_", "colour prompts"))
    labels = (
        ("presence accuracy", "presence_accuracy"),
        ("recall", "recall_at_0_5"),
        ("best mask IoU", "best_mask_iou"),
        ("top score hit", "top_score_hit"),
        ("negatives clean", "negatives_clean"),
    )
    print(
        f"detection threshold {calibration.threshold:g} (calibrated on held-out frames: "
        f"{calibration.positives_found:.3f} of present concepts found, "
        f"{calibration.negatives_clean:.3f} of absent ones clean)"
    )
    for prefix, name in groups:
        parts = ", ".join(f"{label} {figures.get(prefix + key, 0):.3f}" for label, key in labels)
        print(f"held-out {name}: {parts}")
    print(
        f"held-out tracking: mask IoU {tracking.mean_iou:.3f} "
        f"(copying the first mask: {tracking.copy_first_iou:.3f}, {tracking.pairs} object-frames)"
    )
    print(f"({steps} detector steps, {tracker_steps} tracker clips, {minutes:.1f} min)")
    print(f"checkpoint written to {path}")
    return 0
