"""WebhookSink against a real HTTP server on loopback: delivery, batching, outages, drops."""

from __future__ import annotations

import socket
import threading

import numpy as np
import pytest

import sinks
from sinks.compact import CompactDetections
from tests.sinks_helpers import RecordingServer, make_detections, make_frame

GUARD_S = 10.0


@pytest.fixture
def server() -> RecordingServer:
    recording = RecordingServer().start()
    yield recording
    recording.stop()


def free_port() -> int:
    """A loopback port with nothing listening on it (connections are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_each_frame_is_posted_as_its_record(server: RecordingServer) -> None:
    sink = sinks.WebhookSink(server.url, headers={"Authorization": "Bearer t0ken"})
    for frame_id in range(3):
        sink.on_prediction({"predictions": make_detections()}, make_frame(frame_id))

    assert sink.flush(GUARD_S)
    sink.close()

    assert [body["frame_id"] for body in server.bodies] == [0, 1, 2]
    assert server.bodies[0]["objects"][0]["mask"]["size"] == [120, 160]
    assert server.headers[0]["Authorization"] == "Bearer t0ken"
    assert server.headers[0]["Content-Type"] == "application/json"
    assert sink.stats.frames_written == 3 and sink.stats.dropped == 0


def test_batches_are_json_arrays_and_close_sends_the_partial_one(server: RecordingServer) -> None:
    sink = sinks.WebhookSink(server.url, batch_frames=4, mask_format="none")
    for frame_id in range(10):
        sink.on_prediction(make_detections(), make_frame(frame_id))

    sink.close()

    assert [[record["frame_id"] for record in body] for body in server.bodies] == [
        [0, 1, 2, 3],
        [4, 5, 6, 7],
        [8, 9],
    ]
    assert server.bodies[0][0]["objects"][0]["mask"] is None


def test_server_down_then_up_retries_then_delivers_and_counts_drops() -> None:
    port = free_port()
    given_up: list[BaseException] = []
    sink = sinks.WebhookSink(
        f"http://127.0.0.1:{port}/hook",
        max_queue=4,
        max_retries=1000,
        backoff_s=0.01,
        max_backoff_s=0.05,
        timeout_s=2,
    )
    sink.add_error_listener(lambda _, error: given_up.append(error))
    sink.on_prediction(make_detections(), make_frame(0, from_file=False))
    assert sink.stats.wait_for(lambda c: c.retries >= 2, GUARD_S), "the worker retries while down"

    for frame_id in range(1, 20):  # the endpoint is down: the queue keeps only the newest 4
        sink.on_prediction(make_detections(), make_frame(frame_id, from_file=False))
    server = RecordingServer(port=port).start()
    try:
        assert sink.flush(GUARD_S)
    finally:
        sink.close()
        server.stop()

    delivered = [body["frame_id"] for body in server.bodies]
    assert delivered == [0, 16, 17, 18, 19], "the retried frame, then the newest ones"
    counters = sink.stats.snapshot()
    assert counters.dropped == 15 and counters.frames_written == 5
    assert counters.retries >= 2 and given_up == []


def test_a_batch_that_exhausts_its_retries_is_dropped_and_reported() -> None:
    given_up: list[BaseException] = []
    sink = sinks.WebhookSink(
        f"http://127.0.0.1:{free_port()}/hook", max_retries=2, backoff_s=0.01, timeout_s=2
    )
    sink.add_error_listener(lambda _, error: given_up.append(error))

    sink.on_prediction(make_detections(), make_frame(0))
    assert sink.flush(GUARD_S)
    sink.close()

    counters = sink.stats.snapshot()
    assert (counters.retries, counters.dropped, counters.errors) == (2, 1, 1)
    assert isinstance(given_up[0], sinks.WebhookDeliveryError)
    assert "after 3 attempt(s)" in str(given_up[0])


def test_client_errors_are_not_retried(server: RecordingServer) -> None:
    server.status = 404
    sink = sinks.WebhookSink(server.url, backoff_s=0.01)

    sink.on_prediction(make_detections(), make_frame(0))
    assert sink.flush(GUARD_S)
    sink.close()

    counters = sink.stats.snapshot()
    assert (counters.retries, counters.dropped, counters.errors) == (0, 1, 1)


def test_on_prediction_returns_while_the_endpoint_hangs() -> None:
    with socket.socket() as listener:  # accepts connections, never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        sink = sinks.WebhookSink(
            f"http://127.0.0.1:{port}/", max_queue=2, timeout_s=30, drain_timeout_s=0.1
        )
        finished = threading.Event()

        def send() -> None:
            for frame_id in range(10):
                sink.on_prediction(make_detections(), make_frame(frame_id, from_file=False))
            finished.set()

        threading.Thread(target=send, daemon=True).start()
        assert finished.wait(GUARD_S)
        assert sink.stats.wait_for(lambda c: c.dropped >= 7, GUARD_S)
        sink.close()  # bounded by drain_timeout_s, not by the 30 s request timeout

        assert sink.state is sinks.SinkState.CLOSED


def test_bad_urls_are_config_errors() -> None:
    with pytest.raises(sinks.SinkConfigError, match="http:// or https://"):
        sinks.WebhookSink("ftp://example.com/hook")


def test_queued_masks_are_packed_and_restored_exactly() -> None:
    detections = make_detections(width=97, height=61, boxes=[(0, 0, 40, 30), (30, 10, 96, 60)])
    detections.mask[0] = False  # an object whose mask vanished
    detections.mask[1, 60, 96] = True  # touching the corner

    compact = CompactDetections.of(detections)
    restored = compact.restore()

    assert sum(packed.bits.nbytes for packed in compact.masks) < detections.mask.nbytes / 8
    np.testing.assert_array_equal(restored.mask, detections.mask)
    np.testing.assert_array_equal(restored.tracker_id, detections.tracker_id)
    assert restored.data["class_name"].tolist() == ["person", "forklift"]
    assert CompactDetections.of(detections, keep_masks=False).restore().mask is None


def test_secrets_in_the_url_stay_out_of_the_sink_name(server: RecordingServer) -> None:
    url = f"http://user:secret@127.0.0.1:{server.port}/hook?token=abc"
    with sinks.WebhookSink(url) as sink:
        assert sink.name == f"webhook:http://127.0.0.1:{server.port}/***"
        sink.on_prediction(None, make_frame())
        assert sink.flush(GUARD_S)

    assert server.headers[0]["Authorization"].startswith("Basic ")
