"""Where the real SAM3 weights are, if anywhere on this machine."""

from __future__ import annotations

import logging
import os

logger = logging.getLogger(__name__)

REAL_MODEL = "facebook/sam3"
MODEL_ENV = "SAM3_STREAM_MODEL"
"""Environment variable: where ``facebook/sam3`` loads from (a local directory holding it)."""


def resolve_model(model: str) -> str:
    """The path or Hub id to load for ``model``.

    ``facebook/sam3`` loads from ``$SAM3_STREAM_MODEL`` when that is set, so that code and
    workflows naming the default model run unchanged on a machine whose weights lie in a local
    directory (an air-gapped site, a mounted volume). Any other value is returned as it is.
    """
    if model == REAL_MODEL:
        return os.environ.get(MODEL_ENV) or model
    return model


def real_weights_available(model: str = REAL_MODEL) -> bool:
    """True when ``model``'s config and weights are already in the local Hugging Face cache.

    Never touches the network: the demo and tests must not start a 3.4 GB download.
    """
    try:
        from huggingface_hub import snapshot_download

        path = snapshot_download(
            model, local_files_only=True, allow_patterns=["config.json", "*.safetensors"]
        )
    except Exception as error:  # not cached, gated, offline: all mean "no"
        logger.debug("real weights for %s not available locally: %s", model, error)
        return False
    from pathlib import Path

    return any(Path(path).glob("*.safetensors"))
