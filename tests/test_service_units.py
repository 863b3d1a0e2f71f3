"""The service's plain objects on their own: store, config, auth, event buffers, payloads, ICE."""

from __future__ import annotations

import asyncio
import os
import stat
import textwrap

import numpy as np
import pytest
import supervision as sv
from pydantic import ValidationError

from pipeline.config.serve_config import load_serve_config
from pipeline.errors import ConfigError
from pipeline.service import ModelEngine
from pipeline.service.auth import key_matches, supplied_key
from pipeline.service.metrics import ServiceMetrics, SessionSnapshot, StreamSnapshot
from pipeline.service.models import StreamPatch, StreamSpec
from pipeline.service.payloads import jsonable
from pipeline.service.sse import EventHub
from pipeline.service.store import StoredStream, StreamStore
from pipeline.service.webrtc import keep_loopback_candidates
from tests.service_helpers import ScriptedPipeline
from tracker.session_rules import SessionRules


def _spec(**fields):
    return StreamSpec(**{"source": "testpattern", "classes": ["person"], **fields})


def test_store_round_trips_streams_and_survives_reopening(tmp_path):
    store = StreamStore(tmp_path / "state")
    store.put(StoredStream.new("a", _spec(threshold=0.3)))
    store.put(StoredStream.new("b", _spec(source="rtsp://u:secret@cam/1")))
    store.update("a", paused=True, spec=_spec(classes=["forklift"]))
    store.delete("b")
    store.close()

    reopened = StreamStore(tmp_path / "state")
    (row,) = reopened.load()
    assert (row.id, row.paused, row.spec.classes) == ("a", True, ["forklift"])


def test_store_file_is_private_because_it_holds_camera_passwords(tmp_path):
    store = StreamStore(tmp_path / "state")
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(store.state_dir).st_mode) == 0o700


def test_store_skips_a_row_that_no_longer_validates(tmp_path):
    store = StreamStore(tmp_path)
    store.put(StoredStream.new("good", _spec()))
    with store._connection:
        store._connection.execute(
            "INSERT INTO streams VALUES ('bad', '{\"source\": \"x\"}', 0, '2025-01-01T00:00:00')"
        )
    assert [row.id for row in store.load()] == ["good"]


def test_config_file_streams_validate(tmp_path):
    path = tmp_path / "serve.yaml"
    path.write_text(
        textwrap.dedent(
            """
            streams:
              - id: dock
                source: rtsp://viewer:secret@10.0.0.7/stream1
                classes: person, forklift
                threshold: 0.4
            """
        )
    )
    (stream,) = load_serve_config(path).streams
    assert (stream.id, stream.classes, stream.threshold) == ("dock", ["person", "forklift"], 0.4)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("streams:\n  - {id: a, source: x, classes: [p], threshold: 2}\n", "streams.0.threshold"),
        ("streams:\n  - {id: a, source: x, classes: [p], treshold: 0.2}\n", "streams.0.treshold"),
        ("streams:\n  - {id: 'a b', source: x, classes: [p]}\n", "streams.0.id"),
        ("streams:\n  - {id: a, source: x, classes: ['  ']}\n", "streams.0.classes"),
        (
            "streams:\n  - {id: a, source: x, classes: [p]}\n"
            "  - {id: a, source: y, classes: [p]}\n",
            "appears twice",
        ),
        ("streams: [\n", "not valid YAML"),
    ],
)
def test_bad_config_field_is_one_error_naming_it(tmp_path, text, message):
    path = tmp_path / "serve.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_serve_config(path)


def test_config_error_never_quotes_the_camera_password(tmp_path):
    path = tmp_path / "serve.yaml"
    path.write_text("streams:\n  - {id: a, source: 'rtsp://u:hunter2@cam/1', classes: 3}\n")
    with pytest.raises(ConfigError) as caught:
        load_serve_config(path)
    assert "hunter2" not in str(caught.value)


def test_classes_are_normalised_and_patch_needs_a_change():
    assert _spec(classes=" person, ,forklift,person").classes == ["person", "forklift"]
    with pytest.raises(ValueError, match="classes"):
        _spec(classes=[" ", ""])
    with pytest.raises(ValueError, match="give classes, threshold or both"):
        StreamPatch()


@pytest.mark.parametrize(
    ("headers", "query", "expected"),
    [
        ([(b"authorization", b"Bearer k1")], b"", "k1"),
        ([(b"Authorization", b"bearer  k2 ")], b"api_key=other", "k2"),
        ([], b"x=1&api_key=k3", "k3"),
        ([(b"authorization", b"Basic abc")], b"", None),
        ([], b"api_key=", None),
    ],
)
def test_key_comes_from_bearer_header_or_api_key_query(headers, query, expected):
    assert supplied_key(headers, query) == expected


def test_key_comparison_rejects_missing_and_wrong_keys():
    assert key_matches("s3cret", "s3cret")
    assert not key_matches("s3cre", "s3cret")
    assert not key_matches(None, "s3cret")


def _publish(hub: EventHub, count: int) -> None:
    pipeline = ScriptedPipeline(
        "testpattern",
        ["person"],
        hub.publish_frame,
        threshold=0.5,
        video_identifier="cam",
        status_update_handlers=[],
    )
    pipeline.emit(count)


