"""Visual prompts over HTTP: ``POST /streams/{id}/prompts`` and ``DELETE .../objects/{tracker_id}``.

The real pipeline and the tiny checkpoint behind a real server on 127.0.0.1; frames are read over
SSE as a client reads them, and every wait is on a frame record or the pipeline's end, never a
sleep. Tiny random weights give random masks, so a prompted object may be absent from a frame's
detections: what is asserted is the ids the API answers, the objects the tracker session holds,
and that the stream keeps producing frames after every refusal. The last two tests need no model:
the refusal-to-status rule, and a pipeline that ends between the manager's check and its call
(the scripted pipeline, so the moment can be chosen).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from pipeline.service import ModelEngine, ServiceSettings, create_app
from pipeline.service.models import MAX_PROMPT_SHAPES
from pipeline.service.stream_prompts import refused_prompt
from pipeline.sources.sample_clip import write_sample_clip
from tests.service_helpers import (
    RunningServer,
    ScriptedPipelines,
    SseEvent,
    collect_detections,
    iter_sse,
    scripted_app,
    start_server,
)

PATTERN = "testpattern?fps=10&size=160x120"
"""A live synthetic source: 160x120 frames that never end."""

KEY = "prompt-test-key"


@pytest.fixture
def server(tiny_tracker, tmp_path) -> Iterator[RunningServer]:
    engine = ModelEngine.from_tracker(tiny_tracker, model_name="tiny")
    settings = ServiceSettings(api_key=KEY, max_streams=2, media_root=tmp_path)
    running = start_server(create_app(settings, engine=engine), api_key=KEY)
    running.wait_booted()
    yield running
    running.stop()


def _create(http: httpx.Client, **fields: Any) -> str:
    body = {"source": PATTERN, "classes": ["square"], "threshold": 0.5, "max_objects": 4, **fields}
    created = http.post("/streams", json=body)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


@contextmanager
def _frames(http: httpx.Client, stream_id: str) -> Iterator[Iterator[SseEvent | str]]:
    """The stream's events as ``iter_sse`` reads them, once the subscription is confirmed."""
    with http.stream("GET", f"/streams/{stream_id}/events", timeout=60) as response:
        events = iter_sse(response)
        assert next(events) == "subscribed"
        yield events


def _next_frame(events: Iterator[SseEvent | str], after: int) -> dict:
    """The first frame record past ``after``: proof that the stream is still running."""
    (record,) = collect_detections(events, 1, lambda r: r["frame_id"] > after, timeout=60)
    return record


def _frame_when(
    events: Iterator[SseEvent | str], after: int, condition: Callable[[], bool], frames: int = 5
) -> dict:
    """The first frame record past ``after`` by which ``condition`` holds, within ``frames``.

    A prompt is placed on the first frame the model starts after it came, and the frame in the
    model when it came may still be reported after it: a few frames is as long as it can take.
    """
    for _ in range(frames):
        record = _next_frame(events, after)
        if condition():
            return record
        after = record["frame_id"]
    raise AssertionError(f"not true within {frames} frames after frame {after}")


def _latest_frame(http: httpx.Client, stream_id: str) -> int:
    """The last frame the model finished; the one in it then, if any, is the next one."""
    status = http.get(f"/streams/{stream_id}").json()["status"]
    return int(status["sources"][0]["last_frame_id"])


def _visual_objects(server: RunningServer, stream_id: str) -> int:
    stats = server.manager.engine.session_stats()[stream_id]
    return int(stats.visual_objects)


def _named_field(response: httpx.Response, field: str) -> str:
    """The 422 body's message for ``field`` (pydantic's shape: ``loc`` then ``msg``)."""
    detail = response.json()["detail"]
    assert isinstance(detail, list), response.text
    for item in detail:
        if field in [str(part) for part in item["loc"]]:
            return str(item["msg"])
    raise AssertionError(f"{field} not named in {response.text}")


