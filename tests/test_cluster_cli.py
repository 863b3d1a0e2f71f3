"""``serve --ray`` and the config's ``ray:`` block become one ``ClusterSettings``, or one line.

No cluster is needed: everything here is decided before Ray is imported, the socket is bound or
the model loads. The one exception to "real parts" is Ray missing, shown the way Python itself
marks a module as absent (``sys.modules[name] = None``), since the test setup installs Ray.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pipeline.cli.main import build_parser
from pipeline.cli.serve import main
from pipeline.cli.serve_ray import cluster_settings
from pipeline.cluster.settings import DEFAULT_STREAMS_PER_WORKER, ClusterSettings
from pipeline.config.serve_config import load_serve_config


def _parse(*args: str) -> argparse.Namespace:
    return build_parser().parse_args(["serve", *args])


def _settings(*args: str, config: Path | None = None) -> ClusterSettings | None:
    parsed = _parse(*args, *(["--config", str(config)] if config else []))
    return cluster_settings(parsed, load_serve_config(config) if config else None)


def _serve(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    try:
        code = main(["serve", *args])
    except SystemExit as exit_:  # argparse
        code = int(exit_.code or 0)
    return code, capsys.readouterr().err.strip()


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "serve.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_without_ray_streams_run_in_process():
    assert _settings() is None
    assert _settings("--device", "cpu", "--max-streams", "4") is None


def test_ray_alone_means_auto_with_one_gpu_per_worker():
    assert _settings("--ray") == ClusterSettings(address="auto", gpus_per_worker=1.0)
    assert _settings("--ray", "auto").max_streams_per_worker == DEFAULT_STREAMS_PER_WORKER


def test_cpu_device_makes_workers_reserve_no_gpu():
    settings = _settings("--ray", "--device", "cpu")
    assert settings is not None and settings.gpus_per_worker == 0.0


def test_every_ray_flag_reaches_the_cluster_settings():
    settings = _settings(
        "--ray",
        "10.0.0.2:6379",
        "--ray-workers",
        "3",
        "--ray-gpus-per-worker",
        "0.5",
        "--ray-cpus-per-worker",
        "2",
        "--ray-max-streams-per-worker",
        "4",
    )
    assert settings == ClusterSettings(
        address="10.0.0.2:6379",
        workers=3,
        gpus_per_worker=0.5,
        cpus_per_worker=2.0,
        max_streams_per_worker=4,
    )


@pytest.mark.parametrize("address", ["ray://head.lan:10001", "head:6379", "[::1]:6379"])
def test_ray_client_and_gcs_addresses_are_accepted(address):
    settings = _settings("--ray", address)
    assert settings is not None and settings.address == address


def test_ray_block_in_config_turns_the_cluster_on(tmp_path):
    config = _config(
        tmp_path,
        """
        ray:
          address: head:6379
          workers: 2
          gpus_per_worker: 0.25
          max_streams_per_worker: 3
          failover_timeout_s: 12
        """,
    )
    assert _settings(config=config) == ClusterSettings(
        address="head:6379",
        workers=2,
        gpus_per_worker=0.25,
        max_streams_per_worker=3,
        failover_timeout_s=12.0,
    )


def test_flags_override_the_config_ray_block_field_by_field(tmp_path):
    config = _config(
        tmp_path,
        """
        ray: {address: head:6379, workers: 2, gpus_per_worker: 0.5, cpus_per_worker: 4}
        """,
    )
    settings = _settings(
        "--ray", "ray://other:10001", "--ray-workers", "5", "--device", "cpu", config=config
    )
    assert settings == ClusterSettings(
        address="ray://other:10001", workers=5, gpus_per_worker=0.5, cpus_per_worker=4.0
    )


def test_ray_flags_apply_to_a_config_block_without_ray_flag(tmp_path):
    config = _config(tmp_path, "ray: {}\n")
    settings = _settings("--ray-max-streams-per-worker", "2", config=config)
    assert settings is not None
    assert (settings.address, settings.max_streams_per_worker) == ("auto", 2)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ray-workers", "2"], "--ray-workers needs --ray ADDRESS"),
        (["--ray-gpus-per-worker", "0.5"], "--ray-gpus-per-worker needs --ray ADDRESS"),
        (["--ray-max-streams-per-worker", "2"], "--ray-max-streams-per-worker needs --ray"),
        (["--ray", "head"], "--ray: 'head' is not auto, HOST:PORT or ray://HOST:PORT"),
        (["--ray", "http://head:6379"], "--ray: 'http://head:6379' is not auto"),
        (["--ray", "head:70000"], "port must be in 1-65535"),
        (["--ray", "--ray-workers", "0"], "--ray-workers must be at least 1, got 0"),
        (["--ray", "--ray-workers", "two"], "--ray-workers: invalid int value"),
        (["--ray", "--ray-cpus-per-worker", "-1"], "--ray-cpus-per-worker must be 0 or more"),
        (["--ray", "--ray-max-streams-per-worker", "0"], "--ray-max-streams-per-worker must be"),
        (["--ray", "--ray-gpus-per-worker", "1.5"], "--ray-gpus-per-worker must be 0, a fraction"),
        (["--ray", "--ray-gpus-per-worker", "-1"], "--ray-gpus-per-worker must be 0, a fraction"),
        (
            ["--ray", "--ray-gpus-per-worker", "0", "--device", "cuda"],
            "--ray-gpus-per-worker is 0 with --device cuda",
        ),
    ],
)
def test_bad_ray_flag_is_one_line_naming_it_exit_2(capsys, tmp_path, args, message):
    code, err = _serve(capsys, "--state-dir", str(tmp_path), "--port", "0", *args)
    assert code == 2
    assert message in err, err
    assert len(err.splitlines()) <= 2 and "Traceback" not in err


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ("ray: {workers: 0}", "ray.workers: Input should be greater than or equal to 1"),
        ("ray: {address: nowhere}", "ray.address: 'nowhere' is not auto, HOST:PORT"),
        ("ray: {gpus_per_worker: 2.5}", "ray.gpus_per_worker: must be 0, a fraction"),
        ("ray: {max_streams_per_worker: 0}", "ray.max_streams_per_worker: Input should be"),
        ("ray: {failover_timeout_s: 0}", "ray.failover_timeout_s: Input should be greater"),
        ("ray: {gpus: 1}", "ray.gpus: unknown field"),
        ("ray: auto", "ray: Input should be a valid dictionary"),
    ],
)
def test_bad_ray_config_field_is_named(capsys, tmp_path, block, message):
    config = _config(tmp_path, block + "\n")
    code, err = _serve(capsys, "--state-dir", str(tmp_path), "--config", str(config))
    assert code == 2
    assert message in err, err
    assert len(err.splitlines()) == 1


def test_config_gpu_zero_with_cuda_device_names_the_field(capsys, tmp_path):
    config = _config(tmp_path, "ray: {gpus_per_worker: 0}\n")
    code, err = _serve(
        capsys, "--state-dir", str(tmp_path), "--config", str(config), "--device", "cuda:1"
    )
    assert code == 2 and "ray.gpus_per_worker is 0 with --device cuda:1" in err


def test_ray_not_installed_says_which_extra_to_install(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # how Python marks a module as absent
    code, err = _serve(capsys, "--state-dir", str(tmp_path), "--port", "0", "--ray")
    assert code == 2
    assert err == (
        "sam3-stream: error: --ray needs Ray, which is not installed: "
        "pip install 'sam3-stream[ray]'"
    )


def test_unreachable_head_is_one_line_in_seconds(capsys, tmp_path):
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    started = time.monotonic()
    code, err = _serve(capsys, "--state-dir", str(tmp_path), "--ray", f"127.0.0.1:{port}")
    assert code == 2 and time.monotonic() - started < 10
    assert f"--ray: cannot reach a Ray head at 127.0.0.1:{port}" in err
    assert len(err.splitlines()) == 1


def test_ray_not_installed_does_not_matter_without_ray(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    assert _settings("--state-dir", str(tmp_path)) is None


_NO_RAY_PROBE = """
import contextlib, io, sys
from pipeline.cli.main import build_parser
from pipeline.cli.serve import _check
from pipeline.cli.serve_ray import cluster_settings

