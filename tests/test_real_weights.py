"""Checks that need the real facebook/sam3 weights (and, for speed, a GPU): skipped when absent.

The weights are looked up in the user's own Hugging Face cache (never downloaded); the rest of the
suite runs with an empty, offline cache.
"""

from __future__ import annotations

import pathlib

import pytest

from tests.conftest import USER_HF_HOME
from tracker.weights import REAL_MODEL


def _real_weights_dir() -> pathlib.Path | None:
    try:
        from huggingface_hub import snapshot_download

        path = snapshot_download(
            REAL_MODEL,
            cache_dir=str(pathlib.Path(USER_HF_HOME) / "hub"),
            local_files_only=True,
        )
    except Exception:
        return None
    path = pathlib.Path(path)
    return path if any(path.glob("*.safetensors")) else None


REAL_WEIGHTS = _real_weights_dir()
requires_real_weights = pytest.mark.skipif(
    REAL_WEIGHTS is None,
    reason="facebook/sam3 weights are not in the local Hugging Face cache "
    "(accept the licence, `hf auth login`, `hf download facebook/sam3`)",
)


@pytest.mark.real_weights
@requires_real_weights
def test_real_sam3_finds_and_keeps_the_sample_square():
    import torch

    from pipeline.sources.sample_clip import sample_frame
    from tracker import Sam3VideoTracker, SessionRegistry

    device = "cuda" if torch.cuda.is_available() else "cpu"
    tracker = Sam3VideoTracker.from_pretrained(str(REAL_WEIGHTS), device=device)
    registry = SessionRegistry(tracker)
    ids = []
    for index in range(8):
        detections = registry.process(
            sample_frame(index), video_identifier="real", frame_id=index, class_names="square"
        )
        ids.append(set(detections.tracker_id.tolist()))
    assert ids[-1], "the square should be found"
    assert ids[-1] & ids[2], "the same square keeps its tracker_id"


@pytest.mark.gpu
@pytest.mark.skipif("not __import__('torch').cuda.is_available()", reason="needs a CUDA GPU")
def test_tiny_model_runs_on_cuda_with_bf16_autocast(tiny_model_dir):
    import torch

    from tests.frames import moving_shapes
    from tracker import Sam3VideoTracker, SessionRegistry

    tracker = Sam3VideoTracker.from_pretrained(str(tiny_model_dir), device="cuda")
    assert tracker.compute_dtype == torch.bfloat16
    registry = SessionRegistry(tracker)
    for index in range(3):
        detections = registry.process(
            moving_shapes(index),
            video_identifier="g",
            frame_id=index,
            class_names="a",
            threshold=0.0,
        )
    assert len(detections) > 0
