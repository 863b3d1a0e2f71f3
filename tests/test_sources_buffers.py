"""The one queue policy (live drops the oldest, a file waits) and the reconnect backoff."""

from __future__ import annotations

import random
import threading

import pytest

from pipeline.errors import ConfigError
from pipeline.sources.backoff import Backoff
from sinks.frame_queue import FrameNotifier, FrameQueue


def _live(_item: object) -> bool:
    return True


def _file(_item: object) -> bool:
    return False


def test_freshest_buffer_keeps_only_the_newest_frame_and_counts_the_rest() -> None:
    buffer: FrameQueue[int] = FrameQueue(1, is_live=_live)
    for item in range(10):
        assert buffer.put(item) == (None if item == 0 else item - 1)  # accepted, older one out

    assert len(buffer) == 1 and buffer.high_water == 1 and buffer.capacity == 1
    assert buffer.get(timeout=0) == 9
    assert buffer.dropped == 9
    assert buffer.get(timeout=0) is None


def test_blocking_buffer_makes_the_producer_wait_until_the_consumer_takes_a_frame() -> None:
    buffer: FrameQueue[int] = FrameQueue(2, is_live=_file)
    buffer.put(0)
    buffer.put(1)
    third_put = threading.Thread(target=buffer.put, args=(2,))
    third_put.start()

    assert buffer.get(timeout=1) == 0
    third_put.join(timeout=5)
    assert [buffer.get(timeout=1), buffer.get(timeout=1)] == [1, 2]
    assert buffer.dropped == 0 and buffer.high_water == 2


def test_closing_lets_the_consumer_drain_then_returns_none_at_once() -> None:
    buffer: FrameQueue[str] = FrameQueue(3, is_live=_file)
    buffer.put("last")
    buffer.close()

    assert buffer.put("late") == "late"  # refused
    assert buffer.get(timeout=None) == "last"
    assert buffer.get(timeout=None) is None  # would block forever if close did not wake it


def test_stop_wakes_a_producer_blocked_on_a_full_buffer() -> None:
    buffer: FrameQueue[int] = FrameQueue(1, is_live=_file)
    buffer.put(0)
    results: list[int | None] = []
    producer = threading.Thread(target=lambda: results.append(buffer.put(1)))
    producer.start()

    buffer.stop()
    producer.join(timeout=5)

    assert results == [1] and len(buffer) == 0  # refused


def test_notifier_wakes_a_consumer_for_a_frame_that_came_while_it_polled() -> None:
    notifier = FrameNotifier()
    buffers = [FrameQueue[str](1, is_live=_live, notifier=notifier) for _ in range(3)]
    seen = notifier.version
    buffers[2].put("frame")  # arrives after the snapshot, before the wait

    assert notifier.wait(seen, timeout=0) is True
    assert notifier.wait(notifier.version, timeout=0.01) is False


def test_backoff_grows_exponentially_up_to_its_cap_with_jitter_below_it() -> None:
    backoff = Backoff(initial_s=0.5, max_s=8.0, factor=2.0, jitter=0.25, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(8)]

    bases = [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0]
    assert all(0.75 * base <= delay <= base for delay, base in zip(delays, bases, strict=True))
    assert len(set(delays[4:])) > 1  # jittered even at the cap
    backoff.reset()
    assert backoff.next_delay() <= 0.5


def test_backoff_never_overflows_after_months_of_failures() -> None:
    backoff = Backoff(initial_s=1.0, max_s=30.0, jitter=0.0)
    backoff.attempt = 10_000

    assert backoff.next_delay() == 30.0


@pytest.mark.parametrize(
    "fields",
    [{"initial_s": 0}, {"initial_s": 2, "max_s": 1}, {"factor": 0.5}, {"jitter": 1.0}],
)
def test_backoff_refuses_nonsense_settings(fields: dict) -> None:
    with pytest.raises(ConfigError):
        Backoff(**fields)
