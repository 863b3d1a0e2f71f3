"""How a worker loads the same model as the front door: a small picklable recipe.

The front door's ``ModelEngine`` holds a loader closure that may capture anything (the CLI's
arguments, an API key among them); that must not be pickled to every node. A ``TrackerSpec`` says
only what loading needs. On a real cluster ``model`` must resolve on every node that runs a
worker: a directory present at the same path on each node (a shared mount, or the same image),
or a Hub id already in each node's cache (workers never download).

Examples:
    >>> spec = TrackerSpec("facebook/sam3", device="cpu")
    >>> spec.model, spec.device
    ('facebook/sam3', 'cpu')
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class TrackerSpec:
    """``Sam3VideoTracker.from_pretrained(model, device=..., **options)`` as data.

    Attributes:
        model: Hub id or local directory (resolved on the worker, ``tracker.weights``).
        device: ``auto`` picks the GPU Ray gave the worker, if any.
        options: other ``from_pretrained`` keywords (``batch_streams``, config overrides such as
            ``max_num_objects``).
    """

    model: str
    device: str = "auto"
    options: Mapping[str, Any] = field(default_factory=dict)

    def __call__(self) -> Any:
        """Load the tracker (on the worker)."""
        from tracker import Sam3VideoTracker
        from tracker.weights import resolve_model

        return Sam3VideoTracker.from_pretrained(
            resolve_model(self.model), device=self.device, **dict(self.options)
        )
