"""The ``sam3-stream`` command line: one parser, each verb registered by its own module.

User errors (``Sam3StreamError`` and friends) print one line and exit with code 2; nothing else is
caught, so internal bugs keep their traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from pipeline.errors import Sam3StreamError

Register = Callable[[argparse._SubParsersAction], None]


def _verb_modules() -> list[Register]:
    """Each verb lives in its own module; imported lazily so `--help` stays fast."""
    from pipeline.cli import verbs as cli_verbs

    return cli_verbs.REGISTERS


class _OneLineErrorParser(argparse.ArgumentParser):
    """argparse prints usage plus the error; we keep that but guarantee exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"sam3-stream: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineErrorParser(
        prog="sam3-stream",
        description="Streaming SAM3 video tracking: files, RTSP cameras and webcams to sinks.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="verb", required=True, parser_class=_OneLineErrorParser)
    for register in _verb_modules():
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.handler(args) or 0)
    except Sam3StreamError as error:
        print(f"sam3-stream: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
