"""Which checkpoint an image API's ``model_id`` names, and loading it as the video model.

Image APIs reuse the loaded ``Sam3VideoTracker``: its ``Sam3VideoModel`` holds the detector
(``Sam3Model``, concept segmentation) and the tracker's prompt encoder and mask decoder
(interactive segmentation), so one checkpoint serves streams and images.
"""

from __future__ import annotations

import torch

from tracker.errors import ModelLoadError
from tracker.model import Sam3VideoTracker
from tracker.weights import MODEL_ENV, REAL_MODEL, real_weights_available, resolve_model

ROBOFLOW_MODEL_IDS = ("sam3/sam3_final", "sam3", REAL_MODEL)
"""Roboflow's names for SAM3 (and the Hub id): all mean ``facebook/sam3`` here."""


def checkpoint_for(model_id: str) -> str:
    """The Hub id or directory to load for ``model_id``.

    ``sam3/sam3_final`` (Roboflow's id) and ``facebook/sam3`` load ``facebook/sam3`` from
    ``$SAM3_STREAM_MODEL`` or the local Hugging Face cache; anything else is a directory.
    """
    if not isinstance(model_id, str) or not model_id:
        raise ValueError(f"model_id must be a non-empty string, got {model_id!r}")
    if model_id in ROBOFLOW_MODEL_IDS:
        return resolve_model(REAL_MODEL)
    return model_id


def load_tracker(
    model_id: str, device: str | torch.device = "auto", dtype: str | torch.dtype = "auto"
) -> Sam3VideoTracker:
    """Load ``model_id`` (see ``checkpoint_for``) as a ``Sam3VideoTracker``; never downloads.

    Raises:
        ModelLoadError: the weights are not on this machine, with the steps that fix it.
    """
    checkpoint = checkpoint_for(model_id)
    if checkpoint == REAL_MODEL and not real_weights_available(REAL_MODEL):
        raise ModelLoadError(
            f"model_id {model_id!r} names {REAL_MODEL}, which is not in the local Hugging Face "
            f"cache and is never downloaded here: run `hf download {REAL_MODEL}` (licence "
            f"accepted, `hf auth login`), or set {MODEL_ENV} to a directory holding it"
        )
    return Sam3VideoTracker.from_pretrained(checkpoint, device=device, dtype=dtype)