with contextlib.redirect_stdout(io.StringIO()) as help_text:
    try:
        build_parser().parse_args(["serve", "--help"])
    except SystemExit:
        pass
assert "--ray-workers" in help_text.getvalue()
args = build_parser().parse_args(["serve", "--port", "0", "--device", "cpu", "--max-streams", "2"])
_check(args)
assert cluster_settings(args, None) is None
from pipeline.service import ServiceSettings, create_app  # everything serve wires up
from pipeline.service.engine import ModelEngine
create_app(ServiceSettings(), engine=ModelEngine(lambda: None, model_name="none"))
print(sorted(name for name in sys.modules if name == "ray" or name.startswith("ray.")))
"""


def test_serve_without_ray_never_imports_ray():
    done = subprocess.run(
        [sys.executable, "-c", _NO_RAY_PROBE],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


SERVE_CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("serve-*.yaml"))


@pytest.mark.parametrize("path", SERVE_CONFIGS, ids=lambda path: path.name)
def test_shipped_serve_configs_validate_and_name_a_cluster(path):
    config = load_serve_config(path)
    assert config.ray is not None and config.streams
    assert cluster_settings(_parse("--config", str(path)), config) == ClusterSettings()


def test_the_ray_example_config_is_shipped():
    assert "serve-ray.yaml" in {path.name for path in SERVE_CONFIGS}


def test_serve_ray_runs_streams_on_a_worker_and_enforces_its_limit(tmp_path, tiny_model_dir):
    """The real command on a real local cluster: the flags reach the workers and the limit."""
    import httpx

    from pipeline.bench.local_ray import local_ray_head
    from tests.service_helpers import ServeProcess, collect_detections, iter_sse
    from tests.sources_helpers import write_test_clip

    media = tmp_path / "media"
    media.mkdir()
    write_test_clip(media / "cam.mp4", frames=400, fps=20)
    body = {"source": "cam.mp4", "classes": ["square"], "threshold": 0.0, "max_objects": 2}
    body["source_options"] = {"realtime": True}
    with local_ray_head(num_cpus=2) as address:  # the serve process inherits its token
        server = ServeProcess(
            [
                *("--model", str(tiny_model_dir), "--device", "cpu"),
                *("--state-dir", str(tmp_path / "state"), "--media-root", str(media)),
                *("--ray", address, "--ray-workers", "1", "--ray-max-streams-per-worker", "1"),
            ]
        )
        try:
            server.wait_for("ready:", timeout=180)
            with httpx.Client(base_url=server.url, timeout=60) as client:
                created = client.post("/streams", json=body)
                assert created.status_code == 201, created.text
                assert created.json()["worker"] == "worker-0"
                refused = client.post("/streams", json=body)
                assert refused.status_code == 429
                assert "max_streams_per_worker=1" in refused.text
                stream_id = created.json()["id"]
                with client.stream("GET", f"/streams/{stream_id}/events") as events:
                    records = collect_detections(iter_sse(events), 2, timeout=120)
                assert [record["epoch"] for record in records] == [0, 0]
        finally:
            assert server.stop() == 0, "\n".join(server.output[-20:])
