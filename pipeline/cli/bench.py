"""``sam3-stream bench ...``: benchmarks that report ratios measured in one run."""

from __future__ import annotations

import argparse
import importlib

# Each module has register_bench(subparsers) adding one `bench <name>` verb.
BENCH_MODULES = [
    "pipeline.cli.bench_session",
    "pipeline.cli.bench_latency",
    "pipeline.cli.bench_throughput",
]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="benchmarks (ratios measured in one run)")
    benches = parser.add_subparsers(dest="bench", required=True, parser_class=type(parser))
    for name in BENCH_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:  # a bench whose module is not there yet
            continue
        module.register_bench(benches)