def test_prompts_make_new_ids_refinement_keeps_the_id_and_delete_ends_the_object(server):
    with server.client() as http:
        stream_id = _create(http)
        with _frames(http, stream_id) as events:
            first = _next_frame(events, -1)
            assert (first["width"], first["height"]) == (160, 120)

            boxed = http.post(f"/streams/{stream_id}/prompts", json={"boxes": [[20, 20, 90, 80]]})
            assert boxed.status_code == 201, boxed.text
            (box_id,) = boxed.json()["tracker_ids"]
            assert boxed.json()["frame_id"] >= first["frame_id"]  # the latest frame when it came

            clicked = http.post(
                f"/streams/{stream_id}/prompts",
                json={"points": [[120, 40], [130, 90]], "labels": [1, 0], "class_name": "cup"},
            )
            assert clicked.status_code == 201, clicked.text
            (point_id,) = clicked.json()["tracker_ids"]
            assert point_id > box_id

            placed = _frame_when(
                events, clicked.json()["frame_id"], lambda: _visual_objects(server, stream_id) == 2
            )
            metrics = http.get("/metrics").text
            assert f'sam3_stream_prompted_objects{{stream="{stream_id}"}} 2.0' in metrics
            refined = http.post(
                f"/streams/{stream_id}/prompts",
                json={"tracker_id": box_id, "points": [[40, 40]], "labels": [0]},
            )
            assert refined.status_code == 200, refined.text
            assert refined.json()["tracker_ids"] == [box_id]
            assert refined.json()["frame_id"] >= placed["frame_id"]

            later = collect_detections(events, 3, lambda r: r["frame_id"] > placed["frame_id"])
            for obj in (o for record in later for o in record["objects"]):
                # A visual object is reported under the id it was given; a class track never is.
                if obj["class_name"] in ("foreground", "cup"):
                    assert obj["tracker_id"] in (box_id, point_id), obj
                else:
                    assert obj["tracker_id"] not in (box_id, point_id), obj
            assert _visual_objects(server, stream_id) == 2

            assert http.delete(f"/streams/{stream_id}/objects/{box_id}").status_code == 204
            assert _visual_objects(server, stream_id) == 1
            gone = http.delete(f"/streams/{stream_id}/objects/{box_id}")
            assert gone.status_code == 404 and "tracker_id" in gone.json()["detail"]
            stale = http.post(
                f"/streams/{stream_id}/prompts",
                json={"tracker_id": box_id, "points": [[40, 40]], "labels": [1]},
            )
            assert stale.status_code == 422
            assert str(box_id) in _named_field(stale, "tracker_id")
            # Frames the model started after the DELETE answered never carry the id again.
            removed_before = _latest_frame(http, stream_id) + 1
            after = collect_detections(events, 3, lambda r: r["frame_id"] > removed_before)
            assert box_id not in {o["tracker_id"] for r in after for o in r["objects"]}


def _bad_prompts(latest: int) -> list[tuple[dict[str, Any], str]]:
    """(body, the field its 422 names) for a 160x120 stream whose latest frame is ``latest``."""
    return [
        ({}, "boxes"),
        ({"boxes": [[10, 10, 10, 50]]}, "boxes"),  # zero area
        ({"boxes": [[0, 0, 161, 50]]}, "boxes"),  # outside the frame
        ({"boxes": [[-5, 0, 20, 20]]}, "boxes"),
        ({"boxes": [[1, 2, 3]]}, "boxes"),
        ({"boxes": [[1, 2, "three", 4]]}, "boxes"),
        ({"boxes": [[10, 10, 20, 20]] * (MAX_PROMPT_SHAPES + 1)}, "boxes"),
        ({"points": [[10, 10]]}, "labels"),  # points without labels
        ({"points": [[10, 10]], "labels": [2]}, "labels"),
        ({"points": [[10, 10]], "labels": [True]}, "labels"),
        ({"points": [[10, 10], [20, 20]], "labels": [1]}, "labels"),
        ({"points": [[170, 10]], "labels": [1]}, "points"),
        ({"points": [[10, 10]], "labels": [1], "boxes": [[0, 0, 5, 5], [5, 5, 9, 9]]}, "points"),
        ({"tracker_id": 987_654, "points": [[10, 10]], "labels": [1]}, "tracker_id"),
        ({"tracker_id": -1, "boxes": [[0, 0, 5, 5]]}, "tracker_id"),
        ({"tracker_id": "one", "boxes": [[0, 0, 5, 5]]}, "tracker_id"),
        ({"frame_id": latest + 1000, "boxes": [[0, 0, 5, 5]]}, "frame_id"),
        ({"frame_id": -3, "boxes": [[0, 0, 5, 5]]}, "frame_id"),
        ({"source_id": 1, "boxes": [[0, 0, 5, 5]]}, "source_id"),
        ({"class_name": "", "boxes": [[0, 0, 5, 5]]}, "class_name"),
        ({"class_name": "a\nb", "boxes": [[0, 0, 5, 5]]}, "class_name"),
        ({"boxes": [[0, 0, 5, 5]], "colour": "red"}, "colour"),
    ]


def test_every_bad_prompt_is_a_422_naming_the_field_and_the_stream_keeps_running(server):
    with server.client() as http:
        stream_id = _create(http)
        with _frames(http, stream_id) as events:
            latest = _next_frame(events, -1)["frame_id"]
            for body, field in _bad_prompts(latest):
                refused = http.post(f"/streams/{stream_id}/prompts", json=body)
                assert refused.status_code == 422, (body, refused.text)
                _named_field(refused, field)
                latest = _next_frame(events, latest)["frame_id"]
            not_json = http.post(
                f"/streams/{stream_id}/prompts",
                content=b'{"boxes": [[1, 2, NaN, 4]]}',
                headers={"Content-Type": "application/json"},
            )
            assert not_json.status_code == 422
            bad_path = http.delete(f"/streams/{stream_id}/objects/not-a-number")
            assert bad_path.status_code == 422
            _named_field(bad_path, "tracker_id")
            unknown = http.delete(f"/streams/{stream_id}/objects/424242")
            assert unknown.status_code == 404 and "424242" in unknown.json()["detail"]
            latest = _next_frame(events, latest)["frame_id"]

            # Older than the session can still place (its memory window): refused by name.
            old_enough = _next_frame(events, latest + 20)["frame_id"]
            stale = http.post(
                f"/streams/{stream_id}/prompts", json={"frame_id": 0, "boxes": [[0, 0, 5, 5]]}
            )
            assert stale.status_code == 422, stale.text
            _named_field(stale, "frame_id")
            _next_frame(events, old_enough)
        assert _visual_objects(server, stream_id) == 0
        missing = http.post("/streams/nope/prompts", json={"boxes": [[0, 0, 5, 5]]})
        assert missing.status_code == 404 and "nope" in missing.json()["detail"]
        assert http.delete("/streams/nope/objects/1").status_code == 404


