"""``sam3-stream serve`` as a process: streams created over the API survive a restart.

Two real server processes in a row on the same ``--state-dir``, the tiny checkpoint on CPU, the
key from ``SAM3_STREAM_API_KEY``. SIGTERM must shut each down cleanly (exit code 0) even while a
client is still reading events.
"""

from __future__ import annotations

import httpx

from pipeline.service import StreamStore
from pipeline.sources.sample_clip import write_sample_clip
from tests.service_helpers import ServeProcess, collect_detections, iter_sse

KEY = "restart-test-key"


def _serve(tiny_model_dir, state_dir, media_root) -> ServeProcess:
    server = ServeProcess(
        [
            "--media-root",
            str(media_root),
            "--model",
            str(tiny_model_dir),
            "--device",
            "cpu",
            "--max-objects",
            "3",
            "--state-dir",
            str(state_dir),
        ],
        env={"SAM3_STREAM_API_KEY": KEY},
    )
    server.wait_for("ready:")
    return server


def test_stored_streams_come_back_after_the_server_restarts(tiny_model_dir, tmp_path):
    clip = write_sample_clip(tmp_path / "clip.mp4", frames=30, fps=15, width=160, height=120)
    state_dir = tmp_path / "state"
    headers = {"Authorization": f"Bearer {KEY}"}

    first = _serve(tiny_model_dir, state_dir, tmp_path)
    try:
        with httpx.Client(base_url=first.url, headers=headers, timeout=30) as http:
            live = http.post(
                "/streams",
                json={"source": "testpattern?fps=10&size=160x120", "classes": ["square"]},
            ).json()
            http.patch(f"/streams/{live['id']}", json={"classes": ["disc"], "threshold": 0.0})
            paused = http.post(
                "/streams", json={"source": clip.name, "classes": ["square"], "threshold": 0.0}
            ).json()
            http.post(f"/streams/{paused['id']}/pause")
            with http.stream("GET", f"/streams/{live['id']}/events") as response:
                events = iter_sse(response)
                assert next(events) == "subscribed"
                collect_detections(events, 1)
                assert first.stop() == 0  # with an event client still connected
    finally:
        first.stop()

    second = _serve(tiny_model_dir, state_dir, tmp_path)
    try:
        with httpx.Client(base_url=second.url, headers=headers, timeout=30) as http:
            assert http.get("/streams").status_code == 200
            restored = {s["id"]: s for s in http.get("/streams").json()["streams"]}
            assert set(restored) == {live["id"], paused["id"]}
            assert restored[live["id"]]["classes"] == ["disc"]
            assert restored[live["id"]]["threshold"] == 0.0
            assert restored[paused["id"]]["paused"] is True
            assert restored[paused["id"]]["status"]["sources"][0]["state"] == "PAUSED"
            with http.stream("GET", f"/streams/{live['id']}/events") as response:
                events = iter_sse(response)
                assert next(events) == "subscribed"
                (record,) = collect_detections(events, 1)
                assert record["video_identifier"] == live["id"]
            assert http.delete(f"/streams/{paused['id']}").status_code == 204
            assert httpx.get(f"{second.url}/streams").status_code == 401
    finally:
        assert second.stop() == 0

    # The deletion reached the store too: a third start would bring back only the live stream.
    assert [row.id for row in StreamStore(state_dir).load()] == [live["id"]]
