"""Shared fixtures: the tiny SAM3 checkpoint (built once per session), pipelines that are
terminated at teardown, fast source timeouts, RTSP cameras (``tests/fixtures_rtsp.py``), no network.

Nothing here downloads: the Hugging Face hub is forced offline for the whole run, with an empty
cache, so a test that reached for the network would fail instead of silently downloading.
"""

from __future__ import annotations

import os
import pathlib
import tempfile
from collections.abc import Iterator
from typing import Any

# Tests marked real_weights look for facebook/sam3 in the user's real cache, remembered here.
USER_HF_HOME = os.environ.get("HF_HOME", os.path.expanduser("~/.cache/huggingface"))
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="sam3-stream-hf-home-")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import pytest  # noqa: E402

from tests.pipeline_helpers import PipelineFactory  # noqa: E402
from tracker import Sam3VideoTracker, build_tiny_model  # noqa: E402

# The RTSP camera fixtures (GStreamer's server under the system python).
pytest_plugins = ["tests.fixtures_rtsp"]

ARTIFACTS = pathlib.Path(os.environ.get("SAM3_STREAM_TEST_ARTIFACTS", "test-artifacts"))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A randomly initialised tiny SAM3 video checkpoint on disk, loaded via from_pretrained."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-sam3"), image_size=224, seed=0)


@pytest.fixture(scope="session")
def tiny_tracker(tiny_model_dir: pathlib.Path) -> Sam3VideoTracker:
    """The tiny checkpoint loaded on CPU, capped at 3 objects so frames stay fast."""
    return Sam3VideoTracker.from_pretrained(str(tiny_model_dir), device="cpu", max_num_objects=3)


@pytest.fixture(scope="session")
def artifacts_dir() -> pathlib.Path:
    """Where tests keep files a person may want to look at (screenshots, videos)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def pipelines() -> Iterator[PipelineFactory]:
    """``pipelines(...)`` is ``InferencePipeline.init(...)``; each is terminated at teardown."""
    factory = PipelineFactory()
    yield factory
    factory.terminate_all()


@pytest.fixture
def fast_source_options() -> dict[str, Any]:
    """Live-source timeouts that detect a camera fault in about a second (production: 5-10 s)."""
    return {
        "stall_timeout_s": 1.0,
        "open_timeout_s": 1.5,
        "backoff_initial_s": 0.1,
        "backoff_max_s": 0.5,
    }
