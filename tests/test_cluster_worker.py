"""``StreamWorker`` as a plain object (no Ray): streams, poll, images on request, grants, errors.

The class is what each Ray actor runs; calling it directly checks its contract quickly, with the
real tiny checkpoint and a real test-pattern source.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from pipeline.cluster.loading import TrackerSpec
from pipeline.cluster.results import PollReply, StreamLaunch
from pipeline.cluster.worker import StreamWorker
from tracker.visual_prompts import VisualPrompt


@pytest.fixture(scope="module")
def worker(tiny_model_dir) -> Iterator[StreamWorker]:
    made = StreamWorker("worker-t", TrackerSpec(str(tiny_model_dir), device="cpu"), max_objects=2)
    yield made
    made.shutdown()


def _launch(stream_id: str, **changes) -> StreamLaunch:
    fields = {
        "stream_id": stream_id,
        "video_identifier": f"vid-{stream_id}",
        "source": "testpattern?fps=8&size=64x48",
        "classes": ("square",),
        "threshold": 0.0,
        "max_fps": None,
        "sinks": (),
        "source_options": {},
        "max_objects": None,
    }
    return StreamLaunch(**{**fields, **changes})


def _poll_until(worker: StreamWorker, done, grants=None, timeout: float = 60.0) -> list[PollReply]:
    """Poll as the front door does, granting every reservation, until ``done(replies)``."""
    replies: list[PollReply] = []
    granted: dict[str, int] = dict(grants or {})
    deadline = time.monotonic() + timeout
    while not done(replies):
        assert time.monotonic() < deadline, f"poll never got there: {replies[-3:]}"
        reply = worker.poll(granted, 0.5)
        granted = dict(reply.reservations)
        replies.append(reply)
    return replies


def test_a_stream_runs_reports_and_sends_pixels_only_when_asked(worker):
    assert worker.start_stream(_launch("a", epoch=3, id_floor=100)).error_kind is None
    replies = _poll_until(worker, lambda rs: sum(len(r.frames) for r in rs) >= 2)
    frames = [f for r in replies for f in r.frames]
    assert all(f.image is None for f in frames)
    detections, frame = frames[-1].unpack()
    assert frame.epoch == 3 and frame.image.shape == (48, 64, 3)
    assert all(tracker_id > 100 for tracker_id in detections.tracker_id)  # above the floor
    assert max(r.reservations.get("vid-a", 0) for r in replies) >= 101  # asked before using

    worker.set_want_images("a", True)
    replies = _poll_until(worker, lambda rs: any(f.image is not None for r in rs for f in r.frames))
    assert next(f for r in replies for f in r.frames if f.image is not None).image.shape == (
        48,
        64,
        3,
    )

    outcome = worker.call("a", "set_class_names", (["square", "disc"],))
    assert outcome.error_kind is None
    _poll_until(
        worker,
        lambda rs: any(
            s.class_names == ("square", "disc") for r in rs for s in r.statuses.values()
        ),
    )
    highest = worker.stop_stream("a")
    assert highest > 100
    assert "a" not in worker.describe()["streams"]


class FrontDoorPoller:
    """Polls and grants on a thread, as the front door's poller does while calls go through."""

    def __init__(self, worker: StreamWorker) -> None:
        self._worker = worker
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        granted: dict[str, int] = {}
        while not self._stop.is_set():
            granted = dict(self._worker.poll(granted, 0.2).reservations)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def test_runtime_errors_come_back_as_their_kind_and_one_line(worker):
    assert worker.start_stream(_launch("b")).error_kind is None
    poller = FrontDoorPoller(worker)  # a prompt waits for its frame, the frame for its ids
    try:
        missing = worker.call("b", "remove_object", (999_999, None))
        assert missing.error_kind == "KeyError"
        bad = worker.call("b", "set_threshold", (2.0,))
        assert bad.error_kind in ("ValueError", "ConfigError") and "\n" not in bad.message
        prompt = VisualPrompt(boxes=[(1, 1, 30, 30)])
        added = worker.call("b", "add_prompt", (prompt, None))
        assert added.error_kind is None and len(added.value) == 1
    finally:
        worker.stop_stream("b")
        poller.stop()


def test_a_source_or_sink_the_worker_cannot_open_is_refused(worker, tmp_path):
    missing = worker.start_stream(_launch("c", source=str(tmp_path / "missing.mp4")))
    assert missing.error_kind == "SourceError"
    screen = worker.start_stream(_launch("d", sinks=("screen",)))
    assert (screen.error_kind, screen.field) == ("InvalidStream", "sinks")
    assert worker.describe()["streams"] == []
