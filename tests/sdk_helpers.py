"""Roboflow's ``inference-sdk`` for tests: where its own venv is, and a model confident enough.

``inference-sdk`` 1.8.3 pins numpy, OpenCV, supervision and Pillow below what this project runs,
so it lives in ``.venv-sdk`` (made by ``.ci/setup --test``); tests run its calls there, in a
subprocess. ``SAM3_STREAM_SDK_PYTHON`` may point at another interpreter that has it.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess

import pytest
import torch

from tracker import Sam3VideoTracker

ROOT = pathlib.Path(__file__).resolve().parent.parent
SDK_PYTHON = pathlib.Path(
    os.environ.get("SAM3_STREAM_SDK_PYTHON") or ROOT / ".venv-sdk" / "bin" / "python"
)
SDK_TIMEOUT_S = 600


def sdk_available() -> bool:
    """True when ``SDK_PYTHON`` exists and imports ``inference_sdk``."""
    if not SDK_PYTHON.exists():
        return False
    probe = subprocess.run(
        [str(SDK_PYTHON), "-c", "import inference_sdk"], capture_output=True, timeout=120
    )
    return probe.returncode == 0


def require_sdk_python() -> str:
    """The SDK's interpreter; skips the test without it, fails it under ``CI`` (setup's job)."""
    if not sdk_available():
        reason = (
            f"inference-sdk is not installed at {SDK_PYTHON}: run `bash .ci/setup --test` "
            "(python -m venv .venv-sdk && .venv-sdk/bin/pip install inference-sdk==1.8.3)"
        )
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return str(SDK_PYTHON)


def make_confident(tiny_dir: pathlib.Path, out_dir: pathlib.Path) -> pathlib.Path:
    """The tiny checkpoint with its detector's scores forced high, saved to ``out_dir``.

    The presence head says "present" (bias 10) and the dot-product scoring sees constant
    projections, so every query scores near 1 while masks still come from the random weights.
    """
    tracker = Sam3VideoTracker.from_pretrained(str(tiny_dir), device="cpu")
    detector = tracker.model.detector_model
    with torch.no_grad():
        scoring = detector.dot_product_scoring
        for projection in (scoring.query_proj, scoring.text_proj):
            projection.weight.zero_()
            projection.bias.fill_(1.0)
        presence = detector.detr_decoder.presence_head.layer3
        presence.weight.zero_()
        presence.bias.fill_(10.0)
    shutil.copytree(tiny_dir, out_dir)  # processor, tokenizer, tiny marker
    tracker.model.save_pretrained(out_dir)
    return out_dir
