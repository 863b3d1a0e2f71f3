"""The service refuses what a web page on another site could make the operator's browser send.

DNS rebinding (a page whose own name now points at 127.0.0.1, so it carries ``Host:
attacker.example``) is answered 400 before any route runs; cross-site state changes (a form POST,
a ``no-cors`` fetch, an ``Origin: null`` frame) are answered 403/415 and change nothing. ``serve``
refuses a non-loopback address without an API key (exit 2, one line) unless
``--insecure-no-auth``. Every case runs against a real server on loopback.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from pipeline.cli.serve import main
from pipeline.service import ServiceSettings, create_app
from pipeline.service.host_check import host_name, name_allowed
from tests.service_helpers import (
    RunningServer,
    ScriptedPipelines,
    ServeProcess,
    scripted_engine,
    start_server,
)

KEY = "host-check-key"


def _running(allowed_hosts: tuple[str, ...] = (), api_key: str | None = None) -> RunningServer:
    settings = ServiceSettings(api_key=api_key, allowed_hosts=allowed_hosts)
    app = create_app(settings, engine=scripted_engine(), pipeline_factory=ScriptedPipelines().init)
    server = start_server(app, api_key=api_key)
    server.wait_booted()
    return server


@pytest.fixture
def served() -> Iterator[RunningServer]:
    server = _running()
    try:
        yield server
    finally:
        server.stop()


def _port(server: RunningServer) -> str:
    return server.url.rsplit(":", 1)[-1]


def _create(http: httpx.Client) -> str:
    response = http.post("/streams", json={"source": "testpattern", "classes": ["person"]})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _paused(http: httpx.Client, stream_id: str) -> bool:
    return http.get(f"/streams/{stream_id}").json()["paused"]


@pytest.mark.parametrize(
    ("header", "name"),
    [("Example.COM.:80", "example.com"), ("[::1]:9001", "::1"), ("localhost", "localhost")],
)
def test_host_name_drops_port_brackets_and_trailing_dot(header, name):
    assert host_name(header) == name


def test_only_listed_names_and_ip_literals_are_allowed():
    allowed = ("cams.example.com", "*.lan")
    for name in ("127.0.0.1", "10.0.0.7", "::1", "localhost", "cams.example.com", "cam1.lan"):
        assert name_allowed(name, allowed), name
    for name in ("attacker.example", "cams.example.com.evil", "lan", "evil-cams.example.com"):
        assert not name_allowed(name, allowed), name
    assert name_allowed("anything.example", ("*",))


def test_a_rebinding_host_is_refused_before_any_route(served):
    port = _port(served)
    with served.client() as http:
        for path in ("/streams", "/", "/healthz", "/docs"):
            refused = http.get(path, headers={"Host": f"attacker.example:{port}"})
            assert refused.status_code == 400, path
            assert "attacker" not in refused.text
        rebinding_post = http.post(
            "/streams",
            json={"source": "testpattern", "classes": ["person"]},
            headers={
                "Host": f"attacker.example:{port}",
                "Origin": f"http://attacker.example:{port}",
                "Sec-Fetch-Site": "same-origin",  # the page really is same-origin after rebinding
            },
        )
        assert rebinding_post.status_code == 400
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "10.1.2.3"):
            assert http.get("/streams", headers={"Host": host}).status_code == 200, host
        assert http.get("/streams").json()["streams"] == []


def test_allowed_hosts_adds_names_and_star_allows_any():
    listed = _running(allowed_hosts=("cams.example.com",))
    try:
        with listed.client() as http:
            assert http.get("/streams", headers={"Host": "cams.example.com"}).status_code == 200
            assert http.get("/streams", headers={"Host": "evil.example.com"}).status_code == 400
    finally:
        listed.stop()
    anything = _running(allowed_hosts=("*",))
    try:
        with anything.client() as http:
            assert http.get("/streams", headers={"Host": "anything.example"}).status_code == 200
    finally:
        anything.stop()


def test_cross_site_state_changes_are_refused_and_change_nothing(served):
    port = _port(served)
    with served.client() as http:
        cam = _create(http)
        attacks = [
            # <form method=post action=http://127.0.0.1:PORT/streams/cam/pause> on evil.example
            (
                "POST",
                f"/streams/{cam}/pause",
                {
                    "Origin": "http://evil.example",
                    "Sec-Fetch-Site": "cross-site",
                    "Content-Type": "application/x-www-form-urlencoded",
                },
                b"x=1",
                403,
            ),
            # an old browser's form: no Origin, no Sec-Fetch-*: the form encoding gives it away
            ("POST", f"/streams/{cam}/pause", {"Content-Type": "text/plain"}, b"x", 415),
            # fetch(url, {method: "POST", mode: "no-cors"}) with no body
            ("POST", f"/streams/{cam}/pause", {"Sec-Fetch-Site": "cross-site"}, b"", 403),
            ("POST", f"/streams/{cam}/pause", {"Origin": "http://evil.example"}, b"", 403),
            # another site on the same machine is another site
            ("POST", f"/streams/{cam}/pause", {"Origin": "http://localhost:3000"}, b"", 403),
            # a sandboxed frame or file:// page
            ("DELETE", f"/streams/{cam}", {"Origin": "null"}, b"", 403),
            (
                "PATCH",
                f"/streams/{cam}",
                {"Content-Type": "multipart/form-data; boundary=x"},
                b"--x--",
                415,
            ),
            (
                "POST",
                "/streams",
                {"Content-Type": "application/x-www-form-urlencoded"},
                b"source=testpattern&classes=person",
                415,
            ),
        ]
        for method, path, headers, body, status in attacks:
            response = http.request(method, path, headers=headers, content=body)
            assert response.status_code == status, (method, path, headers, response.text)
        assert not _paused(http, cam)
        assert [stream["id"] for stream in http.get("/streams").json()["streams"]] == [cam]
        # the service's own page (same origin), and a plain client without browser headers
        own_page = {
            "Origin": f"http://127.0.0.1:{port}",
            "Sec-Fetch-Site": "same-origin",
            "Content-Type": "application/json",
        }
        assert http.post(f"/streams/{cam}/pause", headers=own_page).status_code == 200
        assert _paused(http, cam)
        assert http.post(f"/streams/{cam}/resume").status_code == 200
        assert http.patch(f"/streams/{cam}", json={"threshold": 0.4}).status_code == 200
        assert http.delete(f"/streams/{cam}", headers={"Sec-Fetch-Site": "none"}).status_code == 204


def test_the_key_does_not_make_a_cross_site_post_acceptable():
    server = _running(api_key=KEY)
    try:
        with server.client() as http:
            cam = _create(http)
            response = http.post(
                f"/streams/{cam}/pause?api_key={KEY}",
                headers={"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"},
            )
            assert response.status_code == 403
            assert not _paused(http, cam)
    finally:
        server.stop()


def _serve(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    try:
        code = main(["serve", *args])
    except SystemExit as exit_:  # argparse
        code = int(exit_.code or 0)
    return code, capsys.readouterr().err.strip()


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_serve_refuses_a_public_address_without_a_key(capsys, tmp_path, host):
    code, err = _serve(
        capsys, "--state-dir", str(tmp_path), "--host", host, "--port", "0", "--api-key", ""
    )
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "without an API key" in err and "--insecure-no-auth" in err


@pytest.mark.parametrize(
    "entry", ["http://cams.example.com", "cams.example.com:9001", "a*b.example", ""]
)
def test_serve_refuses_a_malformed_allowed_host(capsys, tmp_path, entry):
    code, err = _serve(capsys, "--state-dir", str(tmp_path), "--allowed-hosts", f"ok.lan,{entry}")
    assert code == 2 and "--allowed-hosts" in err and len(err.splitlines()) == 1


def test_serve_on_all_interfaces_with_insecure_no_auth_still_checks_host(tiny_model_dir, tmp_path):
    server = ServeProcess(
        [
            "--model",
            str(tiny_model_dir),
            "--device",
            "cpu",
            "--state-dir",
            str(tmp_path / "state"),
            "--host",
            "0.0.0.0",
            "--insecure-no-auth",
            "--allowed-hosts",
            "cams.example.com",
        ],
        env={"SAM3_STREAM_API_KEY": ""},
    )
    try:
        server.wait_for("ready:")
        assert any("without an API key" in line for line in server.output)
        url = server.url.replace("0.0.0.0", "127.0.0.1")
        with httpx.Client(base_url=url, timeout=30) as http:
            assert http.get("/healthz").status_code == 200
            assert http.get("/streams", headers={"Host": "cams.example.com"}).status_code == 200
            assert http.get("/streams", headers={"Host": "attacker.example"}).status_code == 400
            cross_site = http.post("/streams/x/pause", headers={"Origin": "http://evil.example"})
            assert cross_site.status_code == 403
    finally:
        assert server.stop() == 0
