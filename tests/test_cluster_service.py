"""Streams on a real local Ray cluster behind the same HTTP API (issue 17).

Two CPU workers on the tiny checkpoint; a real RTSP camera and real files created over the API.
One scenario walks the whole life of a cluster, because each front door start loads three
models (front door + two workers) and a 2-core machine pays for every start:

placement spreads streams over both workers (``worker`` differs) and SSE events arrive from
both; a full cluster answers 429 naming ``max_streams_per_worker``; deleting a stream frees its
slot; SIGKILL of one worker's process moves its streams (epoch + 1, ids above every old one) to
the other, while that worker's own stream is not disturbed (same epoch, frames go on); a stream
that finds no room waits (``WAITING``) and starts when Ray brings the killed worker back; and a
new front door on the same state directory finds the streams again from its store.

The local cluster is owned by this process (``ray.init``), see ``tests/cluster_helpers.py``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.cluster.loading import TrackerSpec
from pipeline.cluster.settings import ClusterSettings
from pipeline.service import ServiceSettings, create_app
from pipeline.sources.sample_clip import write_sample_clip
from tests.cluster_helpers import EventRecorder, cluster_server, epochs, tiny_engine, tracker_ids
from tests.service_helpers import start_server
from tests.waiting import wait_until

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.rtsp


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """A Ray cluster of this test process with 4 logical CPUs (2 workers + headroom)."""
    started = time.monotonic()
    temp_dir = tempfile.mkdtemp(prefix="ray-r1-", dir="/tmp")
    ray.init(
        num_cpus=4,
        include_dashboard=False,
        configure_logging=False,
        log_to_driver=False,
        _temp_dir=temp_dir,
    )
    print(f"local ray cluster started in {time.monotonic() - started:.1f} s")
    try:
        yield
    finally:
        ray.shutdown()


def _create(http, body: dict) -> dict:
    response = http.post("/streams", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def _status(http, stream_id: str) -> dict:
    return http.get(f"/streams/{stream_id}").json()["status"]


def _worker_of(http, stream_id: str) -> str | None:
    return http.get(f"/streams/{stream_id}").json()["worker"]


def test_streams_spread_fail_over_wait_and_survive_a_front_door_restart(
    local_ray, tiny_model_dir, tmp_path, rtsp_server
):
    clip = write_sample_clip(tmp_path / "clip.mp4", frames=600, fps=15, width=160, height=120)
    state_dir = tmp_path / "state"
    common = {"classes": ["square"], "threshold": 0.0, "max_fps": 4, "max_objects": 2}

    began = time.monotonic()
    server = cluster_server(tiny_model_dir, state_dir=state_dir, media_root=tmp_path)
    boot_s = time.monotonic() - began
    cluster = server.manager.cluster
    recorders: list[EventRecorder] = []
    try:
        with server.client() as http:
            # -- placement: least loaded first, so two streams land on two workers -------------
            camera = _create(http, {"source": rtsp_server.url, **common})
            video = _create(
                http,
                {
                    "source": clip.name,
                    "source_options": {"realtime": True},
                    "sinks": ["jsonl:video.jsonl"],  # written on the worker
                    **common,
                },
            )
            assert {camera["worker"], video["worker"]} == {"worker-0", "worker-1"}
            camera_events = EventRecorder(server, camera["id"])
            video_events = EventRecorder(server, video["id"])
            recorders += [camera_events, video_events]
            camera_events.wait_frames(3)
            video_events.wait_frames(3)  # SSE from both workers
            assert epochs(camera_events.detections()) == {0}
            written = state_dir / "outputs" / "video.jsonl"
            wait_until(lambda: written.exists() and written.stat().st_size > 0, what="jsonl")

            # -- runtime changes reach the worker, with the in-process errors ---------------
            changed = http.patch(f"/streams/{video['id']}", json={"classes": ["square", "disc"]})
            assert changed.status_code == 200, changed.text
            wait_until(
                lambda: _status(http, video["id"])["class_names"] == ["square", "disc"],
                what="classes on the worker",
            )
            assert http.post(f"/streams/{camera['id']}/pause").json()["paused"] is True
            assert http.post(f"/streams/{camera['id']}/resume").json()["paused"] is False
            missing = http.delete(f"/streams/{video['id']}/objects/999999")
            assert missing.status_code == 404, missing.text
            bad = http.patch(f"/streams/{video['id']}", json={"threshold": 2})
            assert bad.status_code == 422

            # -- full: two per worker, the fifth is a 429 naming the limit ---------------------
            third = _create(http, {"source": "testpattern?fps=8&size=160x120", **common})
            fourth = _create(http, {"source": "testpattern?fps=8&size=160x120", **common})
            assert {third["worker"], fourth["worker"]} == {"worker-0", "worker-1"}
            refused = http.post("/streams", json={"source": "testpattern", **common})
            assert refused.status_code == 429
            assert "max_streams_per_worker" in refused.json()["detail"]

            # -- delete frees the slot ------------------------------------------------------
            assert http.delete(f"/streams/{fourth['id']}").status_code == 204
            fifth = _create(http, {"source": "testpattern?fps=8&size=160x120", **common})
            assert fifth["worker"] == fourth["worker"]
            assert http.delete(f"/streams/{fifth['id']}").status_code == 204

            # -- failover: kill the camera's worker ------------------------------------------
            doomed = camera["worker"]
            survivor = video["worker"]
            assert third["worker"] == doomed  # the doomed worker runs two streams
            third_events = EventRecorder(server, third["id"])
            recorders.append(third_events)
            third_events.wait_frames(1)
            camera_events.wait_frames(6)
            seen_before_kill = {
                camera["id"]: camera_events.detections(),
                third["id"]: third_events.detections(),
            }
            seen_video = len(video_events.received)
            video_epoch_before = epochs(video_events.detections())
            pid = cluster.workers()[doomed]["pid"]
            killed_at = time.monotonic()
            os.kill(pid, signal.SIGKILL)

            # The survivor has one free slot: the first moved stream takes it, the other waits.
            def cluster_events(kind: str) -> list[dict]:
                return [
                    s
                    for s in camera_events.statuses() + third_events.statuses()
                    if s["event_type"] == kind
                ]

            wait_until(lambda: bool(cluster_events("STREAM_FAILOVER")), 60, "a failover")
            failover_s = time.monotonic() - killed_at
            failover = cluster_events("STREAM_FAILOVER")[0]
            assert failover["payload"]["from_worker"] == doomed
            assert failover["payload"]["to_worker"] == survivor
            mover = failover["stream_id"]
            waiter = third["id"] if mover == camera["id"] else camera["id"]
            mover_events = camera_events if mover == camera["id"] else third_events
            waiter_events = third_events if mover == camera["id"] else camera_events
            wait_until(lambda: bool(cluster_events("STREAM_WAITING")), 30, "a waiting stream")
            assert cluster_events("STREAM_WAITING")[0]["stream_id"] == waiter
            # Visible while it waits (Ray needs seconds to start a fresh worker process).
            waiting_info = http.get(f"/streams/{waiter}").json()
            assert waiting_info["status"]["state"] == "WAITING", waiting_info["status"]
            assert waiting_info["worker"] is None

            # The survivor's own stream was not disturbed: same epoch, frames go on.
            video_events.wait_frames(2, after=seen_video)
            assert epochs(video_events.detections(after=seen_video)) == video_epoch_before
            assert not [s for s in video_events.statuses() if "STREAM_" in s["event_type"]]

            # Room appears (a stream deleted): the waiting stream starts there at once.
            assert http.delete(f"/streams/{video['id']}").status_code == 204
            wait_until(lambda: _worker_of(http, waiter) == survivor, 30, "the waiter placed")
            waiter_count = len(waiter_events.received)
            waiter_events.wait_frames(2, after=waiter_count)

            # The moved stream: next epoch, ids above every id it emitted before.
            old_epoch = max(epochs(seen_before_kill[mover]))
            old_ids = tracker_ids(mover_events.detections())  # also those seen after the kill
            mover_events.wait_frames(3, epoch=old_epoch + 1)
            new_ids = tracker_ids(
                [r for r in mover_events.detections() if r["epoch"] == old_epoch + 1]
            )
            old_ids -= new_ids
            assert old_ids and new_ids
            assert min(new_ids) > max(old_ids), (sorted(old_ids), sorted(new_ids))
            assert failover["payload"]["epoch"] == old_epoch + 1
            assert _worker_of(http, mover) == survivor

            # Ray brings the killed worker back (a fresh process) and it takes new streams.
            wait_until(
                lambda: (
                    cluster.workers()[doomed]["alive"] and cluster.workers()[doomed]["pid"] != pid
                ),
                120,
                "the killed worker back",
            )
            back_s = time.monotonic() - killed_at
            sixth = _create(http, {"source": "testpattern?fps=8&size=160x120", **common})
            assert sixth["worker"] == doomed

        highest_seen = {
            camera["id"]: max(tracker_ids(camera_events.detections()), default=0),
            third["id"]: max(tracker_ids(third_events.detections()), default=0),
        }
        last_epochs = {
            camera["id"]: max(epochs(camera_events.detections())),
            third["id"]: max(epochs(third_events.detections())),
        }
    finally:
        for recorder in recorders:
            recorder.close()
        server.stop()
    print(
        f"front door + 2 workers booted in {boot_s:.1f} s; failover in {failover_s:.1f} s; "
        f"killed worker back in {back_s:.1f} s; worker model loads "
        f"{[w['load_seconds'] for w in cluster.workers().values()]} s"
    )

    # -- the front door restarts: the stored streams come back on the workers ---------------
    restarted = cluster_server(tiny_model_dir, state_dir=state_dir, media_root=tmp_path)
    try:
        with restarted.client() as http:
            listed = {s["id"]: s for s in http.get("/streams").json()["streams"]}
            assert set(listed) >= {camera["id"], third["id"], sixth["id"]}
            assert all(listed[sid]["worker"] in ("worker-0", "worker-1") for sid in highest_seen)
            again = EventRecorder(restarted, camera["id"])
            try:
                again.wait_frames(2)
                records = again.detections()
                assert epochs(records) == {last_epochs[camera["id"]] + 1}
                assert min(tracker_ids(records)) > highest_seen[camera["id"]]
            finally:
                again.close()
    finally:
        restarted.stop()


def test_a_server_without_cluster_settings_never_imports_ray(tmp_path: Path):
    script = """
