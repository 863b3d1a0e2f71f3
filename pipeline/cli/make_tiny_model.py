"""``sam3-stream make-tiny-model PATH``: write the tiny random SAM3 checkpoint used offline."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "make-tiny-model",
        help="write a tiny randomly initialised SAM3 video checkpoint (tests, offline demo)",
        description="Writes a few-million-parameter random Sam3VideoModel and its processor. "
        "Its masks are meaningless; it exercises the real code path without the gated weights.",
    )
    parser.add_argument("path", help="directory to write")
    parser.add_argument(
        "--image-size", type=int, default=224, help="model input side (multiple of 14)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from pipeline.errors import ConfigError
    from tracker import build_tiny_model

    if args.image_size <= 0 or args.image_size % 14:
        raise ConfigError(f"--image-size must be a positive multiple of 14, got {args.image_size}")
    path = build_tiny_model(args.path, image_size=args.image_size, seed=args.seed)
    print(f"tiny SAM3 video checkpoint written to {path}")
    return 0
