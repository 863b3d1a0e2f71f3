"""Where a frame's time goes: light per-stage timers for the throughput benchmark.

``StageClock`` sums seconds per stage across threads. ``Sam3VideoTracker`` times its own
preprocess, postprocess and prune steps when a clock is attached; module hooks time the parts of
the HF forward it cannot see into: the vision backbone, the DETR detector, and the whole forward
(``tracker`` is the forward minus the detector and minus any backbone run inside it). Hooks cost a
few microseconds per call; on CUDA they synchronise the device so times land in the right stage,
which also removes some CPU/GPU overlap — fine for a breakdown, not for peak figures.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch

STAGES = (
    "decode",
    "preprocess",
    "backbone",
    "detector",
    "tracker",
    "postprocess",
    "prune",
    "sinks",
)


class StageClock:
    """Thread-safe seconds per stage.

    Examples:
        >>> clock = StageClock()
        >>> with clock.measure("sinks"):
        ...     pass
        >>> sorted(clock.totals())
        ['sinks']
    """

    def __init__(self, synchronize: Callable[[], None] | None = None) -> None:
        self._synchronize = synchronize
        self._lock = threading.Lock()
        self._totals: dict[str, float] = {}
        self._local = threading.local()

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self._totals[stage] = self._totals.get(stage, 0.0) + seconds

    @contextlib.contextmanager
    def measure(self, stage: str) -> Iterator[None]:
        self._sync()
        started = time.perf_counter()
        try:
            yield
        finally:
            self._sync()
            self.add(stage, time.perf_counter() - started)

    def totals(self) -> dict[str, float]:
        """Seconds per stage; ``tracker`` derived from the forward as the module docstring says."""
        with self._lock:
            totals = dict(self._totals)
        forward = totals.pop("_forward", 0.0)
        inside = totals.pop("_backbone_in_forward", 0.0)
        if forward:
            totals["tracker"] = max(0.0, forward - totals.get("detector", 0.0) - inside)
        return totals

    def reset(self) -> None:
        with self._lock:
            self._totals.clear()

    def _sync(self) -> None:
        if self._synchronize is not None:
            self._synchronize()

    def attach(self, model: Any) -> list[Any]:
        """Time a ``Sam3VideoModel``'s backbone, detector and forward; returns the hook handles."""
        handles: list[Any] = []
        for module, stage in (
            (model, "_forward"),
            (model.detector_model, "detector"),
            (model.detector_model.vision_encoder, "backbone"),
        ):
            handles.append(module.register_forward_pre_hook(self._pre_hook(stage)))
            handles.append(module.register_forward_hook(self._post_hook(stage)))
        return handles

    def _starts(self) -> dict[str, list[float]]:
        starts = getattr(self._local, "starts", None)
        if starts is None:
            starts = self._local.starts = {}
        return starts

    def _pre_hook(self, stage: str) -> Callable[..., None]:
        def hook(module: torch.nn.Module, args: Any) -> None:
            self._sync()
            self._starts().setdefault(stage, []).append(time.perf_counter())

        return hook

    def _post_hook(self, stage: str) -> Callable[..., None]:
        def hook(module: torch.nn.Module, args: Any, output: Any) -> None:
            self._sync()
            starts = self._starts()
            elapsed = time.perf_counter() - starts[stage].pop()
            self.add(stage, elapsed)
            if stage == "backbone" and starts.get("_forward"):
                self.add("_backbone_in_forward", elapsed)

        return hook


def detach(handles: list[Any]) -> None:
    """Remove the hooks ``StageClock.attach`` installed."""
    for handle in handles:
        handle.remove()