def test_prompts_need_the_key_and_the_service_own_origin(server):
    with server.client() as http:
        stream_id = _create(http)
    url = f"{server.url}/streams/{stream_id}/prompts"
    assert httpx.post(url, json={"boxes": [[0, 0, 5, 5]]}).status_code == 401
    cross_site = httpx.post(
        url,
        json={"boxes": [[0, 0, 5, 5]]},
        headers={**server.headers, "Origin": "http://attacker.example"},
    )
    assert cross_site.status_code == 403
    assert httpx.delete(f"{server.url}/streams/{stream_id}/objects/1").status_code == 401


def test_a_full_object_budget_is_409_naming_max_objects(server):
    with server.client() as http:
        stream_id = _create(http, max_objects=2, threshold=1.0)
        two = http.post(
            f"/streams/{stream_id}/prompts", json={"boxes": [[0, 0, 40, 40], [50, 50, 90, 90]]}
        )
        assert two.status_code == 201, two.text
        full = http.post(f"/streams/{stream_id}/prompts", json={"boxes": [[0, 0, 30, 30]]})
        assert full.status_code == 409, full.text
        assert "max_objects" in full.json()["detail"]
        freed = two.json()["tracker_ids"][0]
        assert http.delete(f"/streams/{stream_id}/objects/{freed}").status_code == 204
        again = http.post(f"/streams/{stream_id}/prompts", json={"boxes": [[0, 0, 30, 30]]})
        assert again.status_code == 201, again.text


def test_a_paused_stream_takes_prompts_and_an_ended_one_answers_409(server, tmp_path):
    clip = write_sample_clip(tmp_path / "clip.mp4", frames=8, fps=15, width=160, height=120)
    with server.client() as http:
        paused_id = _create(http)
        assert http.post(f"/streams/{paused_id}/pause").status_code == 200
        waiting = http.post(f"/streams/{paused_id}/prompts", json={"boxes": [[0, 0, 40, 40]]})
        assert waiting.status_code == 201, waiting.text
        http.delete(f"/streams/{paused_id}")

        ended_id = _create(http, source=clip.name)
        assert server.manager.get(ended_id).pipeline.join(120), "the clip did not end"
        refused = http.post(f"/streams/{ended_id}/prompts", json={"boxes": [[0, 0, 40, 40]]})
        assert refused.status_code == 409, refused.text
        assert "ENDED" in refused.json()["detail"]
        removed = http.delete(f"/streams/{ended_id}/objects/1")
        assert removed.status_code == 409 and "not running" in removed.json()["detail"]


@pytest.mark.parametrize(
    ("message", "status", "field"),
    [
        ("boxes[3]: (0, 0, 500, 5) is outside the 160x120 frame", 422, "boxes"),
        ("tracker_id: 7 is not a prompted object", 422, "tracker_id"),
        ("frame_id: 2 is older than the session can place", 422, "frame_id"),
        ("max_objects: the budget of 2 is full of prompted objects", 409, None),
        ("something the tracker did not name", 422, None),
    ],
)
def test_a_tracker_refusal_becomes_the_status_that_names_its_field(message, status, field):
    error = refused_prompt(ValueError(message))
    assert error.status_code == status
    assert getattr(error, "field", None) == field
    assert message in str(error)


def test_a_stream_stopped_between_the_check_and_the_call_answers_409(monkeypatch):
    """The pipeline's own refusal (``state: ...``) when it ends after the manager looked."""
    pipelines = ScriptedPipelines()
    with TestClient(scripted_app(pipelines)) as client:
        created = client.post("/streams", json={"source": "testpattern", "classes": ["a"]})
        stream_id = created.json()["id"]
        pipeline = pipelines.made[-1]
        pipeline.emit(2)
        made = client.post(f"/streams/{stream_id}/prompts", json={"boxes": [[1, 1, 20, 20]]})
        assert made.status_code == 201 and made.json() == {"tracker_ids": [2], "frame_id": 1}
        running = pipeline.status()
        monkeypatch.setattr(pipeline, "status", lambda: running)  # what the manager read
        pipeline.terminate()
        for answer in (
            client.post(f"/streams/{stream_id}/prompts", json={"boxes": [[1, 1, 20, 20]]}),
            client.delete(f"/streams/{stream_id}/objects/2"),
        ):
            assert answer.status_code == 409, answer.text
            assert "not running" in answer.json()["detail"]
