"""One vision-backbone pass for every stream that has a frame ready.

The HF port runs the ViT backbone once per frame per stream (``_det_track_one_frame`` calls
``detector_model.get_vision_features``): about three quarters of SAM3's per-frame compute at full
size. When several cameras share one model, their frames can go through the backbone as one batch
and each session's forward gets its own slice.

How a batch forms (``BackboneBatcher``):

- Each caller thread queues its preprocessed frame and waits.
- A batch is only computed while no stream holds features it has not stepped yet ("the gate"):
  the model runs one frame at a time, so a frame queued while others step would wait for the
  model anyway. This keeps streams in rounds: one batched backbone pass, then each stream's
  detector/tracker step in turn.
- Once the gate is open the batch closes as soon as every thread that was in the previous batch
  has queued again (threads, not sessions: one thread feeding several sources in turn can never
  have two frames queued, so waiting for its other source would only waste the window), when
  ``max_batch`` frames are queued, or when ``gather_window_s`` has passed since the gate opened.
  A lone camera is therefore never delayed: it is the whole previous batch.

The batched pass and the slices hand-off are exact on CPU fp32 for the tiny checkpoint (a test);
in reduced precision or on GPU, batched kernels may round differently in the last bits.

Off by default (``Sam3VideoTracker.from_pretrained(batch_streams=False)``), by measurement: on the
project's 2-core CPU with the tiny checkpoint the backbone is ~11% of a frame and batching saves
15-25% of it (32-44 ms -> 26-30 ms per frame at 2-4 frames per pass), under 3% of a frame, below
what that shared machine can resolve (``bench throughput`` ratios batched/unbatched 0.93-1.11 at
2 and 4 streams). The saving that motivates it — a full-size ViT pass per camera on a GPU — has
not been measured yet, and batched GPU kernels are not bit-identical to batch 1. Turn it on for a
multi-camera GPU host once ``sam3-stream bench throughput`` there shows the gain.

The default window is 20 ms, not a few: the measured turnaround of a stream (its step done ->
its next frame queued: id mapping, sinks, decode, preprocess) was 9-17 ms, and a window shorter
than that closes most batches with one frame (5 ms: 20 of 36 passes at 2 streams).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

logger = logging.getLogger(__name__)

DEFAULT_GATHER_WINDOW_MS = 20.0
DEFAULT_MAX_BATCH = 8


@dataclass(eq=False)  # identity: a request holds a tensor, and `in`/`remove` must not compare it
class _Request:
    """One stream's frame waiting for its backbone features."""

    pixel_values: torch.Tensor  # (3, S, S)
    thread: int
    features: Any = None
    error: BaseException | None = None
    done: bool = False


@dataclass
class BatcherStats:
    """How batches formed (for benchmarks and tests; counts since construction).

    Attributes:
        batches: backbone passes run.
        frames: frames that went through them.
        largest_batch: the biggest batch so far.
        closed_complete: batches closed because every expected thread had queued.
        closed_full: batches closed at ``max_batch``.
        closed_by_window: batches closed because the gather window ran out.
        turnaround_s: summed time from a thread ending its step to queueing its next frame
            (postprocess, sinks, next frame, preprocess): the gather window should cover it.
        turnarounds: how many turnarounds ``turnaround_s`` sums.
    """

    batches: int = 0
    frames: int = 0
    largest_batch: int = 0
    closed_complete: int = 0
    closed_full: int = 0
    closed_by_window: int = 0
    turnaround_s: float = 0.0
    turnarounds: int = 0
    sizes: dict[int, int] = field(default_factory=dict)

    @property
    def mean_batch(self) -> float:
        return self.frames / self.batches if self.batches else 0.0

    @property
    def mean_turnaround_ms(self) -> float:
        return 1000 * self.turnaround_s / self.turnarounds if self.turnarounds else 0.0


