"""How tests wait for what happens on other threads, instead of sleeping and hoping.

A callback the code under test calls (a sink, a status handler, a state listener) is a
``CallRecorder``: it keeps what it received under a condition, so a test waits for exactly what it
expects. A condition that nothing calls back about (a counter in ``stats()``) is polled with
``wait_until``. Both fail with an ``AssertionError`` after ``GUARD_S``, showing what they saw.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Generic, NoReturn, TypeVar

GUARD_S = 60.0
"""Only a guard against hanging forever when the code is broken; never reached when it works."""

Item = TypeVar("Item")


def wait_until(predicate: Callable[[], bool], timeout: float = GUARD_S, what: str = "") -> None:
    """Poll a condition that has no event of its own (a counter in a status), up to ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(0.01)


class CallRecorder(Generic[Item]):
    """What a callback received, in order, under a condition that tests wait on.

    Subclasses are the callbacks: their ``__call__`` takes the callback's arguments and calls
    ``record`` with the item worth keeping; ``describe`` says how an item reads in a failure.
    No ``__len__`` here: it would make an empty recorder falsy, and code under test checks
    ``if on_state_change:`` before calling it.
    """

    def __init__(self) -> None:
        self.received: list[Item] = []
        self._condition = threading.Condition()

    def record(self, item: Item) -> None:
        with self._condition:
            self.received.append(item)
            self._condition.notify_all()

    def wait_for(self, predicate: Callable[[list[Item]], bool], timeout: float = GUARD_S) -> None:
        """Until ``predicate(received)`` holds; AssertionError with the history if it never does."""
        with self._condition:
            if not self._condition.wait_for(lambda: predicate(self.received), timeout):
                self._fail(f"condition not met within {timeout} s")

    def wait_count(self, count: int, timeout: float = GUARD_S) -> None:
        """Until at least ``count`` items were received."""
        self.wait_for(lambda received: len(received) >= count, timeout)

    def wait_for_item(
        self,
        matches: Callable[[Item], bool],
        *,
        after: int = 0,
        timeout: float = GUARD_S,
        what: str = "a matching item",
    ) -> Item:
        """The first item among ``received[after:]`` that ``matches``."""
        return self.received[self._wait_for_index(matches, after, timeout, what)]

    def _wait_for_index(
        self, matches: Callable[[Item], bool], after: int, timeout: float, what: str
    ) -> int:
        found: list[int] = []

        def check() -> bool:
            found[:] = [i for i in range(after, len(self.received)) if matches(self.received[i])]
            return bool(found)

        with self._condition:
            if not self._condition.wait_for(check, timeout):
                self._fail(f"no {what} after #{after} within {timeout} s")
            return found[0]

    def describe(self, item: Item) -> Any:
        """How ``item`` reads in a failure message; override where the item itself is too big."""
        return item

    def _fail(self, reason: str) -> NoReturn:
        history = [self.describe(item) for item in self.received]
        raise AssertionError(f"{type(self).__name__}: {reason}; received {history}")


class RecordingSink(CallRecorder[tuple[Any, Any]]):
    """An ``on_prediction`` sink that keeps every (predictions, frame)."""

    def __call__(self, predictions: Any, frame: Any) -> None:
        self.record((predictions, frame))

    @property
    def frames(self) -> list[Any]:
        with self._condition:
            return [frame for _, frame in self.received]

    def describe(self, item: tuple[Any, Any]) -> Any:
        """The frame id (or ids, for a batch of sources): detections would flood the message."""
        _, frame = item
        if isinstance(frame, list):
            return [getattr(each, "frame_id", each) for each in frame]
        return getattr(frame, "frame_id", frame)
