"""The cluster's rules without Ray: the result buffer, the wire form, placement, id grants."""

from __future__ import annotations

import sys
import threading
from datetime import datetime

import numpy as np
import pytest
import supervision as sv

from pipeline.cluster.id_grants import GrantGate, GrantRefused, IdLedger
from pipeline.cluster.placement import pick_worker
from pipeline.cluster.results import ResultBuffer, WireFrame
from pipeline.service.run_history import RunHistory
from pipeline.service.store import StreamStore
from pipeline.video_frame import VideoFrame
from tracker.tracker_ids import TrackerIds


def test_result_buffer_drops_the_oldest_and_counts_it():
    buffer: ResultBuffer[int] = ResultBuffer(max_frames=3)
    for item in range(5):
        buffer.push(item)
    assert buffer.take() == [2, 3, 4]
    assert buffer.dropped == 2
    assert buffer.take() == []


def test_wire_frame_round_trip_keeps_masks_and_sends_pixels_only_when_asked():
    masks = np.zeros((2, 6, 10), dtype=bool)
    masks[0, 1:3, 2:5] = True
    masks[1, 4:, 7:] = True
    detections = sv.Detections(
        xyxy=np.array([[2, 1, 5, 3], [7, 4, 10, 6]], dtype=np.float32),
        mask=masks,
        confidence=np.array([0.9, 0.8], dtype=np.float32),
        class_id=np.array([0, 1]),
        tracker_id=np.array([7, 8]),
        data={"class_name": np.array(["a", "b"])},
    )
    image = np.full((6, 10, 3), 9, dtype=np.uint8)
    frame = VideoFrame(image, frame_id=3, frame_timestamp=datetime.now(), epoch=2)

    wire = WireFrame.pack("s1", detections, frame, with_image=False)
    assert wire.image is None and wire.detections.mask is None
    unpacked, meta = wire.unpack()
    assert np.array_equal(unpacked.mask, masks)
    assert list(unpacked.tracker_id) == [7, 8]
    assert meta.image.shape == (6, 10, 3) and meta.image.strides[:2] == (0, 0)  # no pixels
    assert (meta.frame_id, meta.epoch) == (3, 2)

    _, with_pixels = WireFrame.pack("s1", detections, frame, with_image=True).unpack()
    assert np.array_equal(with_pixels.image, image)


def test_placement_picks_the_least_loaded_worker_with_room():
    assert pick_worker({"worker-0": 1, "worker-1": 0}, capacity=2) == "worker-1"
    assert pick_worker({"worker-0": 1, "worker-1": 1}, capacity=2) == "worker-0"
    assert pick_worker({"worker-0": 2, "worker-1": 2}, capacity=2) is None
    assert pick_worker({}, capacity=2) is None


def test_an_id_is_emitted_only_after_the_front_door_recorded_its_ceiling(tmp_path):
    store = StreamStore(tmp_path)
    ledger = IdLedger(RunHistory(store))
    wake = threading.Condition()
    gate = GrantGate(wake)
    ids = TrackerIds(highest=10, reserve=gate.reserve_for("cam"), block=64)
    emitted: list[int] = []
    worker_side = threading.Thread(target=lambda: emitted.append(ids.allocate()))
    worker_side.start()

    with wake:  # the worker's poll sees the request
        assert wake.wait_for(lambda: gate.pending() == {"cam": 74}, timeout=10)
    assert emitted == []  # blocked: nothing granted yet
    gate.apply({"cam": ledger.grant("cam", 74)})  # the front door records, then grants
    worker_side.join(10)
    assert emitted == [11]
    assert store.history("cam").tracker_id_ceiling == 74  # survives the worker
    assert ledger.floor("cam") == 74
    ledger.settle("cam", 11)  # a clean stop records the exact highest
    assert store.history("cam").tracker_id_ceiling == 11
    store.close()


def test_a_stopped_stream_gives_up_waiting_for_ids():
    gate = GrantGate(threading.Condition())
    ids = TrackerIds(reserve=gate.reserve_for("cam"))
    errors: list[BaseException] = []

    def allocate() -> None:
        try:
            ids.allocate()
        except GrantRefused as error:
            errors.append(error)

    thread = threading.Thread(target=allocate)
    thread.start()
    gate.close("cam")
    thread.join(10)
    assert len(errors) == 1 and ids.highest == 0


@pytest.mark.parametrize("module", ["pipeline.cluster.pool", "pipeline.cluster.connect"])
def test_only_the_cluster_modules_import_ray(module):
    import importlib

    importlib.import_module(module)
    assert "ray" in sys.modules
