"""JSON lines: one complete, flushed record per frame whose masks decode back exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import sinks
from sinks.serialize import decode_mask, frame_record
from tests.sinks_helpers import make_detections, make_frame


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_each_frame_is_one_line_readable_before_close(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    sink = sinks.JsonlSink(path)
    for frame_id in range(3):
        sink.on_prediction(make_detections(), make_frame(frame_id, epoch=1))

    records = read_lines(path)  # the sink is still open: every line must already be on disk

    assert [r["frame_id"] for r in records] == [0, 1, 2]
    first = records[0]
    assert first["video_identifier"] == "cam" and first["epoch"] == 1
    assert first["timestamp"] == "2025-01-01T12:00:00+00:00"
    assert (first["width"], first["height"]) == (160, 120)
    assert [o["tracker_id"] for o in first["objects"]] == [1, 2]
    assert [o["class_name"] for o in first["objects"]] == ["person", "forklift"]
    assert first["objects"][0]["bbox"] == [10.0, 20.0, 60.0, 90.0]
    assert first["objects"][0]["confidence"] == pytest.approx(0.9)
    assert sink.stats.frames_written == 3
    sink.close()


def test_rle_masks_round_trip_exactly(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    detections = make_detections(width=97, height=61, boxes=[(0, 0, 40, 30), (30, 10, 96, 60)])
    rng = np.random.default_rng(0)
    detections.mask[1] = rng.random((61, 97)) > 0.5  # ragged: every run length is exercised
    with sinks.JsonlSink(path, mask_format="rle") as sink:
        sink.on_prediction({"predictions": detections}, make_frame(width=97, height=61))

    (record,) = read_lines(path)

    for obj, expected in zip(record["objects"], detections.mask, strict=True):
        assert obj["mask"]["size"] == [61, 97]
        decoded = decode_mask(obj["mask"], width=record["width"], height=record["height"])
        np.testing.assert_array_equal(decoded, expected)


def test_polygon_masks_cover_the_object(tmp_path: Path) -> None:
    detections = make_detections()
    record = frame_record(detections, make_frame(), mask_format="polygon")

    polygon = record["objects"][0]["mask"]
    decoded = decode_mask(polygon, width=160, height=120)

    assert isinstance(polygon, list) and len(polygon[0]) % 2 == 0
    overlap = (decoded & detections.mask[0]).sum() / (decoded | detections.mask[0]).sum()
    assert overlap > 0.9


def test_mask_format_none_writes_null_masks(tmp_path: Path) -> None:
    record = frame_record(make_detections(), make_frame(), mask_format="none")

    assert [o["mask"] for o in record["objects"]] == [None, None]


def test_unknown_mask_format_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(sinks.SinkConfigError, match="rle, polygon, none"):
        sinks.JsonlSink(tmp_path / "out.jsonl", mask_format="png")


def test_a_line_torn_by_an_earlier_crash_stays_alone(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_text('{"frame_id": 0}\n{"frame_id": 1, "obj')

    with sinks.JsonlSink(path) as sink:
        sink.on_prediction(make_detections(), make_frame(2))

    lines = path.read_text().splitlines()
    assert lines[1] == '{"frame_id": 1, "obj'
    assert json.loads(lines[2])["frame_id"] == 2


def test_frames_after_close_are_counted_as_dropped(tmp_path: Path) -> None:
    sink = sinks.JsonlSink(tmp_path / "out.jsonl")
    sink.close()

    sink.on_prediction(make_detections(), make_frame())

    assert sink.state is sinks.SinkState.CLOSED
    assert sink.stats.dropped == 1
