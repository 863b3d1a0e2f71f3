"""Where the real SAM3 weights are, if anywhere on this machine."""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)

REAL_MODEL = "facebook/sam3"


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
