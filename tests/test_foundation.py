"""The foundation: tiny checkpoint via the CLI, offline loading, packaging files that must parse."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import tomllib

import numpy as np

from pipeline.bench.plain_hf import PlainHFStream
from tests.frames import moving_shapes

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _cli(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
    )


def test_make_tiny_model_then_stream_three_frames_offline(tmp_path):
    from transformers import Sam3VideoModel, Sam3VideoProcessor

    result = _cli("make-tiny-model", str(tmp_path / "tiny"))
    assert result.returncode == 0, result.stderr
    model = Sam3VideoModel.from_pretrained(tmp_path / "tiny").eval()
    processor = Sam3VideoProcessor.from_pretrained(tmp_path / "tiny")
    assert sum(p.numel() for p in model.parameters()) < 10_000_000
    plain = PlainHFStream(processor, model, device="cpu", classes="person")
    for index in range(3):
        post = plain.step(moving_shapes(index))
        # thresholds at 0: random weights still detect something
        assert len(post["object_ids"]) > 0
        assert post["masks"].shape[1:] == (96, 128)


def test_tiny_model_is_deterministic_per_seed(tmp_path):
    from tracker import build_tiny_model

    a = build_tiny_model(tmp_path / "a", seed=3)
    b = build_tiny_model(tmp_path / "b", seed=3)
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()


def test_tokenizer_is_byte_level_and_round_trips(tiny_model_dir):
    from transformers import Sam3VideoProcessor

    tokenizer = Sam3VideoProcessor.from_pretrained(tiny_model_dir).tokenizer
    ids = tokenizer("forklift").input_ids
    assert len(ids) == len("forklift") + 2  # one token per byte plus start/end
    assert tokenizer.decode(ids, skip_special_tokens=True).strip() == "forklift"


def test_cli_bad_arguments_exit_2_with_one_line_and_no_traceback():
    result = _cli("make-tiny-model", "/tmp/x", "--image-size", "100")
    assert result.returncode == 2
    assert "multiple of 14" in result.stderr and "Traceback" not in result.stderr
    result = _cli("no-such-verb")
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_missing_model_directory_is_a_clear_load_error(tmp_path):
    from tracker import ModelLoadError, Sam3VideoTracker

    try:
        Sam3VideoTracker.from_pretrained(str(tmp_path / "nowhere"))
    except ModelLoadError as error:
        assert "does not exist" in str(error)
    else:
        raise AssertionError("expected ModelLoadError")


def test_uncached_hub_weights_say_how_to_get_them():
    from tracker import ModelLoadError, Sam3VideoTracker

    try:
        Sam3VideoTracker.from_pretrained("facebook/sam3")  # offline, empty cache
    except ModelLoadError as error:
        message = str(error)
        assert "not in the local Hugging Face cache" in message
        assert "hf auth login" in message and "hf download facebook/sam3" in message
    else:
        raise AssertionError("expected ModelLoadError")


def test_pyproject_declares_the_distribution_and_console_script():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert data["project"]["name"] == "sam3-stream"
    assert data["project"]["scripts"]["sam3-stream"] == "pipeline.cli.main:main"
    deps = " ".join(data["project"]["dependencies"])
    for name in ("transformers", "torch", "torchvision", "av", "opencv-python", "supervision"):
        assert name in deps


def test_dockerfile_runs_serve_as_non_root_with_healthcheck():
    lines = [ln.strip() for ln in (ROOT / "Dockerfile").read_text().splitlines()]
    instructions = [ln.split()[0] for ln in lines if ln and not ln.startswith("#")]
    assert (
        instructions[0] == "FROM"
        and "cuda"
        in lines[
            [*map(str.split, lines)].index(
                next(ln.split() for ln in lines if ln.startswith("FROM"))
            )
        ]
    )
    assert any(ln.startswith("USER ") and "root" not in ln for ln in lines)
    assert any(ln.startswith("HEALTHCHECK") for ln in lines)
    assert any(ln.startswith("EXPOSE 9001") for ln in lines)
    entry = next(ln for ln in lines if ln.startswith("ENTRYPOINT"))
    assert '"serve"' in entry and '"9001"' in entry


def test_sample_clip_decodes_to_the_frames_written(tmp_path):
    import av

    from pipeline.sources.sample_clip import write_sample_clip

    path = write_sample_clip(tmp_path / "s.mp4", frames=12, fps=10, width=160, height=120)
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    assert len(frames) == 12 and frames[0].shape == (120, 160, 3)
    assert not np.array_equal(frames[0], frames[-1])  # it moves
