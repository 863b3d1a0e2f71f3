"""Roboflow's ``active_learning_sink``, kept as a name that refuses with the way forward."""

from __future__ import annotations

from typing import Any, NoReturn

from sinks.errors import SinkConfigError

ACTIVE_LEARNING_REFUSAL = (
    "active_learning_sink is not supported: it uploads frames to a Roboflow dataset and nothing "
    "here uploads; record frames with sinks.JsonlSink or sinks.VideoFileSink"
)


def active_learning_sink(*args: Any, **kwargs: Any) -> NoReturn:
    """Refuse: Roboflow's Active Learning uploads to its platform, which sam3-stream never calls.

    Exported so code that imports it still imports; any call (directly, or through
    ``functools.partial(active_learning_sink, active_learning_middleware=..., model_type=...)``
    as Roboflow's docs build it) raises at once instead of silently recording nothing.

    Raises:
        SinkConfigError: always, naming the sinks to use instead.
    """
    raise SinkConfigError(ACTIVE_LEARNING_REFUSAL)
