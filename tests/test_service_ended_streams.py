"""A finished stream stays finished across a restart; ids and epochs never repeat across restarts.

Issue 12 item 5: a file stream that had ENDED ran again from the start after a server restart,
writing duplicate ``(video_identifier, epoch, frame_id)`` records with tracker ids from 1 and
overwriting its video. Here: the store's new tables (and the upgrade from the last release's
file), the id history surviving a kill, and the real app on the tiny checkpoint restarted on the
same state directory (a new app per "server start", as ``serve`` builds one).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import supervision as sv
from fastapi.testclient import TestClient

from pipeline.errors import ConfigError
from pipeline.service import ModelEngine, ServiceSettings, create_app
from pipeline.service.models import StreamSpec
from pipeline.service.run_history import RunHistory, sinks_for_run
from pipeline.service.state import ServiceState
from pipeline.service.store import SCHEMA_VERSION, StoredStream, StreamStore
from pipeline.sources import make_source
from pipeline.sources.sample_clip import write_sample_clip
from tests.scripted_tracker import ScriptedTracker
from tests.service_helpers import ScriptedPipelines, scripted_app
from tests.waiting import wait_until
from tracker import Sam3VideoTracker, SessionRegistry

# ---- the store -------------------------------------------------------------------------------

RELEASE_1_SCHEMA = (
    "CREATE TABLE streams ("
    " id TEXT PRIMARY KEY,"
    " spec TEXT NOT NULL,"
    " paused INTEGER NOT NULL DEFAULT 0,"
    " created_at TEXT NOT NULL)"
)


def test_state_dir_of_the_last_release_loads_and_gains_the_new_tables(tmp_path):
    path = tmp_path / "streams.sqlite3"
    with sqlite3.connect(path) as old:
        old.execute(RELEASE_1_SCHEMA)
        old.execute(
            "INSERT INTO streams VALUES (?, ?, 1, '2025-06-01T12:00:00+00:00')",
            ("cam1", json.dumps({"source": "rtsp://u:pw@cam/1", "classes": ["person"]})),
        )
        old.execute("PRAGMA user_version = 1")
    old.close()

    store = StreamStore(tmp_path)
    (row,) = store.load()
    assert (row.id, row.paused, row.spec.source, row.ended) == (
        "cam1",
        True,
        "rtsp://u:pw@cam/1",
        False,
    )
    assert store.history("cam1").next_epoch == 0  # no history was kept before
    store.mark_ended("cam1", {"state": "ENDED"})
    store.record_tracker_ids("cam1", 7)
    store.close()

    reopened = StreamStore(tmp_path)
    (row,) = reopened.load()
    assert row.final_status == {"state": "ENDED"} and row.ended_at is not None
    assert reopened.history("cam1").tracker_id_ceiling == 7
    version = reopened._connection.execute("PRAGMA user_version").fetchone()[0]
    assert version == SCHEMA_VERSION == 2


def test_identifier_history_only_rises_except_when_a_clean_stop_settles_it(tmp_path):
    store = StreamStore(tmp_path)
    store.record_tracker_ids("cam", 64)
    store.record_tracker_ids("cam", 10)  # a late, lower reservation never lowers the ceiling
    store.record_epoch("cam", 3)
    store.record_epoch("cam", 1)
    assert (store.history("cam").tracker_id_ceiling, store.history("cam").next_epoch) == (64, 4)
    store.settle_tracker_ids("cam", 41)  # clean stop: exactly 41 ids were used
    assert store.history("cam").tracker_id_ceiling == 41


def test_deleting_a_stream_forgets_its_ending_but_not_its_identifier(tmp_path):
    store = StreamStore(tmp_path)
    store.put(StoredStream.new("a", StreamSpec(source="testpattern", classes=["x"])))
    store.mark_ended("a", {"state": "ENDED"})
    store.record_tracker_ids("a", 9)
    store.delete("a")
    store.put(StoredStream.new("a", StreamSpec(source="testpattern", classes=["x"])))
    again = store.get("a")
    assert again is not None and not again.ended
    assert store.history("a").tracker_id_ceiling == 9  # ids stay unique per identifier forever
    store.mark_ended("gone", {"state": "ENDED"})  # no such stream: nothing recorded
    assert store.get("gone") is None


def test_ids_continue_above_every_id_emitted_even_after_a_kill(tmp_path):
    """No clean stop (the server was SIGKILLed): the reserved ceiling still covers every id."""
    tracker = ScriptedTracker(lambda n: [f"person:{n}"])
    registry = SessionRegistry(tracker, confirm_frames=1)
    history = RunHistory(StreamStore(tmp_path))
    history.begin_run(registry, "cam", first_epoch=0)
    emitted = []
    for frame_id in range(1, 80):
        detections = registry.process(
            _frame(), video_identifier="cam", frame_id=frame_id, class_names="person", threshold=0
        )
        emitted += [int(i) for i in _tracker_ids(detections)]
    assert max(emitted) > 64  # past one reservation block
    # ... killed here: no end_run. The next process opens the same store.
    next_registry = SessionRegistry(tracker, confirm_frames=1)
    next_history = RunHistory(StreamStore(tmp_path))
    assert next_history.of("cam").next_epoch == 1
    next_history.begin_run(next_registry, "cam", first_epoch=1)
    detections = next_registry.process(
        _frame(), video_identifier="cam", frame_id=1, class_names="person", threshold=0, epoch=1
    )
    assert min(_tracker_ids(detections)) > max(emitted)


def test_a_rerun_appends_jsonl_and_writes_its_video_under_a_new_name():
    specs = ["jsonl:run.jsonl", "video:out/run.mp4", "video:noext", "webhook:https://h/x.mp4"]
    assert sinks_for_run(specs, first_epoch=0) == specs
    assert sinks_for_run(specs, first_epoch=2) == [
        "jsonl:run.jsonl",
        "video:out/run.2.mp4",
        "video:noext.2",
        "webhook:https://h/x.mp4",
    ]


def test_first_epoch_source_option_is_where_a_rerun_starts_counting():
    assert make_source("testpattern", first_epoch=3).epoch == 3
    assert make_source("testpattern").epoch == 0
    with pytest.raises(ConfigError, match="first_epoch"):
        make_source("testpattern", first_epoch=-1)


def _frame() -> np.ndarray:
    return np.zeros((48, 64, 3), np.uint8)


def _tracker_ids(detections: sv.Detections) -> np.ndarray:
    assert detections.tracker_id is not None
    return detections.tracker_id


# ---- the real app on the tiny checkpoint --------------------------------------------------


@contextmanager
def _server(
    tiny_tracker: Sam3VideoTracker, state_dir: Path, media_root: Path
) -> Iterator[tuple[TestClient, ServiceState]]:
    """One server start on ``state_dir``: a new app, a new registry, the boot streams started.

    Leaving the block shuts it down as ``serve`` does on SIGTERM.
    """
    engine = ModelEngine.from_tracker(tiny_tracker, model_name="tiny", max_objects=3)
    settings = ServiceSettings(state_dir=state_dir, media_root=media_root, max_streams=2)
    app = create_app(settings, engine=engine)
    with TestClient(app) as client:
        service: ServiceState = app.state.service
        assert service.booted.wait(60), "the service did not finish booting"
        yield client, service


def _records(path: Path) -> list[dict]:
    """The complete lines written so far (a line being written is not one yet)."""
    text = path.read_text() if path.exists() else ""
    return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]


def _ids(records: list[dict]) -> list[int]:
    return [obj["tracker_id"] for record in records for obj in record["objects"]]


def _keys(records: list[dict]) -> list[tuple[str, int, int]]:
    return [(r["video_identifier"], r["epoch"], r["frame_id"]) for r in records]


def _wait_ended(service: ServiceState, stream_id: str) -> None:
    store = service.store
    assert store is not None

    def ended() -> bool:
        row = store.get(stream_id)
        return row is not None and row.ended

    wait_until(ended, timeout=180, what=f"stream {stream_id} recorded as ended")


def test_finished_file_stream_is_listed_ended_after_restart_and_reruns_only_on_request(
    tiny_tracker, tmp_path
):
    media = tmp_path / "media"
    write_sample_clip(media / "clip.mp4", frames=24, fps=15, width=160, height=120)
    state_dir = tmp_path / "state"
    outputs = state_dir / "outputs"
    body = {
        "source": "clip.mp4",
        "classes": ["square"],
        "threshold": 0.0,
        "sinks": ["jsonl:run.jsonl", "video:run.mp4"],
    }

    with _server(tiny_tracker, state_dir, media) as (http, service):
        created = http.post("/streams", json=body)
        assert created.status_code == 201, created.text
        stream_id = created.json()["id"]
        _wait_ended(service, stream_id)
        assert http.get(f"/streams/{stream_id}").json()["status"]["state"] == "ENDED"
    first_run = _records(outputs / "run.jsonl")
    first_bytes = (outputs / "run.jsonl").read_bytes()
    first_video = (outputs / "run.mp4").read_bytes()
    assert len(first_run) == 24 and {r["epoch"] for r in first_run} == {0}
    highest_before = max(_ids(first_run))

    with _server(tiny_tracker, state_dir, media) as (http, service):
        assert service.manager.streams() == []  # nothing runs
        (listed,) = http.get("/streams").json()["streams"]
        assert (listed["id"], listed["status"]["state"]) == (stream_id, "ENDED")
        assert listed["status"]["frames_processed"] == 24
        assert http.get(f"/streams/{stream_id}").json()["status"]["state"] == "ENDED"
        assert "ENDED" in http.get("/").text
        assert http.post(f"/streams/{stream_id}/pause").status_code == 409
        assert (outputs / "run.jsonl").read_bytes() == first_bytes  # not run again

        restarted = http.post(f"/streams/{stream_id}/restart")
        assert restarted.status_code == 200, restarted.text
        assert restarted.json()["status"]["state"] in ("CREATED", "RUNNING", "ENDED")
        _wait_ended(service, stream_id)

    every_run = _records(outputs / "run.jsonl")
    second_run = every_run[len(first_run) :]
    assert (outputs / "run.jsonl").read_bytes().startswith(first_bytes)  # appended
    assert len(second_run) == 24 and {r["epoch"] for r in second_run} == {1}
    assert len(set(_keys(every_run))) == len(every_run)  # no (identifier, epoch, frame) twice
    assert _ids(second_run) and min(_ids(second_run)) > highest_before
    assert (outputs / "run.mp4").read_bytes() == first_video  # the first video is kept
    assert (outputs / "run.1.mp4").stat().st_size > 0


def test_live_stream_stored_while_running_restarts_at_boot_with_new_epoch_and_ids(
    tiny_tracker, tmp_path
):
    state_dir = tmp_path / "state"
    jsonl = state_dir / "outputs" / "live.jsonl"
    body = {
        "source": "testpattern?fps=10&size=160x120",
        "classes": ["disc"],
        "threshold": 0.0,
        "sinks": ["jsonl:live.jsonl"],
    }

    with _server(tiny_tracker, state_dir, tmp_path) as (http, service):
        stream_id = http.post("/streams", json=body).json()["id"]
        wait_until(
            lambda: bool(_ids(_records(jsonl))), timeout=180, what="a tracked object written"
        )
    # A clean stop stores the exact highest id (a result still queued may never be written).
    highest_before = StreamStore(state_dir).history(stream_id).tracker_id_ceiling
    first_run = _records(jsonl)
    assert 0 < max(_ids(first_run)) <= highest_before

    def second_run() -> list[dict]:
        return _records(jsonl)[len(first_run) :]

    with _server(tiny_tracker, state_dir, tmp_path) as (http, service):
        assert service.manager.streams()  # restarted at boot
        wait_until(
            lambda: bool(_ids(second_run())), timeout=180, what="an object of the second run"
        )
        assert http.get(f"/streams/{stream_id}").json()["status"]["sources"][0]["epoch"] >= 1
    assert min(r["epoch"] for r in second_run()) > max(r["epoch"] for r in first_run)
    assert min(_ids(second_run())) > highest_before


# ---- restart and delete through the HTTP layer (scripted pipelines) ------------------------


def test_restart_stops_a_running_stream_and_runs_it_again_as_the_next_epoch(tmp_path):
    pipelines = ScriptedPipelines()
    with TestClient(scripted_app(pipelines, state_dir=tmp_path)) as http:
        stream_id = http.post("/streams", json={"source": "testpattern", "classes": ["x"]}).json()[
            "id"
        ]
        restarted = http.post(f"/streams/{stream_id}/restart")
        assert restarted.status_code == 200, restarted.text
        first, second = pipelines.made
        assert first.terminated.is_set() and not second.terminated.is_set()
        assert http.get(f"/streams/{stream_id}").json()["id"] == stream_id
        assert http.post("/streams/nope/restart").status_code == 404
    assert StreamStore(tmp_path).history(stream_id).next_epoch == 2  # runs had epochs 0 and 1


def test_an_ended_stream_keeps_its_id_and_identifier_until_deleted(tmp_path):
    with TestClient(scripted_app(state_dir=tmp_path)) as http:
        body = {"source": "testpattern", "classes": ["x"], "video_identifier": "dock"}
        stream_id = http.post("/streams", json=body).json()["id"]
    StreamStore(tmp_path).mark_ended(stream_id, {"state": "ENDED", "frames_processed": 5})

    with TestClient(scripted_app(state_dir=tmp_path)) as http:
        info = http.get(f"/streams/{stream_id}").json()
        assert (info["status"]["state"], info["status"]["frames_processed"]) == ("ENDED", 5)
        assert http.get(f"/streams/{stream_id}/events").status_code == 409
        assert http.post("/streams", json=body).status_code == 409  # "dock" is still its
        assert http.delete(f"/streams/{stream_id}").status_code == 204
        assert http.get(f"/streams/{stream_id}").status_code == 404
        assert http.post("/streams", json=body).status_code == 201
    # The new stream on "dock" continued the identifier: it ran as epoch 1, not 0 again.
    assert StreamStore(tmp_path).history("dock").next_epoch == 2
