"""The ``sam3-stream`` command line: one parser, the verbs in ``VERBS``, benchmarks in ``BENCHES``.

Each verb lives in its own module with a ``register(subparsers)`` function that adds its parser
and sets ``handler=`` to a function taking the parsed ``argparse.Namespace`` and returning the exit
code. Add a verb by writing that module and listing its ``register`` here. Verb modules import
nothing heavy at module level (the model, torch and the service load inside handlers), so
``sam3-stream --help`` answers at once.

User errors (``Sam3StreamError`` and friends) print one line and exit with code 2; nothing else is
caught, so internal bugs keep their traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from pipeline.cli import (
    bench_cluster,
    bench_image,
    bench_latency,
    bench_quality,
    bench_session,
    bench_throughput,
    demo,
    make_tiny_model,
    run,
    segment,
    serve,
    train_small_model,
)

Register = Callable[[argparse._SubParsersAction], None]


def _register_bench(subparsers: argparse._SubParsersAction) -> None:
    """``sam3-stream bench <name>``: one sub-verb per entry of ``BENCHES``."""
    parser = subparsers.add_parser("bench", help="benchmarks (ratios measured in one run)")
    benches = parser.add_subparsers(dest="bench", required=True, parser_class=type(parser))
    for register in BENCHES:
        register(benches)


VERBS: list[Register] = [
    make_tiny_model.register,
    train_small_model.register,
    demo.register,
    run.register,
    segment.register,
    _register_bench,
    serve.register,
]
BENCHES: list[Register] = [
    bench_session.register,
    bench_latency.register,
    bench_throughput.register,
    bench_image.register,
    bench_quality.register,
    bench_cluster.register,
]


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse prints usage plus the error; we keep that but guarantee exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"sam3-stream: error: {message}\n")


def build_parser(verbs: Sequence[Register] = VERBS) -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="sam3-stream",
        description="Streaming SAM3 video tracking: files, RTSP cameras and webcams to sinks.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="verb", required=True, parser_class=OneLineErrorParser)
    for register in verbs:
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None, *, verbs: Sequence[Register] = VERBS) -> int:
    """Parse ``argv`` with ``verbs`` (all by default), run the verb, return its exit code."""
    args = build_parser(verbs).parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from pipeline.errors import Sam3StreamError  # imports the tracker package: after parsing

    try:
        return int(args.handler(args) or 0)
    except Sam3StreamError as error:
        print(f"sam3-stream: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
