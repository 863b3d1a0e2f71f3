"""The list of CLI verbs. Each entry is a ``register(subparsers)`` function from the verb's module.

Add a verb by writing ``pipeline/cli_<verb>.py`` with a ``register`` function that adds a
subparser and sets ``handler=`` to a function taking the parsed ``argparse.Namespace`` and
returning an exit code.
"""

from __future__ import annotations

import importlib

_VERB_MODULES = [
    "pipeline.cli.tiny_model",
    "pipeline.cli.demo",
    "pipeline.cli.run",
    "pipeline.cli.bench",
    "pipeline.cli.serve",
]


def _load() -> list:
    registers = []
    for name in _VERB_MODULES:
        registers.append(importlib.import_module(name).register)
    return registers


REGISTERS = _load()
