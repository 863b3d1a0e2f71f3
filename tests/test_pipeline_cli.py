"""``sam3-stream run`` / ``demo`` / ``bench latency`` and the YAML configs.

Errors a user can make (a bad flag, a bad config field, a bad reference) are checked in-process
through ``pipeline.cli.main.main``, which is what the console script calls; the few tests that
need a real process (signals, the demo's console script, exit codes) run one.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import av
import pytest
import yaml

from pipeline.cli.main import main
from pipeline.config.run_config import SourceOptionsConfig, load_config, parse_config
from pipeline.errors import ConfigError
from pipeline.loop.inference_pipeline import InferencePipeline
from pipeline.sources import SourceOptions
from tests.sources_helpers import write_test_clip
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(240)

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(  # serve-*.yaml are `serve --config` files (tests/test_cluster_cli.py)
    path for path in (ROOT / "configs").glob("*.yaml") if not path.name.startswith("serve-")
)


def _console_script() -> list[str]:
    script = Path(sys.executable).with_name("sam3-stream")
    return [str(script)] if script.exists() else [sys.executable, "-m", "pipeline.cli.main"]


def _offline_env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda path: path.name)
def test_every_shipped_config_is_valid(path: Path) -> None:
    config = load_config(path)
    assert config.sources and (config.classes or config.prompts)
    SourceOptions(**config.source_options.model_dump())  # the sources accept it as it is


def test_the_shipped_configs_cover_camera_file_and_screen() -> None:
    assert {path.name for path in CONFIGS} >= {"rtsp-camera.yaml", "video-file.yaml", "screen.yaml"}


def test_the_config_model_mirrors_every_source_option() -> None:
    options = {field.name: field.default for field in dataclasses.fields(SourceOptions)}
    config = SourceOptionsConfig().model_dump()
    assert set(config) == set(options)
    assert {k: v for k, v in config.items() if k != "av_options"} == {
        k: v for k, v in options.items() if k != "av_options"
    }


VALID = {"sources": ["clip.mp4"], "classes": "person"}
BAD_FIELDS = [
    ({"sources": []}, "sources: List should have at least 1 item"),
    ({"sources": [{"video_identifier": "x"}]}, "sources.0.reference: required field is missing"),
    ({"sources": [{"reference": "a", "name": "b"}]}, "sources.0.name: unknown field"),
    ({"classes": ""}, "classes: List should have at least 1 item"),
    ({"classes": [1]}, "classes.0: Input should be a valid string"),
    ({"threshold": 1.2}, "threshold: Input should be less than or equal to 1"),
    ({"max_fps": 0}, "max_fps: Input should be greater than 0"),
    ({"device": "gpu"}, "device: String should match pattern"),
    ({"sinks": ["printer:lp0"]}, "sinks: unknown sink 'printer:lp0'"),
    ({"source_options": {"stall_timeout_s": 0}}, "source_options.stall_timeout_s: Input should"),
    ({"source_options": {"rtsp_transport": "http"}}, "source_options.rtsp_transport"),
    (
        {"source_options": {"backoff_initial_s": 5, "backoff_max_s": 1}},
        "backoff_max_s must be >= backoff_initial_s",
    ),
    ({"source_options": {"stall": 1}}, "source_options.stall: unknown field"),
    ({"status_interval_s": -1}, "status_interval_s: Input should be greater than 0"),
    ({"max_objects": 0}, "max_objects: Input should be greater than or equal to 1"),
    ({"max_objects": "many"}, "max_objects: Input should be a valid integer"),
    ({"show_progress": "maybe"}, "show_progress: Input should be a valid boolean"),
    ({"treshold": 0.5}, "treshold: unknown field"),
]


@pytest.mark.parametrize(("override", "message"), BAD_FIELDS)
def test_every_bad_config_field_gets_one_line_naming_it(override: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({**VALID, **override}, origin="cam.yaml")
    text = str(caught.value)
    assert text.startswith("cam.yaml: ") and message in text and "\n" not in text


def test_a_config_file_that_is_not_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("sources:\n  - clip.mp4\nclasses: [person\n")
    with pytest.raises(ConfigError, match=r"broken.yaml: not valid YAML at line \d+"):
        load_config(path)
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "missing.yaml")


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_test_clip(tmp_path_factory.mktemp("cli") / "clip.mp4", frames=5)


BAD_FLAGS = [
    (["--threshold", "2"], "--threshold: Input should be less than or equal to 1"),
    (["--max-fps", "0"], "--max-fps: Input should be greater than 0"),
    (["--device", "gpu"], "--device: String should match pattern"),
    (["--sink", "printer:lp0"], "--sink: unknown sink 'printer:lp0'"),
    (["--sink", "video:/no/such/dir/out.mp4"], "directory '/no/such/dir' does not exist"),
    (["--source", "/no/such/clip.mp4"], "video file not found: /no/such/clip.mp4"),
    (["--source", "ftp://user:pw@host/x"], "unknown scheme 'ftp'"),
    (["--classes", " , "], "--classes: List should have at least 1 item"),
    (["--status-interval", "0"], "--status-interval: Input should be greater than 0"),
    (["--max-objects", "0"], "--max-objects: Input should be greater than or equal to 1"),
    (["--config", "/no/such/config.yaml"], "cannot read config /no/such/config.yaml"),
]


@pytest.mark.parametrize(("flags", "message"), BAD_FLAGS)
def test_every_bad_flag_gets_one_line_naming_it_and_exit_code_2(
    clip: Path, flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    arguments = ["run", "--source", str(clip), "--classes", "person", *flags]
    assert main(arguments) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("sam3-stream: error:")]
    assert len(lines) == 1 and message in lines[0], err
    assert "Traceback" not in err and "pw@" not in err


def test_max_objects_from_a_flag_or_the_config_reaches_the_pipeline(
    clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    received: list[dict] = []

    def init(**keywords: object) -> None:
        received.append(keywords)
        raise ConfigError("stopped before any model is loaded")

    monkeypatch.setattr(InferencePipeline, "init", init)
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"sources": [str(clip)], "classes": "p", "max_objects": 5}))
    assert main(["run", "--config", str(config)]) == 2
    assert main(["run", "--config", str(config), "--max-objects", "3"]) == 2  # the flag wins
    assert main(["run", "--source", str(clip), "--classes", "p"]) == 2
    assert [keywords["max_objects"] for keywords in received] == [5, 3, None]
    assert all("max_num_objects" not in keywords["model_options"] for keywords in received)


def test_run_without_source_or_classes_says_what_to_give(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["run", "--classes", "person"]) == 2
    assert "give --source REF" in capsys.readouterr().err
    assert main(["run", "--source", "testpattern"]) == 2
    assert "give --classes" in capsys.readouterr().err


def test_a_flag_of_the_wrong_type_exits_2_without_a_traceback_in_a_real_process() -> None:
    result = subprocess.run(
        [*_console_script(), "run", "--source", "x.mp4", "--classes", "a", "--threshold", "high"],
        capture_output=True, text=True, timeout=120, cwd=ROOT, env=_offline_env(),
    )  # fmt: skip
    assert result.returncode == 2
    assert "argument --threshold: invalid float value: 'high'" in result.stderr
    assert "Traceback" not in result.stderr


def test_sigterm_stops_a_run_cleanly_with_a_playable_mp4_and_exit_0(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    source = write_test_clip(tmp_path / "long.mp4", frames=300, size=(96, 64))
    video, jsonl = tmp_path / "out.mp4", tmp_path / "out.jsonl"
    config = tmp_path / "run.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "sources": [str(source)],
                "classes": "square",
                "model": str(tiny_model_dir),
                "device": "cpu",
                "threshold": 0.0,
                "model_options": {"max_num_objects": 3},
                "sinks": [f"video:{video}", f"jsonl:{jsonl}"],
            }
        )
    )
    process = subprocess.Popen(
        [*_console_script(), "run", "--config", str(config)],
        cwd=ROOT, env=_offline_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_until(
            lambda: jsonl.exists() and len(jsonl.read_text().splitlines()) >= 2,
            timeout=180,
            what="the run to write its first results",
        )
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()

    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    with av.open(str(video)) as container:
        frames = [frame.to_ndarray(format="bgr24") for frame in container.decode(video=0)]
    assert 2 <= len(records) < 300, "stopped mid-run"
    assert [r["frame_id"] for r in records] == list(range(1, len(records) + 1))
    assert len(frames) == len(records), "every processed frame was flushed to both sinks"
    assert frames[0].shape == (64, 96, 3)


def test_the_demo_tracks_the_sample_clip_with_the_bundled_shapes_model(tmp_path: Path) -> None:
    output = tmp_path / "demo"
    result = subprocess.run(
        [*_console_script(), "demo", "--output-dir", str(output), "--frames", "20"],
        capture_output=True, text=True, timeout=220, cwd=ROOT, env=_offline_env(),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "TRAINED ON SYNTHETIC SHAPES" in result.stderr  # no real weights in the test cache
    assert "sam3-shapes" in result.stdout
    with av.open(str(output / "annotated.mp4")) as container:
        frames = [frame.to_ndarray(format="bgr24") for frame in container.decode(video=0)]
    assert len(frames) == 20 and frames[0].shape == (240, 320, 3)
    records = [json.loads(line) for line in (output / "detections.jsonl").read_text().splitlines()]
    assert [record["frame_id"] for record in records] == list(range(1, 21))
    # Real tracking: the green square and the magenta disc, one id each, on (nearly) every frame.
    ids_by_class: dict[str, set[int]] = {}
    for record in records:
        for obj in record["objects"]:
            ids_by_class.setdefault(obj["class_name"], set()).add(obj["tracker_id"])
    assert {name: len(ids) for name, ids in ids_by_class.items()} == {"green": 1, "magenta": 1}
    both = [r for r in records if {o["class_name"] for o in r["objects"]} == {"green", "magenta"}]
    assert len(both) >= 17, [len(r["objects"]) for r in records]
    assert "20/20 100%" in result.stderr, "the progress bar reached its end"


def test_the_demo_runs_the_tiny_random_model_only_when_asked_and_says_so(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    output = tmp_path / "demo"
    result = subprocess.run(
        [*_console_script(), "demo", "--output-dir", str(output), "--frames", "3",
         "--model", str(tiny_model_dir)],
        capture_output=True, text=True, timeout=220, cwd=ROOT, env=_offline_env(),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "TINY RANDOMLY INITIALISED" in result.stderr
    records = [json.loads(line) for line in (output / "detections.jsonl").read_text().splitlines()]
    names = {obj["class_name"] for record in records for obj in record["objects"]}
    assert names <= {"square", "circle"}


def test_bench_latency_prints_both_tables_and_the_ratio(
    capsys: pytest.CaptureFixture[str],
) -> None:
    arguments = ["bench", "latency", "--duration", "1.5", "--interval", "0.5", "--model-ms", "60"]
    assert main(arguments) == 0
    out = capsys.readouterr().out
    assert "this pipeline (freshest)" in out and "naive FIFO queue" in out
    assert "FIFO / this pipeline, last window: p50" in out
    overall = next(line for line in out.splitlines() if line.startswith("overall")).split()
    ours_max, fifo_max = float(overall[4]), float(overall[8])
    assert fifo_max > ours_max, "a FIFO behind a slow model ages; the freshest frame does not"


def test_bench_session_refuses_a_budget_below_one_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    arguments = ["bench", "session", "--model", "unused", "--churn", "--max-objects", "0"]
    assert main(arguments) == 2
    err = capsys.readouterr().err
    assert err.strip() == "sam3-stream: error: --max-objects must be at least 1, got 0"


def test_a_config_file_that_is_not_utf8_is_one_line_and_exit_2_for_run_and_serve(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"classes: [caf\xe9]\n")
    for verb in ("run", "serve"):
        assert main([verb, "--config", str(path)]) == 2
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.startswith("sam3-stream: error:")]
        assert len(lines) == 1 and "latin1.yaml: not UTF-8 text (byte 0xe9" in lines[0], err
        assert "Traceback" not in err


@pytest.fixture
def no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """This machine as one without CUDA or MPS, whatever the test host has."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--device", "tpu"], "device must be auto, cpu, mps, cuda or cuda:N, got 'tpu'"),
        (["--device", "cuda"], "device cuda is not available on this machine: CUDA"),
        (["--device", "cuda:0"], "device cuda:0 is not available on this machine: CUDA"),
        (["--device", "mps"], "device mps is not available on this machine: Apple MPS"),
        (["--output-dir", "{file}"], "cannot create it: File exists"),
        (["--output-dir", "{file}/sub"], "cannot create it: Not a directory"),
    ],
)
def test_the_demo_refuses_a_bad_device_or_output_dir_in_one_line_before_any_work(
    tmp_path: Path,
    flags: list[str],
    message: str,
    no_gpu: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    output = str(tmp_path / "out")
    arguments = ["demo", "--output-dir", output, *[f.format(file=a_file) for f in flags]]
    assert main(arguments) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("sam3-stream: error:")]
    assert len(lines) == 1 and message in lines[0], err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_run_on_a_missing_gpu_names_the_device_in_one_line(
    clip: Path, no_gpu: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--source", str(clip), "--classes", "p", "--device", "cuda:1"]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("sam3-stream: error:")]
    assert len(lines) == 1 and "device cuda:1 is not available on this machine" in lines[0], err


@pytest.mark.parametrize("option", ["trust_remote_code", "output_loading_info"])
def test_a_config_s_model_options_reach_the_loader_only_as_sam3_video_config_fields(
    clip: Path, tmp_path: Path, option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(
        yaml.safe_dump({"sources": [str(clip)], "classes": ["p"], "model_options": {option: True}})
    )
    assert main(["run", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("sam3-stream: error:")]
    assert len(lines) == 1 and f"{option} are not Sam3VideoConfig fields" in lines[0], err
    assert "Traceback" not in err
