"""Output that is lost must never look like success (issue 12, items 9, 10 and 14).

A sink that cannot be created is refused before the model loads; one that fails while writing
(``/dev/full``) ends ``sam3-stream run`` with one line and exit 1; a truncated input file ends with
a reason that says so and exit 1; a run killed with SIGKILL leaves an MP4 that plays up to its last
fragment; and SIGTERM just after a file ends still delivers every frame to every sink. The runs use
the tiny checkpoint; the two signal tests run the real console script in a subprocess.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import av
import pytest
import yaml
from fastapi.testclient import TestClient

import sinks
from pipeline.cli.main import main
from pipeline.sources import SourceOptions
from pipeline.sources.file import FileDamage, FileSource, file_end_reason
from pipeline.sources.sample_clip import sample_frame, write_sample_clip
from sinks.mp4 import FRAGMENT_S, Mp4Writer
from tests.pipeline_helpers import PipelineFactory, StandInModel
from tests.service_helpers import ScriptedPipelines, scripted_app
from tests.sources_helpers import write_test_clip
from tests.waiting import RecordingSink, wait_until

pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parents[1]


def _console_script() -> list[str]:
    script = Path(sys.executable).with_name("sam3-stream")
    return [str(script)] if script.exists() else [sys.executable, "-m", "pipeline.cli.main"]


def _offline_env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}


def _frames_in(path: Path) -> int:
    """Frames a player gets out of ``path``; 0 when it does not open as video at all."""
    try:
        with av.open(str(path)) as container:
            return sum(1 for _ in container.decode(video=0))
    except (av.FFmpegError, OSError):
        return 0


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("sam3-stream: error:")]


def _run_flags(tiny_model_dir: Path, source: Path, *sink_specs: str) -> list[str]:
    flags = ["run", "--source", str(source), "--classes", "square", "--no-progress"]
    flags += ["--model", str(tiny_model_dir), "--device", "cpu", "--threshold", "0"]
    flags += ["--max-objects", "3"]
    for spec in sink_specs:
        flags += ["--sink", spec]
    return flags


# ---------------------------------------------------------------- item 9: sinks that cannot write


@pytest.mark.parametrize("name", ["out.jsonl", "x.txt", "noextension", "clip.webm"])
def test_a_video_sink_whose_name_is_not_mp4_is_refused_naming_the_extensions(
    tmp_path: Path, name: str
) -> None:
    with pytest.raises(sinks.SinkSpecError) as refused:
        sinks.parse_sink_spec(f"video:{tmp_path / name}")

    message = str(refused.value)
    assert "video sink writes MP4" in message and ".mp4" in message and "\n" not in message
    assert not (tmp_path / name).exists()


def test_a_video_sink_where_no_file_can_be_created_is_refused_before_the_model_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if not Path("/proc/self").is_dir():
        pytest.skip("needs Linux procfs: a directory that exists and refuses new files")
    source = write_sample_clip(tmp_path / "clip.mp4", frames=3, width=96, height=64)
    no_model = tmp_path / "no-such-model"  # loading it would fail with another message

    code = main(_run_flags(no_model, source, "video:/proc/out.mp4"))

    err = capsys.readouterr().err
    assert code == 2
    assert _error_lines(err) == [
        "sam3-stream: error: bad sink spec 'video:/proc/out.mp4': cannot create /proc/out.mp4: "
        "No such file or directory"
    ], err
    assert "Traceback" not in err and "no-such-model" not in err


def test_an_api_video_sink_with_a_non_video_extension_is_a_422_naming_sinks(
    tmp_path: Path,
) -> None:
    app = scripted_app(ScriptedPipelines(), state_dir=tmp_path / "state")
    with TestClient(app) as client:
        app.state.service.booted.wait(10)
        for name in ("out.jsonl", "x.txt"):
            response = client.post(
                "/streams",
                json={"source": "testpattern", "classes": ["p"], "sinks": [f"video:{name}"]},
            )
            assert response.status_code == 422, response.text
            [problem] = response.json()["detail"]
            assert "sinks" in problem["loc"] and "video sink writes" in problem["msg"]
        assert client.get("/streams").json()["streams"] == []
    outputs = tmp_path / "state" / "outputs"
    assert not any(outputs.iterdir()), "a refused video sink left a file in the output root"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_sink_that_fails_to_write_ends_the_run_with_one_line_and_exit_1(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_sample_clip(tmp_path / "clip.mp4", frames=200, width=96, height=64)
    good = tmp_path / "good.jsonl"

    code = main(_run_flags(tiny_model_dir, source, "jsonl:/dev/full", f"jsonl:{good}"))

    err = capsys.readouterr().err
    assert code == 1
    assert _error_lines(err) == [
        "sam3-stream: error: sink jsonl:/dev/full stopped the run: cannot write /dev/full: "
        "No space left on device"
    ], err
    assert "Traceback" not in err
    frame_ids = [json.loads(line)["frame_id"] for line in good.read_text().splitlines()]
    assert 1 <= len(frame_ids) < 200, "the run stopped early"
    assert frame_ids == list(range(1, len(frame_ids) + 1)), "the other sink got every frame"


# ---------------------------------------------------------------- item 10: truncated input files


def _faststart_copy(clip: Path, copy: Path) -> Path:
    """``clip`` remuxed with its index first, as cameras and web tools write MP4s."""
    with (
        av.open(str(clip)) as source,
        av.open(str(copy), "w", options={"movflags": "faststart"}) as out,
    ):
        template = source.streams.video[0]
        stream = out.add_stream_from_template(template)
        for packet in source.demux(template):
            if packet.dts is None:  # the demuxer's end-of-stream marker
                continue
            packet.stream = stream
            out.mux(packet)
    return copy


def _recording(path: Path, frames: int) -> Path:
    """A fragmented MP4 as the video sink writes it (what a killed run leaves behind)."""
    writer = Mp4Writer(path, width=160, height=120, fps=10, fragmented=True)
    for index in range(frames):
        writer.write(sample_frame(index, 160, 120))
    writer.close()
    return path


def _cut(path: Path, fraction: float) -> Path:
    data = path.read_bytes()
    cut = path.with_name(f"cut-{path.name}")
    cut.write_bytes(data[: int(len(data) * fraction)])
    return cut


def _decode_all(source: FileSource) -> int:
    source.start()
    delivered = 0
    while (frame := source.read(timeout=5.0)) is not None or not source.exhausted:
        delivered += frame is not None
    return delivered


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("index first", "truncated: the file ends after frame {n} of 40"),
        ("fragmented", "truncated: the file ends after frame {n}"),
    ],
)
def test_a_truncated_mp4_ends_with_a_truncated_reason_and_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, kind: str, expected: str
) -> None:
    if kind == "index first":
        plain = write_sample_clip(tmp_path / "plain.mp4", frames=40, width=160, height=120)
        whole = _faststart_copy(plain, tmp_path / "whole.mp4")
    else:
        whole = _recording(tmp_path / "whole.mp4", frames=40)
    assert _decode_all(FileSource(whole)) == 40
    caplog.clear()

    source = FileSource(_cut(whole, 0.6))
    with caplog.at_level(logging.WARNING, logger="pipeline.sources.file"):
        delivered = _decode_all(source)

    stats = source.stats()
    assert 0 < delivered < 40
    assert (stats.state, stats.end_reason) == ("ENDED", expected.format(n=delivered))
    assert f"{source.path}: {stats.end_reason}" in caplog.text
    assert FileSource(whole).stats().end_reason is None, "no reason while it has not ended"


@pytest.mark.parametrize(
    ("damage", "total", "reason"),
    [
        (FileDamage(decoded=40), 40, "end of file"),
        (
            FileDamage(decoded=17, corrupt_packets=1),
            40,
            "truncated: decode error after frame 17 of 40",
        ),
        (FileDamage(decoded=17, corrupt_packets=1), None, "truncated: decode error after frame 17"),
        (FileDamage(decoded=17), 40, "truncated: the file ends after frame 17 of 40"),
        (
            FileDamage(decoded=40, cut_short=True),
            40,
            "truncated: the file ends after frame 40 of 40",
        ),
        (
            FileDamage(decoded=40, corrupt_packets=2, packets_after_error=9),
            40,
            "end of file; 2 corrupt packet(s) skipped",
        ),
    ],
)
def test_the_end_reason_tells_a_cut_file_from_a_damaged_one_from_a_whole_one(
    damage: FileDamage, total: int | None, reason: str
) -> None:
    assert file_end_reason(damage, total) == reason


def test_a_whole_file_still_ends_as_end_of_file(tmp_path: Path) -> None:
    source = FileSource(write_sample_clip(tmp_path / "clip.mp4", frames=12, width=96, height=64))
    assert _decode_all(source) == 12
    assert source.stats().end_reason == "end of file"


def test_run_on_a_truncated_file_says_so_in_one_line_and_exits_1(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cut = _cut(_recording(tmp_path / "whole.mp4", frames=40), 0.6)
    jsonl = tmp_path / "out.jsonl"

    code = main(_run_flags(tiny_model_dir, cut, f"jsonl:{jsonl}"))

    err = capsys.readouterr().err
    written = len(jsonl.read_text().splitlines())
    assert code == 1
    assert _error_lines(err) == [
        f"sam3-stream: error: source 0 {cut}: truncated: the file ends after frame {written}"
    ], err
    assert 0 < written < 40


# ---------------------------------------------------------------- item 14: killed and stopped runs


def test_a_source_stopped_keeping_its_buffer_hands_out_what_it_holds(tmp_path: Path) -> None:
    clip = write_test_clip(tmp_path / "clip.mp4", frames=30)
    source = FileSource(clip, options=SourceOptions(file_buffer_frames=4))
    source.start()
    wait_until(lambda: source.stats().buffer_len == 4, what="the buffer to fill")

    source.stop(keep_buffered=True)

    held = [frame.frame_id for frame in iter(lambda: source.read(timeout=5.0), None)]
    assert held == [1, 2, 3, 4], "decoded frames survive the stop; nothing new is decoded"
    assert source.exhausted and source.stats().end_reason == "stopped"


def test_terminate_with_drain_delivers_every_decoded_frame_and_ends_terminated(
    tmp_path: Path, pipelines: PipelineFactory
) -> None:
    clip = write_test_clip(tmp_path / "clip.mp4", frames=30)
    sink = RecordingSink()
    pipeline = pipelines(str(clip), "square", [sink], registry=StandInModel(delay_s=0.2))
    pipeline.start(use_main_thread=False)
    wait_until(
        lambda: pipeline.status().sources[0].stats.state == "ENDED",
        what="the decoder to reach the end while frames wait for the model",
    )
    assert pipeline.status().frames_processed < 30

    pipeline.terminate(drain=True)

    assert pipeline.join(timeout=60)
    assert [frame.frame_id for frame in sink.frames] == list(range(1, 31))
    assert pipeline.status().state == "TERMINATED"


def _config(tmp_path: Path, tiny_model_dir: Path, source: Path, video: Path, jsonl: Path) -> Path:
    config = tmp_path / "run.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "sources": [str(source)],
                "classes": "square",
                "model": str(tiny_model_dir),
                "device": "cpu",
                "threshold": 0.0,
                "max_objects": 3,
                "model_options": {"max_num_objects": 3},
                "sinks": [f"video:{video}", f"jsonl:{jsonl}"],
                "show_progress": False,
            }
        )
    )
    return config


def test_a_run_killed_with_sigkill_leaves_an_mp4_that_plays_to_its_last_fragment(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    fps = 5  # a keyframe, so a fragment, every FRAGMENT_S * 5 = 10 frames
    source = write_sample_clip(tmp_path / "long.mp4", frames=400, fps=fps, width=96, height=64)
    video, jsonl = tmp_path / "out.mp4", tmp_path / "out.jsonl"
    config = _config(tmp_path, tiny_model_dir, source, video, jsonl)
    process = subprocess.Popen(
        [*_console_script(), "run", "--config", str(config)],
        cwd=ROOT, env=_offline_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    fragment = int(FRAGMENT_S * fps)
    try:
        # Two whole fragments on disk while the run goes on (the file is read as it grows).
        wait_until(lambda: _frames_in(video) >= 2 * fragment, timeout=240, what="two fragments")
        process.kill()
        process.wait(timeout=30)
        stderr = process.stderr.read() if process.stderr else ""
    finally:
        process.kill()

    assert process.returncode == -signal.SIGKILL, stderr
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    with av.open(str(video)) as container:
        frames = [frame.to_ndarray(format="bgr24") for frame in container.decode(video=0)]
    assert len(frames) >= 2 * fragment and frames[0].shape == (64, 96, 3)
    assert len(frames) < 400 and len(records) < 400, "killed mid-run"


def test_sigterm_just_after_a_file_ends_still_delivers_every_frame_to_every_sink(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    source = write_sample_clip(tmp_path / "clip.mp4", frames=30, width=96, height=64)
    video, jsonl = tmp_path / "out.mp4", tmp_path / "out.jsonl"
    config = _config(tmp_path, tiny_model_dir, source, video, jsonl)
    process = subprocess.Popen(
        [*_console_script(), "run", "--config", str(config)],
        cwd=ROOT, env=_offline_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    log: list[str] = []
    file_ended = threading.Event()

    def read_log() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            log.append(line)
            if "-> ENDED (end of file)" in line:
                file_ended.set()

    reader = threading.Thread(target=read_log, daemon=True)
    reader.start()
    try:
        wait_until(file_ended.is_set, timeout=240, what="the decoder to reach the end of the file")
        process.send_signal(signal.SIGTERM)  # frames are still buffered behind the model
        process.wait(timeout=120)
        reader.join(timeout=30)
    finally:
        process.kill()

    stderr = "".join(log)
    assert process.returncode == 0, stderr
    assert "stopping: no more decoding" in stderr, "the signal landed while frames were in flight"
    frame_ids = [json.loads(line)["frame_id"] for line in jsonl.read_text().splitlines()]
    assert frame_ids == list(range(1, 31)), "every frame reached the JSONL sink"
    assert _frames_in(video) == 30, "every frame reached the MP4"
