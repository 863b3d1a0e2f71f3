"""``torch.compile`` of SAM3's vision encoder, the one part worth compiling.

The backbone is a fixed-shape ViT (the input is always S x S after preprocessing) and about three
quarters of the per-frame compute at full size; the detector and tracker around it are full of
data-dependent Python (object counts, dict bookkeeping) that compiles poorly. So only
``detector_model.vision_encoder.forward`` is compiled, with static shapes. Module hooks (the stage
timers) stay outside the compiled region because ``forward`` is wrapped, not ``__call__``.

CUDA only: on CPU the inductor build needs a C++ toolchain and takes minutes on small machines for
no measured gain, so the flag is ignored there with a warning rather than failing a CPU run that
shares a GPU deployment's configuration.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

logger = logging.getLogger(__name__)


def compile_vision_encoder(model: Any, device: torch.device, *, max_batch: int) -> bool:
    """Compile ``model.detector_model.vision_encoder`` in place; True when it was compiled.

    Each distinct batch size (1 .. ``max_batch`` with cross-stream batching) is its own static
    graph, compiled on first use; dynamo's recompile limit is raised to allow all of them.
    """
    if device.type != "cuda":
        logger.warning("compile_vision applies to CUDA devices only; running %s eagerly", device)
        return False
    encoder = model.detector_model.vision_encoder
    if getattr(encoder, "_sam3_stream_compiled", False):
        return True
    config = torch._dynamo.config
    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(config, name):
            setattr(config, name, max(getattr(config, name), max_batch + 1))
    encoder.forward = torch.compile(encoder.forward, dynamic=False)
    encoder._sam3_stream_compiled = True
    logger.info("vision encoder compiled (static shapes, up to %d batch sizes)", max_batch)
    return True
