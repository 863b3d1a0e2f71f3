"""``sam3-stream serve`` refuses bad flags, config files and addresses in one line, exit code 2.

These fail before uvicorn starts or the model loads, so they run in-process and fast; the real
server process is exercised by ``test_service_restart.py``.
"""

from __future__ import annotations

import socket

import pytest

from pipeline.cli.serve import main


def _serve(capsys, *args: str) -> tuple[int, str]:
    try:
        code = main(["serve", *args])
    except SystemExit as exit_:  # argparse
        code = int(exit_.code or 0)
    return code, capsys.readouterr().err.strip()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port", "70000"], "--port must be in 0-65535"),
        (["--max-streams", "0"], "--max-streams must be at least 1"),
        (["--max-objects", "0"], "--max-objects must be at least 1"),
        (["--max-streams", "many"], "invalid int value"),
        (["--webrtc-ice", "everywhere"], "invalid choice"),
    ],
)
def test_bad_flag_is_one_line_and_exit_code_2(capsys, tmp_path, args, message):
    code, err = _serve(capsys, "--state-dir", str(tmp_path), *args)
    assert code == 2
    assert message in err and len(err.splitlines()) <= 2 and "Traceback" not in err


def test_bad_config_field_is_named(capsys, tmp_path):
    config = tmp_path / "serve.yaml"
    config.write_text(
        "streams:\n  - {id: cam, source: 'rtsp://u:pw@cam/1', classes: [p], threshold: 3}\n"
    )
    code, err = _serve(capsys, "--state-dir", str(tmp_path), "--config", str(config))
    assert code == 2
    assert "streams.0.threshold" in err and "pw@" not in err


def test_busy_port_is_a_clear_error(capsys, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, err = _serve(capsys, "--state-dir", str(tmp_path), "--port", str(port))
    assert code == 2 and f"cannot listen on 127.0.0.1:{port}" in err


def test_unwritable_state_dir_is_a_clear_error(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code, err = _serve(capsys, "--state-dir", str(blocker / "state"), "--port", "0")
    assert code == 2 and "cannot use state directory" in err