class BackboneBatcher:
    """Gathers frames from concurrent streams into one backbone call.

    Args:
        compute: ``(B, 3, S, S) pixels -> features`` (a ``ModelOutput`` of batched tensors); it
            must take the model lock itself.
        gather_window_s: the longest a batch waits for threads of the previous round.
        max_batch: the most frames in one pass (bounds accelerator memory).
        clock: monotonic seconds (tests may pass a fake).

    Examples:
        >>> import torch
        >>> from types import SimpleNamespace
        >>> batcher = BackboneBatcher(lambda x: SimpleNamespace(last_hidden_state=x * 2))
        >>> with batcher.lease(torch.ones(3, 2, 2)) as features:
        ...     features.last_hidden_state.shape
        torch.Size([1, 3, 2, 2])
    """

    def __init__(
        self,
        compute: Callable[[torch.Tensor], Any],
        *,
        gather_window_s: float = DEFAULT_GATHER_WINDOW_MS / 1000,
        max_batch: int = DEFAULT_MAX_BATCH,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if gather_window_s < 0:
            raise ValueError(f"gather window must be >= 0 s, got {gather_window_s}")
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self._compute = compute
        self.gather_window_s = gather_window_s
        self.max_batch = max_batch
        self._clock = clock
        self._cond = threading.Condition()
        self._queue: list[_Request] = []
        self._running = False
        self._leases = 0  # features handed out whose step has not finished
        self._ready_since: float | None = None
        self._previous_threads: frozenset[int] = frozenset()
        self._released_at: dict[int, float] = {}
        self._stats = BatcherStats()

    def stats(self) -> BatcherStats:
        with self._cond:
            return BatcherStats(**{**vars(self._stats), "sizes": dict(self._stats.sizes)})

    def wait_for_queued(self, count: int, timeout: float | None = None) -> bool:
        """Block until at least ``count`` frames are queued (lets tests order threads)."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self._queue) >= count, timeout)

    @contextlib.contextmanager
    def lease(self, pixel_values: torch.Tensor) -> Iterator[Any]:
        """This frame's backbone features (batch of 1), held until the block ends.

        The block is the session's step: no new batch is computed until every stream holding
        features has finished with them.

        Args:
            pixel_values: (3, S, S) preprocessed frame on the model's device.

        Raises:
            Exception: whatever the batched backbone raised, in every thread of that batch.
        """
        features = self._acquire(pixel_values)
        try:
            yield features
        finally:
            self._release()

    def _acquire(self, pixel_values: torch.Tensor) -> Any:
        request = _Request(pixel_values, threading.get_ident())
        with self._cond:
            released = self._released_at.pop(request.thread, None)
            if released is not None:
                self._stats.turnaround_s += self._clock() - released
                self._stats.turnarounds += 1
            self._queue.append(request)
            self._cond.notify_all()
            try:
                while not request.done:
                    batch = self._claim()
                    if batch is None:
                        self._cond.wait(self._wait_timeout())
                    else:
                        self._run(batch)
            except BaseException:
                # Interrupted while waiting: leave no orphan behind to block the gate.
                if not request.done and request in self._queue:
                    self._queue.remove(request)
                elif request.done and request.error is None:
                    self._leases -= 1
                    self._cond.notify_all()
                raise
        if request.error is not None:
            raise request.error
        return request.features

    def _release(self) -> None:
        with self._cond:
            self._leases -= 1
            if len(self._released_at) > 4096:  # threads that left without a next frame
                self._released_at.clear()
            self._released_at[threading.get_ident()] = self._clock()
            self._cond.notify_all()

    def _wait_timeout(self) -> float | None:
        if self._ready_since is None:
            return None
        return max(0.0, self._ready_since + self.gather_window_s - self._clock())

    def _claim(self) -> list[_Request] | None:
        """Take the next batch if it may run now (called with the condition held)."""
        if self._running or self._leases > 0 or not self._queue:
            self._ready_since = None
            return None
        now = self._clock()
        if self._ready_since is None:
            self._ready_since = now
        queued = {request.thread for request in self._queue}
        if self._previous_threads <= queued:
            reason = "complete"
        elif len(self._queue) >= self.max_batch:
            reason = "full"
        elif now - self._ready_since >= self.gather_window_s:
            reason = "window"
        else:
            return None
        batch = self._queue[: self.max_batch]
        del self._queue[: self.max_batch]
        self._running = True
        self._ready_since = None
        self._previous_threads = frozenset(request.thread for request in batch)
        stats = self._stats
        stats.batches += 1
        stats.frames += len(batch)
        stats.largest_batch = max(stats.largest_batch, len(batch))
        stats.sizes[len(batch)] = stats.sizes.get(len(batch), 0) + 1
        if reason == "complete":
            stats.closed_complete += 1
        elif reason == "full":
            stats.closed_full += 1
        else:
            stats.closed_by_window += 1
        return batch

    def _run(self, batch: list[_Request]) -> None:
        """Compute one batch outside the condition and deliver each slice (condition held)."""
        self._cond.release()
        try:
            # (B, 3, S, S)
            pixels = torch.stack([request.pixel_values for request in batch])
            features = self._compute(pixels)
            slices = [slice_batch(features, index) for index in range(len(batch))]
            error: BaseException | None = None
        except BaseException as caught:  # delivered to every thread of the batch
            slices, error = [], caught
        finally:
            self._cond.acquire()
        for index, request in enumerate(batch):
            if error is None:
                request.features = slices[index]
                self._leases += 1
            else:
                request.error = error
            request.done = True
        self._running = False
        self._cond.notify_all()


def slice_batch(features: Any, index: int) -> Any:
    """Item ``index`` of batched backbone features, keeping a batch dimension of 1.

    ``Sam3VisionEncoderOutput`` holds (B, ...) tensors and tuples of them; every tensor becomes
    (1, ...). The slices are views: contiguous, and freed with the batch once the step ends
    (the session caches tensors derived from them, never the slices themselves).
    """

    def take(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return value[index : index + 1]
        if isinstance(value, tuple | list):
            return type(value)(take(item) for item in value)
        return value

    if hasattr(features, "keys") and hasattr(features, "__getitem__"):
        return type(features)(**{key: take(features[key]) for key in features.keys()})  # noqa: SIM118
    if hasattr(features, "__dict__"):
        cls: Any = type(features)
        copy = cls.__new__(cls)
        copy.__dict__.update({key: take(value) for key, value in vars(features).items()})
        return copy
    return take(features)


@contextlib.contextmanager
def precomputed_vision_features(
    detector_model: Any, pixel_values: torch.Tensor, features: Any
) -> Iterator[None]:
    """Make ``detector_model.get_vision_features`` return ``features`` for this frame.

    Must run under the model lock: the override is an instance attribute for the duration of one
    session's forward. A call for any other pixels (the port changed how it fetches the frame)
    falls through to the real backbone, so results stay right even then.

    Args:
        detector_model: the ``Sam3Model`` inside ``Sam3VideoModel`` (typed ``Any``: its
            ``get_vision_features`` is replaced, which ``nn.Module``'s typing cannot express).
        pixel_values: (3, S, S) the frame handed to the forward as ``frame=``.
        features: its (1, ...) backbone features from the batched pass.
    """
    original = detector_model.get_vision_features

    def get_vision_features(pixel_values: torch.Tensor, **kwargs: Any) -> Any:
        if _same_frame(pixel_values, expected):
            return features
        logger.warning("backbone asked for a frame other than the batched one; computing it")
        return original(pixel_values=pixel_values, **kwargs)

    expected = pixel_values
    detector_model.get_vision_features = get_vision_features
    try:
        yield
    finally:
        del detector_model.get_vision_features


def _same_frame(asked: torch.Tensor, expected: torch.Tensor) -> bool:
    """``asked`` is (1, 3, S, S); the session stores our (3, S, S) tensor without copying."""
    if asked.shape[-3:] != expected.shape or asked.shape[0] != 1:
        return False
    if asked.data_ptr() == expected.data_ptr() and asked.device == expected.device:
        return True
    return bool(torch.equal(asked[0], expected))
