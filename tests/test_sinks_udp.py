"""UDPSink: one datagram per frame, no masks, oversize records cut to the objects that fit."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

import sinks
from tests.sinks_helpers import make_detections, make_frame


@pytest.fixture
def receiver() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listening:
        listening.bind(("127.0.0.1", 0))
        listening.settimeout(10)  # guard only: loopback datagrams arrive at once
        yield listening


def test_one_datagram_per_frame_without_masks(receiver: socket.socket) -> None:
    host, port = receiver.getsockname()
    with sinks.UDPSink(host, port) as sink:
        for frame_id in range(2):
            sink.on_prediction({"predictions": make_detections()}, make_frame(frame_id))

        records = [json.loads(receiver.recv(65_535)) for _ in range(2)]

    assert [r["frame_id"] for r in records] == [0, 1]
    assert [o["tracker_id"] for o in records[0]["objects"]] == [1, 2]
    assert all(o["mask"] is None for o in records[0]["objects"])
    assert "truncated" not in records[0]
    assert sink.stats.frames_written == 2


def test_oversize_records_keep_the_objects_that_fit(receiver: socket.socket) -> None:
    host, port = receiver.getsockname()
    boxes = [(i % 100, i % 80, i % 100 + 50, i % 80 + 30) for i in range(40)]
    with sinks.UDPSink(host, port, max_datagram_bytes=1200) as sink:
        sink.on_prediction(make_detections(boxes=boxes), make_frame())

        payload = receiver.recv(65_535)

    record = json.loads(payload)
    assert len(payload) <= 1200
    assert record["truncated"] is True and record["objects_total"] == 40
    assert 0 < len(record["objects"]) < 40
    assert [o["tracker_id"] for o in record["objects"]] == list(
        range(1, len(record["objects"]) + 1)
    )
    assert sink.stats.snapshot().truncated == 1


def test_bad_hosts_and_ports_are_config_errors() -> None:
    with pytest.raises(sinks.SinkConfigError, match="between 1 and 65535"):
        sinks.UDPSink("127.0.0.1", 70000)
    with pytest.raises(sinks.SinkConfigError, match="cannot resolve"):
        sinks.UDPSink("no-such-host.invalid", 9000)
