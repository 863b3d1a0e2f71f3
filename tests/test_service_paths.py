"""The API cannot reach the host: sinks under the output root, sources under the media root,
no internal addresses unless the operator allows them (issue 12, item 3).

Every attack goes through the real HTTP app (``TestClient``) and the real sinks; the pipeline is
the scripted stand-in, which checks its source with the real ``make_source`` and opens nothing.
The operator's own paths (``--config`` streams, ``sam3-stream run``) stay unrestricted.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import av
import pytest
from fastapi.testclient import TestClient

from pipeline.cli.main import main as cli_main
from pipeline.cli.serve import main as serve_main
from pipeline.errors import ConfigError
from pipeline.loop.inference_pipeline import InferencePipeline
from pipeline.service import ServeConfig
from pipeline.service.network_policy import internal_address_kind
from tests.service_helpers import ScriptedPipelines, scripted_app
from tests.sources_helpers import write_test_clip


@contextmanager
def _client(scripted: ScriptedPipelines | None = None, **settings: Any) -> Iterator[TestClient]:
    app = scripted_app(scripted, **settings)
    with TestClient(app) as client:
        assert app.state.service.booted.wait(10)
        yield client


def _post(client: TestClient, **fields: Any) -> Any:
    return client.post("/streams", json={"source": "testpattern", "classes": ["p"], **fields})


def _refused_field(response: Any) -> str:
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    return str(error["loc"][-1])


@pytest.fixture
def outputs(tmp_path: Path) -> Path:
    return tmp_path / "outputs"


# ---- the output root ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sink",
    [
        "jsonl:{tmp}/x.jsonl",  # absolute (as jsonl:/etc/...), in a directory the server can write
        "jsonl:../../x.jsonl",
        "jsonl:cams/../../x.jsonl",
        "video:../x.mp4",
        "jsonl:~/x.jsonl",
        "jsonl:~root/x.jsonl",
    ],
)
def test_api_sink_outside_the_output_root_is_refused(tmp_path, outputs, sink):
    with _client(output_dir=outputs) as client:
        assert _refused_field(_post(client, sinks=[sink.format(tmp=tmp_path)])) == "sinks"
    assert not (tmp_path / "x.jsonl").exists() and not (tmp_path / "x.mp4").exists()
    assert list(outputs.iterdir()) == []


def test_api_sink_writes_a_new_private_file_under_the_output_root(outputs):
    scripted = ScriptedPipelines()
    with _client(scripted, output_dir=outputs) as client:
        created = _post(client, sinks=["jsonl:cams/dock.jsonl"])
        assert created.status_code == 201, created.text
        assert created.json()["sinks"] == ["jsonl:cams/dock.jsonl"]  # the root is not shown
        scripted.made[-1].emit(2, live=False)
        client.delete(f"/streams/{created.json()['id']}")
    written = outputs / "cams" / "dock.jsonl"
    assert len(written.read_text().splitlines()) == 2
    assert stat.S_IMODE(outputs.stat().st_mode) == 0o700
    assert stat.S_IMODE(written.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(written.stat().st_mode) == 0o600


def test_api_video_sink_records_into_the_file_it_created(outputs):
    scripted = ScriptedPipelines()
    with _client(scripted, output_dir=outputs) as client:
        created = _post(client, sinks=["video:clips/dock.mp4"])
        assert created.status_code == 201, created.text
        scripted.made[-1].emit(3, live=False)
        client.delete(f"/streams/{created.json()['id']}")  # finalises the file
    with av.open(str(outputs / "clips" / "dock.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 3


@pytest.mark.parametrize("sink", ["jsonl:existing.jsonl", "video:existing.mp4"])
def test_api_sink_never_appends_to_or_overwrites_a_file_it_did_not_create(outputs, sink):
    outputs.mkdir()
    name = sink.partition(":")[2]
    (outputs / name).write_text("precious\n")
    with _client(output_dir=outputs) as client:
        response = _post(client, sinks=[sink])
        assert _refused_field(response) == "sinks"
        assert "already exists" in response.text
    assert (outputs / name).read_text() == "precious\n"


def test_two_streams_cannot_share_one_sink_file(outputs):
    with _client(output_dir=outputs, max_streams=4) as client:
        assert _post(client, sinks=["jsonl:shared.jsonl"]).status_code == 201
        assert _refused_field(_post(client, sinks=["jsonl:shared.jsonl"])) == "sinks"


def test_symlinks_in_the_output_root_are_not_followed(tmp_path, outputs):
    outside = tmp_path / "outside"
    outside.mkdir()
    outputs.mkdir()
    (outputs / "escape").symlink_to(outside, target_is_directory=True)
    (outputs / "file.jsonl").symlink_to(outside / "target.jsonl")  # dangling: would be created
    (outside / "kept.jsonl").write_text("precious\n")
    (outputs / "kept.jsonl").symlink_to(outside / "kept.jsonl")
    with _client(output_dir=outputs) as client:
        for sink in ("jsonl:escape/x.jsonl", "jsonl:file.jsonl", "jsonl:kept.jsonl"):
            assert _refused_field(_post(client, sinks=[sink])) == "sinks", sink
    assert sorted(path.name for path in outside.iterdir()) == ["kept.jsonl"]
    assert (outside / "kept.jsonl").read_text() == "precious\n"


def test_a_stream_that_fails_to_start_leaves_no_sink_file(outputs):
    with _client(output_dir=outputs) as client:
        failed = _post(client, source="gopher://example.com/x", sinks=["jsonl:run.jsonl"])
        assert _refused_field(failed) == "source"
        assert not (outputs / "run.jsonl").exists()
        assert _post(client, sinks=["jsonl:run.jsonl"]).status_code == 201  # the name is free


def test_without_an_output_root_api_file_sinks_name_the_flag():
    with _client() as client:  # no state_dir, no output_dir: an embedding app's default
        response = _post(client, sinks=["jsonl:x.jsonl"])
        assert _refused_field(response) == "sinks" and "--output-dir" in response.text


def test_the_default_output_root_is_private_and_under_the_state_dir(tmp_path):
    with _client(state_dir=tmp_path / "state") as client:
        assert _post(client, sinks=["jsonl:a.jsonl"]).status_code == 201
    root = tmp_path / "state" / "outputs"
    assert (root / "a.jsonl").is_file() and stat.S_IMODE(root.stat().st_mode) == 0o700


def test_a_stored_stream_reopens_its_own_file_after_a_restart(tmp_path):
    state = tmp_path / "state"
    first = ScriptedPipelines()
    with _client(first, state_dir=state) as client:
        stream_id = _post(client, sinks=["jsonl:kept.jsonl"]).json()["id"]
        first.made[-1].emit(2, live=False)
    again = ScriptedPipelines()
    with _client(again, state_dir=state) as client:
        assert [s["id"] for s in client.get("/streams").json()["streams"]] == [stream_id]
        again.made[-1].emit(1, live=False)
        client.delete(f"/streams/{stream_id}")
    assert len((state / "outputs" / "kept.jsonl").read_text().splitlines()) == 3


# ---- the media root ----------------------------------------------------------------------------


@pytest.fixture
def media(tmp_path: Path) -> Path:
    root = tmp_path / "media"
    root.mkdir()
    write_test_clip(root / "clip.mp4", frames=3)
    return root


def test_a_file_source_is_a_name_under_the_media_root(media):
    scripted = ScriptedPipelines()
    with _client(scripted, media_root=media) as client:
        created = _post(client, source="clip.mp4")
        assert created.status_code == 201, created.text
        assert created.json()["source"] == "clip.mp4"
    assert scripted.made[-1].video_reference == str((media / "clip.mp4").resolve())


def test_refused_file_sources_all_get_the_same_answer(tmp_path, media):
    outside = tmp_path / "outside.mp4"
    write_test_clip(outside, frames=3)
    (media / "link.mp4").symlink_to(outside)
    (media / "folder.mp4").mkdir()
    os.mkfifo(media / "pipe.mp4")
    unreadable = media / "locked.mp4"
    write_test_clip(unreadable, frames=3)
    unreadable.chmod(0)
    sources = [
        "missing.mp4",  # does not exist
        "folder.mp4",  # not a file
        "pipe.mp4",  # a FIFO: opening it must not hang the request either
        "../outside.mp4",  # exists, outside
        str(outside),  # exists, absolute
        f"file://{outside}",
        "link.mp4",  # exists, a symlink leading out
    ]
    if os.geteuid() != 0:  # root reads a mode-000 file
        sources.append("locked.mp4")
    with _client(media_root=media) as client:
        answers = {source: _post(client, source=source) for source in sources}
    bodies = {response.text for response in answers.values()}
    assert len(bodies) == 1, bodies
    assert all(_refused_field(response) == "source" for response in answers.values())


def test_without_a_media_root_api_file_sources_name_the_flag(media):
    with _client() as client:
        response = _post(client, source=str(media / "clip.mp4"))
        assert _refused_field(response) == "source" and "--media-root" in response.text


# ---- the private-network policy ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"sinks": ["webhook:http://user:pw-hunter2@127.0.0.1:9/hook"]}, "sinks"),
        ({"sinks": ["webhook:http://localhost:9/hook"]}, "sinks"),
        ({"sinks": ["webhook:http://169.254.169.254/latest/meta-data"]}, "sinks"),
        ({"sinks": ["webhook:http://127.0.0.1\\@example.com/"]}, "sinks"),
        ({"sinks": ["udp:10.1.2.3:5005"]}, "sinks"),
        ({"sinks": ["udp:[::1]:5005"]}, "sinks"),
        ({"source": "rtsp://admin:pw-hunter2@10.0.0.1/cam"}, "source"),
        ({"source": "rtsp://[fd00::1]/cam"}, "source"),
        ({"source": "http://100.64.0.1/live.m3u8"}, "source"),
        ({"source": "rtsp://224.0.0.1/cam"}, "source"),
        ({"source": "rtsp://0.0.0.0/cam"}, "source"),
        ({"source": "rtsp://2130706433/cam"}, "source"),  # 127.0.0.1 as one number
    ],
)
def test_internal_addresses_are_refused_without_echoing_credentials(caplog, fields, field):
    caplog.set_level(logging.DEBUG)
    with _client() as client:
        response = _post(client, **fields)
        assert _refused_field(response) == field
        assert client.get("/streams").json()["streams"] == []
    assert "hunter2" not in response.text and "hunter2" not in caplog.text
    if "\\" not in str(fields):
        assert "--allow-private-network" in response.text


def test_allow_private_network_lets_internal_addresses_through(caplog):
    caplog.set_level(logging.DEBUG)
    with _client(allow_private_network=True, max_streams=4) as client:
        webhook = _post(client, sinks=["webhook:http://user:pw-hunter2@127.0.0.1:9/hook"])
        camera = _post(client, source="rtsp://admin:pw-hunter2@10.0.0.1/cam")
        udp = _post(client, sinks=["udp:127.0.0.1:5005"])
        assert [webhook.status_code, camera.status_code, udp.status_code] == [201, 201, 201]
        assert "hunter2" not in client.get("/streams").text
    assert "hunter2" not in caplog.text


def test_public_addresses_need_no_flag():
    with _client(max_streams=4) as client:
        assert _post(client, source="rtsp://8.8.8.8/cam").status_code == 201
        assert _post(client, sinks=["webhook:https://[2606:4700::1111]/hook"]).status_code == 201


def test_every_address_a_name_resolves_to_is_checked(monkeypatch):
    answers = [("8.8.8.8", 0), ("192.168.1.20", 0)]  # a public answer hides a private one

    def getaddrinfo(host: str, *args: Any, **kwargs: Any) -> list[Any]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", answer) for answer in answers]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    with _client() as client:
        response = _post(client, sinks=["webhook:https://hooks.example.com/x"])
        assert _refused_field(response) == "sinks" and "private" in response.text
        answers.pop()
        assert _post(client, sinks=["webhook:https://hooks.example.com/x"]).status_code == 201


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.2", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
        ("64:ff9b::a00:1", "private"),  # NAT64 of 10.0.0.1
        ("172.16.0.1", "private"),
        ("fc00::1", "private"),
        ("fe80::1", "link-local"),
        ("100.100.0.1", "CGNAT"),
        ("ff02::1", "multicast"),
        ("::", "unspecified"),
        ("192.0.2.1", "private"),  # documentation range
        ("1.1.1.1", None),
        ("2606:4700::1111", None),
    ],
)
def test_internal_address_kinds(address, kind):
    assert internal_address_kind(ipaddress.ip_address(address)) == kind


# ---- the operator keeps full paths -------------------------------------------------------------


def test_config_streams_keep_full_paths_and_any_address(tmp_path, media):
    target = tmp_path / "anywhere" / "config.jsonl"
    target.parent.mkdir()
    config = ServeConfig.model_validate(
        {
            "streams": [
                {
                    "id": "dock",
                    "source": str(media / "clip.mp4"),
                    "classes": ["p"],
                    "sinks": [f"jsonl:{target}", "webhook:http://127.0.0.1:9/hook"],
                }
            ]
        }
    )
    with _client(config=config) as client:  # no roots, private network refused for the API
        (stream,) = client.get("/streams").json()["streams"]
    assert stream["id"] == "dock" and stream["origin"] == "config"
    assert target.is_file()


def test_cli_run_keeps_full_paths_and_any_address(tmp_path, media, monkeypatch):
    received: list[dict[str, Any]] = []

    def init(**keywords: Any) -> None:
        received.append(keywords)
        raise ConfigError("stopped before any model is loaded")

    monkeypatch.setattr(InferencePipeline, "init", init)
    target = tmp_path / "run.jsonl"
    clip = media / "clip.mp4"
    arguments = ["run", "--source", str(clip), "--classes", "p", "--sink", f"jsonl:{target}"]
    assert cli_main([*arguments, "--sink", "webhook:http://127.0.0.1:9/hook"]) == 2
    (keywords,) = received  # every sink was built, the loopback webhook too
    assert keywords["video_reference"] == [str(clip)]
    assert target.is_file()  # the JSONL sink opened the path as given


# ---- serve flags and config --------------------------------------------------------------------


def _serve(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = serve_main(["serve", "--port", "0", *args])
    return code, capsys.readouterr().err.strip()


def test_serve_refuses_unusable_roots_in_one_line(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    state = ["--state-dir", str(tmp_path / "state")]
    code, err = _serve(capsys, *state, "--media-root", str(tmp_path / "missing"))
    assert code == 2 and "--media-root" in err and len(err.splitlines()) == 1
    code, err = _serve(capsys, *state, "--output-dir", str(blocker / "out"))
    assert code == 2 and "--output-dir" in err and len(err.splitlines()) == 1
    config = tmp_path / "serve.yaml"
    config.write_text(f"media_root: {tmp_path / 'missing'}\n")  # the config's field is used
    code, err = _serve(capsys, *state, "--config", str(config))
    assert code == 2 and "--media-root" in err
