"""The API end to end on the real pipeline and the tiny checkpoint: a file and a real RTSP camera.

One model for the whole server (the session's ``tiny_tracker``), a real uvicorn server on
127.0.0.1, events read over HTTP as a client would. Frames are small and few so each flow takes
seconds on two CPU cores; every wait is on an event (an SSE record, a status change), not a sleep.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from pipeline.service import ModelEngine, ServiceSettings, create_app
from pipeline.sources.sample_clip import write_sample_clip
from tests.service_helpers import (
    RunningServer,
    SseEvent,
    collect_detections,
    iter_sse,
    start_server,
)


@pytest.fixture
def server(tiny_tracker, tmp_path) -> Iterator[RunningServer]:
    engine = ModelEngine.from_tracker(tiny_tracker, model_name="tiny")
    # Files under tmp_path, the RTSP camera on loopback: the roots and policy a LAN site would set.
    settings = ServiceSettings(
        state_dir=tmp_path / "state", max_streams=2, media_root=tmp_path, allow_private_network=True
    )
    app = create_app(settings, engine=engine)
    running = start_server(app)
    running.wait_booted()
    yield running
    running.stop()


def _state(http: httpx.Client, stream_id: str) -> str:
    return http.get(f"/streams/{stream_id}").json()["status"]["sources"][0]["state"]


def _ids(records: list[dict]) -> set[int]:
    return {obj["tracker_id"] for record in records for obj in record["objects"]}


def _has_objects(record: dict) -> bool:
    return bool(record["objects"])


def _run_api_flow(server: RunningServer, body: dict, *, live: bool) -> None:
    """Create, list, status, events, patch classes, pause/resume, delete: the whole contract."""
    with server.client() as http:
        created = http.post("/streams", json=body)
        assert created.status_code == 201, created.text
        stream_id = created.json()["id"]
        assert [s["id"] for s in http.get("/streams").json()["streams"]] == [stream_id]

        with http.stream("GET", f"/streams/{stream_id}/events", timeout=60) as response:
            events = iter_sse(response)
            assert next(events) == "subscribed"
            before = collect_detections(events, 2, _has_objects)
            assert all(obj["class_name"] == "square" for r in before for obj in r["objects"])
            assert _state(http, stream_id) == "RUNNING"

            patched = http.patch(f"/streams/{stream_id}", json={"classes": ["circle"]})
            assert patched.json()["classes"] == ["circle"]
            after = collect_detections(
                events, 1, lambda r: _has_objects(r) and r["objects"][0]["class_name"] == "circle"
            )
            # No reseed: "square" left the running session with its tracks, "circle" joined it;
            # its tracks are new ones, numbered above every earlier id (square ids are retired).
            assert all(obj["class_name"] == "circle" for r in after for obj in r["objects"])
            assert min(_ids(after)) > max(_ids(before))

            paused = http.post(f"/streams/{stream_id}/pause").json()
            assert paused["paused"] is True
            assert _state(http, stream_id) == "PAUSED"
            last_frame = after[-1]["frame_id"]
            http.post(f"/streams/{stream_id}/resume")
            (resumed,) = collect_detections(
                events,
                1,
                (lambda r: r["epoch"] >= 1) if live else (lambda r: r["frame_id"] > last_frame),
            )
            if live:  # a paused camera is disconnected; resuming reconnects in a new epoch
                assert resumed["epoch"] >= 1

            metrics = http.get("/metrics").text
            assert f'sam3_stream_frames_processed_total{{stream="{stream_id}"}}' in metrics
            assert "sam3_stream_sessions_live 1.0" in metrics

            assert http.delete(f"/streams/{stream_id}").status_code == 204
            assert any(isinstance(e, SseEvent) and e.kind == "end" for e in events)
        assert http.get(f"/streams/{stream_id}").status_code == 404
        assert stream_id not in server.manager.engine.registry.identifiers()


def test_api_end_to_end_with_a_file_source(server, tmp_path):
    clip = write_sample_clip(tmp_path / "clip.mp4", frames=150, fps=15, width=160, height=120)
    # Not realtime: the file waits for the model, so it cannot run out before the test is done.
    body = {"source": clip.name, "classes": ["square"], "threshold": 0.0}  # under --media-root
    _run_api_flow(server, body, live=False)


@pytest.mark.rtsp
def test_api_end_to_end_with_an_rtsp_camera(server, rtsp_server_factory):
    camera = rtsp_server_factory(size=(160, 120), username="viewer", password="hunter2")
    body = {"source": camera.url, "classes": ["square"], "threshold": 0.0}
    with server.client() as http:
        listed = http.post("/streams", json=body).json()
        assert "hunter2" not in str(listed) and "viewer:***@" in listed["source"]
        http.delete(f"/streams/{listed['id']}")
    _run_api_flow(server, body, live=True)