import sys
from pipeline.service import ModelEngine, ServiceSettings, create_app
from tests.service_helpers import ScriptedPipelines, scripted_engine
from fastapi.testclient import TestClient

pipelines = ScriptedPipelines()
app = create_app(ServiceSettings(), engine=scripted_engine(), pipeline_factory=pipelines.init)
with TestClient(app) as http:
    app.state.service.booted.wait(30)
    made = http.post("/streams", json={"source": "testpattern", "classes": ["a"]})
    assert made.status_code == 201, made.text
    assert made.json()["worker"] is None
    assert http.get(f"/streams/{made.json()['id']}").json()["status"]["worker"] is None
    assert http.delete(f"/streams/{made.json()['id']}").status_code == 204
assert "ray" not in sys.modules, "ray was imported"
print("no ray")
"""
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "no ray" in result.stdout


def test_workers_that_cannot_load_the_model_fail_the_boot_with_one_line(
    local_ray, tiny_model_dir, tmp_path
):
    engine = tiny_engine(tiny_model_dir)
    engine.worker_loader = TrackerSpec(str(tmp_path / "no-such-model"), device="cpu")
    fatal: list[str] = []
    settings = ServiceSettings(
        cluster=ClusterSettings(workers=1, gpus_per_worker=0, cpus_per_worker=1)
    )
    server = start_server(create_app(settings, engine=engine, on_fatal=fatal.append))
    try:
        wait_until(lambda: bool(fatal), 120, "the boot to fail")
        assert "Ray workers did not start" in fatal[0]
        assert "no-such-model" in fatal[0]
        assert "\n" not in fatal[0]
        with server.client() as http:
            assert http.get("/readyz").status_code == 503
    finally:
        server.stop()


def test_a_hung_worker_counts_as_dead_after_the_failover_timeout(
    local_ray, tiny_model_dir, tmp_path
):
    server = cluster_server(
        tiny_model_dir, state_dir=tmp_path / "state", media_root=tmp_path, failover_timeout_s=3
    )
    common = {"classes": ["square"], "threshold": 0.0, "max_fps": 4, "max_objects": 2}
    frozen_pid = None
    try:
        with server.client() as http:
            hung = _create(http, {"source": "testpattern?fps=8&size=160x120", **common})
            other = _create(http, {"source": "testpattern?fps=8&size=160x120", **common})
            hung_events = EventRecorder(server, hung["id"])
            other_events = EventRecorder(server, other["id"])
            try:
                hung_events.wait_frames(2)
                other_events.wait_frames(2)
                frozen_pid = server.manager.cluster.workers()[hung["worker"]]["pid"]
                frozen_at = time.monotonic()
                os.kill(frozen_pid, signal.SIGSTOP)  # alive to the OS, silent to Ray
                hung_events.wait_for(
                    lambda events: any(
                        e.kind == "status" and e.data["event_type"] == "STREAM_FAILOVER"
                        for e in events
                    ),
                    timeout=60,
                )
                took = time.monotonic() - frozen_at
                assert 3 <= took < 30, took
                assert _worker_of(http, hung["id"]) == other["worker"]
                hung_events.wait_frames(2, epoch=1)
                assert epochs(other_events.detections()) == {0}
                print(f"hung worker: its stream ran again elsewhere after {took:.1f} s")
            finally:
                hung_events.close()
                other_events.close()
    finally:
        if frozen_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(frozen_pid, signal.SIGCONT)
        server.stop()
