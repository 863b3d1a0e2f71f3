"""multi_sink: every sink isolated; live sources never wait, file sources never lose a frame."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import av
import pytest

import sinks
from tests.sinks_helpers import make_detections, make_frame
from tests.waiting import RecordingSink, wait_until

GUARD_S = 10.0
"""Only a guard against hanging forever when the code is broken; never reached when it works."""


class Recorder(RecordingSink):
    """A fast sink, named as ``multi_sink`` shows it, whose frame ids the test checks."""

    name = "recorder"

    @property
    def frame_ids(self) -> list[int]:
        return [frame.frame_id for frame in self.frames]


class Gate:
    """A sink stuck inside its first call until the test opens the gate."""

    name = "gate"

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.opened = threading.Event()
        self.frame_ids: list[int] = []

    def __call__(self, predictions: Any, frame: Any) -> None:
        self.entered.set()
        assert self.opened.wait(GUARD_S)
        self.frame_ids.append(frame.frame_id)


def always_raises(predictions: Any, frame: Any) -> None:
    raise RuntimeError(f"broken sink at frame {frame.frame_id}")


def dispatch(fan_out: sinks.MultiSink, frames: list) -> threading.Thread:
    thread = threading.Thread(
        target=lambda: [fan_out.on_prediction(make_detections(), f) for f in frames], daemon=True
    )
    thread.start()
    return thread


def test_a_raising_sink_and_a_stuck_sink_neither_stop_nor_slow_the_others() -> None:
    recorder, gate, errors = Recorder(), Gate(), []
    fan_out = sinks.multi_sink(
        [always_raises, gate, recorder], on_error=lambda name, error: errors.append((name, error))
    )
    frames = [make_frame(i, from_file=False) for i in range(50)]

    def paced() -> None:
        # Live frames arrive one after another; each waits until the fast sink and the raising
        # sink are done with the previous one, so a sink lagging under CPU load (whose oldest
        # live frames would rightly be dropped) cannot be confused with one being held up.
        for index, frame in enumerate(frames):
            fan_out.on_prediction(make_detections(), frame)
            recorder.wait_count(index + 1, GUARD_S)
            wait_until(lambda done=index + 1: len(errors) >= done, GUARD_S, "the raising sink")

    dispatcher = threading.Thread(target=paced, daemon=True)
    dispatcher.start()
    dispatcher.join(GUARD_S)

    assert not dispatcher.is_alive(), "a stuck sink must not hold up the caller on a live source"
    recorder.wait_count(50, GUARD_S)
    assert recorder.frame_ids == list(range(50)), "the fast sink receives every frame, in order"
    gate.opened.set()
    assert fan_out.flush(GUARD_S)
    stats = fan_out.stats()
    assert stats["always_raises"].errors == 50
    assert stats["recorder"].frames_written == 50 and stats["recorder"].dropped == 0
    assert stats["gate"].dropped > 0, "the stuck live sink lost its oldest frames, counted"
    assert len(errors) == 50 and {name for name, _ in errors} == {"always_raises"}
    assert isinstance(errors[0][1], RuntimeError)
    fan_out.close()


def test_live_frames_beyond_the_queue_drop_the_oldest() -> None:
    gate = Gate()
    fan_out = sinks.multi_sink([gate], max_queue=4)
    fan_out.on_prediction(None, make_frame(0, from_file=False))
    assert gate.entered.wait(GUARD_S)

    for frame_id in range(1, 20):
        fan_out.on_prediction(None, make_frame(frame_id, from_file=False))
    gate.opened.set()
    assert fan_out.flush(GUARD_S)

    assert gate.frame_ids == [0, 16, 17, 18, 19]
    assert fan_out.stats()["gate"].dropped == 15
    fan_out.close()


def test_a_live_frame_never_pushes_a_file_frame_out_of_a_sink_queue() -> None:
    gate = Gate()
    fan_out = sinks.multi_sink([gate], max_queue=2)
    fan_out.on_prediction(None, make_frame(0, from_file=True))
    assert gate.entered.wait(GUARD_S)
    fan_out.on_prediction(None, make_frame(1, from_file=True))
    fan_out.on_prediction(None, make_frame(2, from_file=True))

    fan_out.on_prediction(None, make_frame(3, from_file=False))  # full of file frames: it goes
    gate.opened.set()
    assert fan_out.flush(GUARD_S)

    assert gate.frame_ids == [0, 1, 2]
    assert fan_out.stats()["gate"].dropped == 1
    fan_out.close()


def test_file_frames_are_never_dropped_and_the_slowest_sink_sets_the_pace() -> None:
    max_queue, total = 2, 12
    submitted = 0
    progress = threading.Condition()
    seen: list[tuple[int, int]] = []

    def slow(predictions: Any, frame: Any) -> None:
        # While this sink is busy with frame k, the caller can be at most max_queue frames ahead.
        expected = min(frame.frame_id + max_queue + 1, total)
        with progress:
            assert progress.wait_for(lambda: submitted >= expected, GUARD_S)
            seen.append((frame.frame_id, submitted))

    recorder = Recorder()
    fan_out = sinks.multi_sink([slow, recorder], max_queue=max_queue)
    for frame_id in range(total):
        fan_out.on_prediction(None, make_frame(frame_id, from_file=True))
        with progress:
            submitted += 1
            progress.notify_all()
    assert fan_out.flush(GUARD_S)

    assert [frame_id for frame_id, _ in seen] == list(range(total))
    assert all(ahead == min(k + max_queue + 1, total) for k, ahead in seen), seen
    assert recorder.frame_ids == list(range(total))
    assert all(counters.dropped == 0 for counters in fan_out.stats().values())
    fan_out.close()


def test_close_delivers_what_is_queued_then_closes_every_sink(tmp_path: Path) -> None:
    video = sinks.VideoFileSink(tmp_path / "out.mp4")
    jsonl = sinks.JsonlSink(tmp_path / "out.jsonl")
    fan_out = sinks.multi_sink([video.on_prediction, jsonl])
    for frame_id in range(10):
        fan_out.on_prediction({"predictions": make_detections()}, make_frame(frame_id))

    fan_out.close()

    assert jsonl.state is sinks.SinkState.CLOSED and video.state is sinks.SinkState.CLOSED
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 10
    with av.open(str(tmp_path / "out.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 10
    assert fan_out.stats()[jsonl.name].frames_written == 10
    fan_out.on_prediction(None, make_frame(10))
    assert fan_out.stats()[jsonl.name].dropped == 1


class ComplainingSink(sinks.Sink):
    """Absorbs a failure itself, as the webhook does when it gives up a batch."""

    def _write(self, detections: Any, frame: Any) -> None:
        self._report_error(ConnectionError("endpoint gone"))


def test_failures_a_sink_absorbs_reach_on_error_too() -> None:
    errors: list[tuple[str, BaseException]] = []
    fan_out = sinks.multi_sink(
        [ComplainingSink("complainer")], on_error=lambda *e: errors.append(e)
    )

    fan_out.on_prediction(None, make_frame())
    assert fan_out.flush(GUARD_S)

    assert [(name, str(error)) for name, error in errors] == [("complainer", "endpoint gone")]
    assert fan_out.stats()["complainer"].errors == 1
    fan_out.close()


def test_sinks_with_the_same_name_are_told_apart() -> None:
    fan_out = sinks.multi_sink([Recorder(), Recorder(), sinks.render_boxes])

    assert fan_out.names == ["recorder", "recorder#2", "render_boxes"]
    fan_out.close()


@pytest.mark.parametrize("from_file", [True, False])
def test_multi_source_batches_are_split_per_frame(from_file: bool) -> None:
    recorder = Recorder()
    with sinks.multi_sink([recorder]) as fan_out:
        fan_out.on_prediction(
            [None, None, None],
            [make_frame(1, from_file=from_file), None, make_frame(2, from_file=from_file)],
        )
        recorder.wait_count(2, GUARD_S)

    assert recorder.frame_ids == [1, 2]


def test_roboflow_partial_form_calls_every_sink_and_isolates_failures():
    import functools

    import supervision as sv

    from sinks import multi_sink

    received = []

    def broken(predictions, frame):
        raise RuntimeError("boom")

    def recorder(predictions, frame):
        received.append(frame)

    errors = []
    on_prediction = functools.partial(
        multi_sink, sinks=[broken, recorder], on_error=lambda name, e: errors.append(name)
    )
    on_prediction(sv.Detections.empty(), "frame-1")
    on_prediction(sv.Detections.empty(), "frame-2")
    assert received == ["frame-1", "frame-2"]
    assert len(errors) == 2
