"""The HTTP contract over a scripted pipeline: routes, errors, auth, limits, persistence, pages.

Nothing here runs the model: ``ScriptedPipeline`` emits frames when a test says so (see
``tests/service_helpers.py``); the ``scripted`` fixture holds the pipelines this test's app
made. The real pipeline and tiny checkpoint are in ``test_service_e2e.py``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from pipeline.service import ModelEngine
from tests.service_helpers import (
    ScriptedPipelines,
    SseEvent,
    collect_detections,
    iter_sse,
    scripted_app,
    start_server,
)

CAMERA = "rtsp://admin:hunter2@127.0.0.1:1/cam"


@pytest.fixture
def scripted() -> ScriptedPipelines:
    return ScriptedPipelines()


@pytest.fixture
def client(tmp_path, scripted) -> Iterator[TestClient]:
    # The camera stand-in is on loopback: the test allows what a LAN camera site would.
    app = scripted_app(
        scripted, state_dir=tmp_path / "state", max_streams=2, allow_private_network=True
    )
    with TestClient(app) as test_client:
        app.state.service.booted.wait(10)
        yield test_client


def _create(client: TestClient, **fields) -> dict:
    response = client.post(
        "/streams", json={"source": "testpattern", "classes": ["person"], **fields}
    )
    assert response.status_code == 201, response.text
    return response.json()


def test_stream_lifecycle_create_list_get_patch_pause_resume_delete(client, scripted):
    created = _create(client, threshold=0.3, max_fps=5)
    stream_id = created["id"]
    assert created["video_identifier"] == stream_id
    assert created["status"]["sources"][0]["state"] == "RUNNING"

    listed = client.get("/streams").json()["streams"]
    assert [stream["id"] for stream in listed] == [stream_id]

    patched = client.patch(f"/streams/{stream_id}", json={"classes": "forklift, person"}).json()
    assert patched["classes"] == ["forklift", "person"]
    assert scripted.made[-1].class_names == ["forklift", "person"]

    assert client.post(f"/streams/{stream_id}/pause").json()["paused"] is True
    assert scripted.made[-1].state == "PAUSED"
    assert client.post(f"/streams/{stream_id}/resume").json()["paused"] is False
    assert client.get(f"/streams/{stream_id}").json()["status"]["sources"][0]["state"] == "RUNNING"

    assert client.delete(f"/streams/{stream_id}").status_code == 204
    assert scripted.made[-1].terminated.is_set()
    assert client.get(f"/streams/{stream_id}").status_code == 404
    assert client.get("/streams").json() == {"streams": []}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"classes": ["person"]}, "source"),
        ({"source": "testpattern", "classes": []}, "classes"),
        ({"source": "testpattern", "classes": ["person"], "threshold": 1.5}, "threshold"),
        ({"source": "testpattern", "classes": ["person"], "max_fps": 0}, "max_fps"),
        ({"source": "testpattern", "classes": ["person"], "treshold": 0.2}, "treshold"),
        (
            {"source": "testpattern", "classes": ["p"], "video_identifier": "a/b"},
            "video_identifier",
        ),
        ({"source": "gopher://host/x", "classes": ["person"]}, "source"),
        ({"source": "/no/such/file.mp4", "classes": ["person"]}, "source"),
        ({"source": "testpattern", "classes": ["person"], "sinks": ["screen"]}, "sinks"),
        ({"source": "testpattern", "classes": ["person"], "sinks": ["fax:123"]}, "sinks"),
        (
            {"source": "testpattern", "classes": ["p"], "source_options": {"stall_timeout_s": -1}},
            "source_options",
        ),
        ({"source": "testpattern", "classes": ["person"], "max_objects": 0}, "max_objects"),
        ({"source": "testpattern", "classes": ["person"], "max_objects": "all"}, "max_objects"),
    ],
)
def test_bad_stream_request_is_422_naming_the_field(client, body, field):
    response = client.post("/streams", json=body)
    assert response.status_code == 422, response.text
    locations = [item["loc"] for item in response.json()["detail"]]
    assert any(field in location for location in locations), locations


def test_unsupported_scheme_says_which_schemes_work(client):
    response = client.post("/streams", json={"source": "gopher://host/x", "classes": ["p"]})
    assert response.status_code == 422
    assert "rtsp://" in response.json()["detail"][0]["msg"]


def test_malformed_json_is_422_not_500(client):
    response = client.post(
        "/streams", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422


def test_unknown_stream_is_404_everywhere(client):
    for method, path in [
        ("GET", "/streams/nope"),
        ("PATCH", "/streams/nope"),
        ("POST", "/streams/nope/pause"),
        ("POST", "/streams/nope/resume"),
        ("DELETE", "/streams/nope"),
        ("GET", "/streams/nope/events"),
        ("GET", "/streams/nope/view"),
        ("POST", "/streams/nope/webrtc"),
    ]:
        body = None
        if method == "PATCH":
            body = {"threshold": 0.2}
        if path.endswith("webrtc"):
            body = {"sdp": "v=0", "type": "offer"}
        response = client.request(method, path, json=body)
        assert response.status_code == 404, (method, path, response.text)
        assert "nope" in response.json()["detail"]


def test_more_streams_than_the_limit_is_429(client):
    _create(client)
    _create(client)
    response = client.post("/streams", json={"source": "testpattern", "classes": ["person"]})
    assert response.status_code == 429
    assert "--max-streams" in response.json()["detail"]


def test_duplicate_video_identifier_is_409(client):
    _create(client, video_identifier="dock")
    response = client.post(
        "/streams", json={"source": "testpattern", "classes": ["p"], "video_identifier": "dock"}
    )
    assert response.status_code == 409


def test_camera_password_is_never_echoed(client):
    created = _create(client, source=CAMERA, sinks=["webhook:http://127.0.0.1:9/hook?token=abc"])
    assert "hunter2" not in str(created) and "abc" not in str(created)
    assert "admin:***@" in created["source"]
    for path in ("/streams", f"/streams/{created['id']}", "/"):
        assert "hunter2" not in client.get(path).text
    bad = client.post("/streams", json={"source": CAMERA, "classes": 5})
    assert bad.status_code == 422 and "hunter2" not in bad.text
    bad = client.post("/streams", json=[CAMERA])
    assert bad.status_code == 422 and "hunter2" not in bad.text


def test_jsonl_sink_receives_frames(client, scripted, tmp_path):
    path = tmp_path / "state" / "outputs" / "out.jsonl"  # the default output root
    created = _create(client, sinks=["jsonl:out.jsonl"])
    scripted.made[-1].emit(3, live=False)
    client.delete(f"/streams/{created['id']}")  # closes (flushes) the sink
    assert len(path.read_text().splitlines()) == 3


def test_pages_list_streams_and_serve_the_viewer(client):
    created = _create(client)
    index = client.get("/")
    assert index.status_code == 200
    assert f'href="streams/{created["id"]}/view"' in index.text
    viewer = client.get(f"/streams/{created['id']}/view")
    assert viewer.status_code == 200 and "RTCPeerConnection" in viewer.text


def test_health_ready_and_metrics(client, scripted):
    _create(client)
    scripted.made[-1].emit(2)
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["ready"] is True and ready["streams"] == 1
    text = client.get("/metrics").text
    assert "sam3_stream_streams 1.0" in text
    assert "sam3_stream_frame_age_seconds_count" in text


def test_webrtc_offer_that_is_not_sdp_is_422(client):
    created = _create(client)
    response = client.post(
        f"/streams/{created['id']}/webrtc", json={"sdp": "hello", "type": "offer"}
    )
    assert response.status_code == 422


def test_readyz_is_503_until_the_model_loads_and_streams_wait_for_it(tmp_path):
    release = threading.Event()
    engine = ModelEngine(lambda: release.wait(30) and object(), model_name="slow")
    app = scripted_app(engine=engine)
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 503
        response = client.post("/streams", json={"source": "testpattern", "classes": ["p"]})
        assert response.status_code == 503 and "still loading" in response.json()["detail"]
        release.set()
        assert app.state.service.booted.wait(10)
        assert client.get("/readyz").status_code == 200


def test_model_that_fails_to_load_is_reported_and_stops_the_server(tmp_path):
    reasons = []
    done = threading.Event()

    def fail():
        raise RuntimeError("weights are gated: run hf auth login")

    def on_fatal(reason):
        reasons.append(reason)
        done.set()

    app = scripted_app(engine=ModelEngine(fail, model_name="gated"), on_fatal=on_fatal)
    with TestClient(app) as client:
        assert done.wait(10)
        ready = client.get("/readyz")
        assert ready.status_code == 503 and "gated" in ready.json()["error"]
    assert "gated" in reasons[0]


class TestAuth:
    KEY = "correct-horse-battery"

    @pytest.fixture
    def client(self) -> Iterator[TestClient]:
        with TestClient(scripted_app(api_key=self.KEY)) as test_client:
            yield test_client

    def test_every_endpoint_but_healthz_needs_the_key(self, client):
        assert client.get("/healthz").status_code == 200
        for path in ("/", "/streams", "/readyz", "/metrics", "/openapi.json", "/streams/x/events"):
            response = client.get(path)
            assert response.status_code == 401, path
            assert response.headers["www-authenticate"].startswith("Bearer")
        assert client.get("/streams", params={"api_key": "wrong"}).status_code == 401
        wrong = {"Authorization": "Bearer wrong"}
        assert client.get("/streams", headers=wrong).status_code == 401

    def test_key_as_bearer_header_or_query_parameter(self, client):
        bearer = {"Authorization": f"Bearer {self.KEY}"}
        assert client.get("/streams", headers=bearer).status_code == 200
        assert client.get("/streams", params={"api_key": self.KEY}).status_code == 200
        created = client.post(
            "/streams",
            params={"api_key": self.KEY},
            json={"source": "testpattern", "classes": ["person"]},
        )
        assert created.status_code == 201

    def test_no_key_configured_means_open(self):
        with TestClient(scripted_app()) as client:
            assert client.get("/streams").status_code == 200


def test_streams_come_back_after_a_restart_with_their_changes(tmp_path):
    state = tmp_path / "state"
    with TestClient(scripted_app(state_dir=state, allow_private_network=True)) as client:
        kept = _create(client, source=CAMERA, threshold=0.2)
        client.patch(f"/streams/{kept['id']}", json={"classes": ["forklift"]})
        client.post(f"/streams/{kept['id']}/pause")
        gone = _create(client)
        client.delete(f"/streams/{gone['id']}")

    after_restart = ScriptedPipelines()
    app = scripted_app(after_restart, state_dir=state, allow_private_network=True)
    with TestClient(app) as client:
        assert app.state.service.booted.wait(10)
        (restored,) = client.get("/streams").json()["streams"]
        restored_pipeline = after_restart.made[-1]
        assert restored_pipeline.state == "PAUSED"
    assert restored["id"] == kept["id"]
    assert (restored["classes"], restored["threshold"], restored["paused"]) == (
        ["forklift"],
        0.2,
        True,
    )
    assert restored_pipeline.video_reference == CAMERA  # credentials kept to reconnect


def test_config_streams_start_at_boot_and_are_not_stored(tmp_path):
    from pipeline.service import ServeConfig

    config = ServeConfig.model_validate(
        {"streams": [{"id": "dock", "source": "testpattern", "classes": ["person"]}]}
    )
    state = tmp_path / "state"
    app = scripted_app(state_dir=state, config=config)
    with TestClient(app) as client:
        assert app.state.service.booted.wait(10)
        (stream,) = client.get("/streams").json()["streams"]
        assert (stream["id"], stream["origin"]) == ("dock", "config")
    app = scripted_app(state_dir=state)
    with TestClient(app) as client:
        assert app.state.service.booted.wait(10)
        assert client.get("/streams").json()["streams"] == []


def test_events_stream_detections_with_optional_rle_masks_and_end_on_delete(scripted):
    server = start_server(scripted_app(scripted))
    try:
        server.wait_booted()
        with server.client() as http:
            stream_id = http.post(
                "/streams", json={"source": "testpattern", "classes": ["person"]}
            ).json()["id"]
            pipeline = scripted.made[-1]
            with http.stream("GET", f"/streams/{stream_id}/events?masks=rle") as response:
                assert response.headers["content-type"].startswith("text/event-stream")
                events = iter_sse(response)
                assert next(events) == "subscribed"
                pipeline.emit(3)
                records = collect_detections(events, 3)
                assert [record["frame_id"] for record in records] == [0, 1, 2]
                assert records[0]["objects"][0]["class_name"] == "person"
                assert records[0]["objects"][0]["mask"]["size"] == [48, 64]
                http.delete(f"/streams/{stream_id}")
                assert any(isinstance(e, SseEvent) and e.kind == "end" for e in events)
            bad = http.get(f"/streams/{stream_id}/events", params={"masks": "png"})
            assert bad.status_code in (404, 422)
    finally:
        server.stop()


def test_a_streams_own_object_budget_is_set_before_it_starts_and_cleared_on_delete(
    client, monkeypatch
):
    budgets: list[tuple[str, int | None]] = []
    registry = client.app.state.service.engine.registry
    monkeypatch.setattr(registry, "set_max_objects", lambda *call: budgets.append(call))
    own = _create(client, video_identifier="dock", max_objects=3)
    assert own["max_objects"] == 3
    default = _create(client, video_identifier="gate")
    assert default["max_objects"] is None
    assert budgets == [("dock", 3), ("gate", None)], "None: the server's budget, nothing stale"
    client.delete(f"/streams/{own['id']}")
    assert budgets[-1] == ("dock", None)


def test_a_streams_object_budget_survives_a_restart(tmp_path):
    state = tmp_path / "state"
    with TestClient(scripted_app(state_dir=state)) as client:
        _create(client, max_objects=7)
    app = scripted_app(state_dir=state)
    with TestClient(app) as client:
        assert app.state.service.booted.wait(10)
        (restored,) = client.get("/streams").json()["streams"]
    assert restored["max_objects"] == 7


def test_metrics_show_each_streams_tracks_and_evictions_by_reason(client, monkeypatch):
    created = _create(client, video_identifier="dock")
    stats = SimpleNamespace(
        bytes_held=2048,
        objects_live=3,
        tentative_tracks=1,
        evictions={"lost": 4, "unmatched": 0, "duplicate": 2, "budget": 5},
        visual_objects=2,
    )
    engine = client.app.state.service.engine
    monkeypatch.setattr(engine, "session_stats", lambda: {"dock": stats})
    text = client.get("/metrics").text
    stream = f'stream="{created["id"]}"'
    assert f"sam3_stream_objects_live{{{stream}}} 3.0" in text
    assert f"sam3_stream_tentative_tracks{{{stream}}} 1.0" in text
    assert f"sam3_stream_prompted_objects{{{stream}}} 2.0" in text
    for reason, count in stats.evictions.items():
        assert f'sam3_stream_objects_evicted_total{{reason="{reason}",{stream}}} {count}.0' in text
    assert 'sam3_stream_session_bytes_held{video_identifier="dock"} 2048.0' in text