def test_slow_event_client_loses_oldest_events_and_others_are_unaffected():
    async def scenario():
        hub = EventHub(max_events=4)
        loop = asyncio.get_running_loop()
        slow = hub.subscribe("none", loop)
        masks = hub.subscribe("rle", loop)
        _publish(hub, 10)
        received = []
        while (event := await slow.get(timeout=0.01)) is not None:
            received.append(event)
        first_with_masks = await masks.get(timeout=0.01)
        return hub, slow, received, first_with_masks

    hub, slow, received, first_with_masks = asyncio.run(scenario())
    assert [sequence for sequence, _, _ in received] == [7, 8, 9, 10]
    assert slow.dropped == 6
    assert hub.dropped == 12  # both clients were slow here
    assert '"mask":null' in received[0][2]
    assert '"counts"' in first_with_masks[2]


def test_closing_a_hub_ends_its_clients():
    async def scenario():
        hub = EventHub()
        subscription = hub.subscribe("none", asyncio.get_running_loop())
        hub.close()
        late = hub.subscribe("none", asyncio.get_running_loop())
        return await subscription.get(timeout=5), subscription.closed, late.closed

    assert asyncio.run(scenario()) == (None, True, True)


def test_jsonable_redacts_and_makes_status_json_safe():
    assert jsonable(
        {"reference": "rtsp://admin:pw@cam/1", "fps": np.float32("inf"), "n": np.int64(2)}
    ) == {"reference": "rtsp://admin:***@cam/1", "fps": None, "n": 2}


def test_metrics_export_stream_counters_latency_and_sessions():
    metrics = ServiceMetrics()
    pipeline = ScriptedPipeline(
        "testpattern",
        ["person"],
        lambda *_: None,
        threshold=0.5,
        video_identifier="cam",
        status_update_handlers=[],
    )
    source = pipeline.status().sources[0]
    metrics.bind(
        lambda: [StreamSnapshot("s1", [source], sse_clients=2)],
        lambda: (1, {"cam": 1234}),
    )
    text = metrics.render().decode()
    assert 'sam3_stream_frames_processed_total{stream="s1"} 0.0' in text
    assert 'sam3_stream_latency_seconds{quantile="0.5",stage="inference",stream="s1"} 0.012' in text
    assert 'sam3_stream_sse_clients{stream="s1"} 2.0' in text
    assert 'sam3_stream_session_bytes_held{video_identifier="cam"} 1234.0' in text
    assert "sam3_stream_sessions_live 1.0" in text


def test_loopback_filter_keeps_only_loopback_candidates():
    sdp = (
        "v=0\r\n"
        "a=candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host\r\n"
        "a=candidate:2 1 udp 2122260223 192.168.1.5 50001 typ host\r\n"
        "a=candidate:3 1 udp 2122260223 4f2c.local 50002 typ host\r\n"
        "a=end-of-candidates\r\n"
    )
    kept = keep_loopback_candidates(sdp)
    assert "127.0.0.1" in kept
    assert "192.168.1.5" not in kept and ".local" not in kept
    assert "a=end-of-candidates" in kept


def test_annotated_frames_are_even_sized_for_the_encoder():
    from pipeline.service.webrtc import viewer_image

    image = viewer_image(np.zeros((121, 161, 3), np.uint8), sv.Detections.empty())
    assert image.shape == (120, 160, 3)


def test_metrics_export_tracks_live_tentative_and_evicted_per_stream():
    metrics = ServiceMetrics()
    session = SessionSnapshot(
        objects_live=2,
        tentative_tracks=1,
        evictions={"lost": 1, "unmatched": 3, "duplicate": 0, "budget": 2},
    )
    metrics.bind(lambda: [StreamSnapshot("s1", [], session=session)], lambda: (1, {}))
    text = metrics.render().decode()
    assert 'sam3_stream_objects_live{stream="s1"} 2.0' in text
    assert 'sam3_stream_tentative_tracks{stream="s1"} 1.0' in text
    assert 'sam3_stream_objects_evicted_total{reason="unmatched",stream="s1"} 3.0' in text
    assert 'sam3_stream_objects_evicted_total{reason="duplicate",stream="s1"} 0.0' in text
    before_first_frame = ServiceMetrics()
    before_first_frame.bind(lambda: [StreamSnapshot("s2", [])], lambda: (0, {}))
    assert 'sam3_stream_objects_live{stream="s2"}' not in before_first_frame.render().decode()


def test_a_streams_max_objects_is_at_least_one():
    spec = StreamSpec(source="testpattern", classes=["p"], max_objects=4)
    assert spec.max_objects == 4
    assert StreamSpec(source="testpattern", classes=["p"]).max_objects is None
    for bad in (0, -1, "many"):
        with pytest.raises(ValidationError) as caught:
            StreamSpec(source="testpattern", classes=["p"], max_objects=bad)
        assert caught.value.errors()[0]["loc"] == ("max_objects",)


def test_the_servers_budget_is_the_registrys_default():
    assert ModelEngine.from_tracker(object(), max_objects=5).registry.rules.max_objects == 5
    default = ModelEngine.from_tracker(object()).registry.rules.max_objects
    assert default == SessionRules.max_objects
