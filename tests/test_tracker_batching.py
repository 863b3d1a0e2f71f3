"""Cross-stream backbone batching, tensor preprocessing and the compile flag.

The batcher's scheduling is specified with a stand-in backbone (deterministic thread orderings,
no model); the promise that batching changes no result is checked on the real tiny SAM3.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from tests.frames import moving_shapes
from tracker import Sam3VideoTracker, SessionRegistry
from tracker.batching import BackboneBatcher, precomputed_vision_features
from tracker.compile import compile_vision_encoder
from tracker.preprocess import TensorPreprocessor

BIG_WINDOW_S = 3600.0  # a test that waited this long would hit pytest's timeout instead


class StandInBackbone:
    """Doubles its input; records batch sizes; can hold its first pass until released."""

    def __init__(self, *, hold_first: bool = False, fail_on_call: int | None = None) -> None:
        self.sizes: list[int] = []
        self.first_started = threading.Event()
        self.release_first = threading.Event()
        if not hold_first:
            self.release_first.set()
        self.fail_on_call = fail_on_call

    def __call__(self, pixels: torch.Tensor) -> SimpleNamespace:
        self.sizes.append(len(pixels))
        if len(self.sizes) == 1:
            self.first_started.set()
            assert self.release_first.wait(60)
        if self.fail_on_call == len(self.sizes):
            raise RuntimeError("backbone exploded")
        return SimpleNamespace(last_hidden_state=pixels * 2)


def _frame(value: float) -> torch.Tensor:
    return torch.full((3, 2, 2), float(value))


def _feed(batcher: BackboneBatcher, values: list[float], seen: list) -> Callable[[], None]:
    def run() -> None:
        for value in values:
            try:
                with batcher.lease(_frame(value)) as features:
                    seen.append((value, features.last_hidden_state))
            except RuntimeError as error:
                seen.append((value, error))

    return run


def _start(target: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def test_lone_thread_never_waits_for_the_gather_window():
    backbone = StandInBackbone()
    batcher = BackboneBatcher(backbone, gather_window_s=BIG_WINDOW_S)
    # One thread feeding two sources in turn (as one inference loop does) is always "complete".
    for value in range(6):
        with batcher.lease(_frame(value)) as features:
            assert torch.equal(features.last_hidden_state, _frame(value)[None] * 2)
    stats = batcher.stats()
    assert backbone.sizes == [1] * 6
    assert stats.closed_complete == 6 and stats.closed_by_window == 0


def test_concurrent_streams_share_one_backbone_pass_and_each_gets_its_own_slice():
    backbone = StandInBackbone(hold_first=True)
    batcher = BackboneBatcher(backbone, gather_window_s=BIG_WINDOW_S)
    rounds = 4
    seen: dict[str, list] = {"a": [], "b": [], "c": []}
    # The first frame runs alone (nothing to wait for); from then on the three run in rounds,
    # so "a" has one frame more to end in the same round as the others.
    first = _start(_feed(batcher, [100 + i for i in range(rounds + 1)], seen["a"]))
    assert backbone.first_started.wait(60)
    others = [
        _start(_feed(batcher, [200 + i for i in range(rounds)], seen["b"])),
        _start(_feed(batcher, [300 + i for i in range(rounds)], seen["c"])),
    ]
    assert batcher.wait_for_queued(2, timeout=60)
    backbone.release_first.set()
    for thread in [first, *others]:
        thread.join(60)
    assert backbone.sizes == [1] + [3] * rounds
    for results in seen.values():
        for value, features in results:
            # (1, 3, 2, 2): this stream's frame, doubled, with a batch dimension of one
            assert torch.equal(features, _frame(value)[None] * 2)
    stats = batcher.stats()
    assert stats.largest_batch == 3 and stats.closed_by_window == 0


def test_gather_window_bounds_the_wait_for_a_stream_that_left():
    backbone = StandInBackbone()
    batcher = BackboneBatcher(backbone, gather_window_s=0.05)
    gone = _start(_feed(batcher, [1.0], []))
    gone.join(60)
    # The previous batch was the thread that left: the next one waits one window, then runs.
    with batcher.lease(_frame(2.0)) as features:
        assert torch.equal(features.last_hidden_state, _frame(2.0)[None] * 2)
    assert batcher.stats().closed_by_window == 1


def test_backbone_error_reaches_every_stream_of_the_batch_and_the_batcher_recovers():
    backbone = StandInBackbone(hold_first=True, fail_on_call=2)
    batcher = BackboneBatcher(backbone, gather_window_s=BIG_WINDOW_S)
    seen_a: list = []
    seen_b: list = []
    first = _start(_feed(batcher, [1.0, 2.0, 5.0], seen_a))
    assert backbone.first_started.wait(60)
    second = _start(_feed(batcher, [3.0, 6.0], seen_b))
    assert batcher.wait_for_queued(1, timeout=60)
    backbone.release_first.set()
    first.join(60)
    second.join(60)
    # [a:1] alone, then [a:2, b:3] fails for both, then [a:5, b:6] runs: no lease left behind.
    assert backbone.sizes == [1, 2, 2]
    assert isinstance(seen_a[1][1], RuntimeError) and isinstance(seen_b[0][1], RuntimeError)
    for value, features in [seen_a[2], seen_b[1]]:
        assert torch.equal(features, _frame(value)[None] * 2)


def test_max_batch_caps_one_backbone_pass():
    backbone = StandInBackbone(hold_first=True)
    batcher = BackboneBatcher(backbone, gather_window_s=0.05, max_batch=2)
    first = _start(_feed(batcher, [1.0], []))
    assert backbone.first_started.wait(60)
    others = [_start(_feed(batcher, [float(v)], [])) for v in (2, 3, 4)]
    assert batcher.wait_for_queued(3, timeout=60)
    backbone.release_first.set()
    for thread in [first, *others]:
        thread.join(60)
    assert backbone.sizes == [1, 2, 1]
    assert batcher.stats().closed_full == 1


def test_precomputed_features_are_only_served_for_the_batched_frame():
    class Detector(torch.nn.Module):
        def get_vision_features(self, pixel_values: torch.Tensor) -> str:
            return "computed"

    detector = Detector()
    frame = _frame(1.0)
    with precomputed_vision_features(detector, frame, "batched"):
        assert detector.get_vision_features(pixel_values=frame.unsqueeze(0)) == "batched"
        assert detector.get_vision_features(pixel_values=_frame(5.0)[None]) == "computed"
    assert detector.get_vision_features(pixel_values=frame[None]) == "computed"


def test_batched_backbone_is_bit_identical_on_cpu_for_what_the_detector_reads(tiny_tracker):
    detector = tiny_tracker.model.detector_model
    processor = tiny_tracker.processor
    frames = [
        processor(images=moving_shapes(i)[:, :, ::-1].copy(), return_tensors="pt").pixel_values[0]
        for i in (0, 9, 17)
    ]
    with torch.inference_mode():
        singles = [detector.get_vision_features(pixel_values=f[None]) for f in frames]
        batched = detector.get_vision_features(pixel_values=torch.stack(frames))
    for index, single in enumerate(singles):
        assert torch.equal(single.last_hidden_state, batched.last_hidden_state[index : index + 1])
        # The detector reads every FPN level but the last (Sam3Model.forward: [:-1]).
        for level in range(len(single.fpn_hidden_states) - 1):
            assert torch.equal(
                single.fpn_hidden_states[level], batched.fpn_hidden_states[level][index : index + 1]
            )
            assert torch.equal(
                single.fpn_position_encoding[level],
                batched.fpn_position_encoding[level][index : index + 1],
            )


@pytest.fixture(scope="module")
def batched_tracker(tiny_model_dir) -> Sam3VideoTracker:
    """Same checkpoint and object cap as ``tiny_tracker``, with batching on.

    The window is generous so batches form however loaded the test machine is; only the last
    round (one stream finishes a frame early) waits for it once.
    """
    return Sam3VideoTracker.from_pretrained(
        str(tiny_model_dir),
        device="cpu",
        max_num_objects=3,
        batch_streams=True,
        gather_window_ms=500,
    )


STREAMS = 3
FRAMES = 10
# Every track shown from its first frame and none ended by a rule: the comparison reads each
# frame's detections and the sessions' bytes, and the track rules are tested on their own.
TRACK_RULES_OFF = {"confirm_frames": 1, "hotstart_delay": 0, "max_unmatched_frames": None}


def _stream_frame(stream: int, index: int) -> np.ndarray:
    return moving_shapes(index + 11 * stream)


def _process(registry: SessionRegistry, stream: int, index: int):
    return registry.process(
        _stream_frame(stream, index),
        video_identifier=f"cam-{stream}",
        frame_id=index,
        class_names="person, car",
        threshold=0.0,
    )


def test_batched_streams_match_unbatched_outputs_exactly(tiny_tracker, batched_tracker):
    plain = SessionRegistry(tiny_tracker, **TRACK_RULES_OFF)
    expected: dict[int, list] = {s: [] for s in range(STREAMS)}

    def feed_in_turn() -> None:
        for index in range(FRAMES):
            for stream in range(STREAMS):
                expected[stream].append(_process(plain, stream, index))

    # Off the main thread: on a loaded 2-core machine libgomp spins hardest for a process's
    # only OpenMP team, and this loop measured 6x slower in pytest's main thread.
    _start(feed_in_turn).join(300)

    batched = SessionRegistry(batched_tracker, **TRACK_RULES_OFF)
    got: dict[int, list] = {s: [] for s in range(STREAMS)}

    def feed(stream: int) -> None:
        for index in range(FRAMES):
            got[stream].append(_process(batched, stream, index))

    threads = [_start(lambda s=s: feed(s)) for s in range(STREAMS)]
    for thread in threads:
        thread.join(120)
    assert all(len(got[s]) == FRAMES for s in range(STREAMS))
    assert batched_tracker.batching_stats().largest_batch >= 2

    for stream in range(STREAMS):
        for index, (want, have) in enumerate(zip(expected[stream], got[stream], strict=True)):
            where = f"stream {stream} frame {index}"
            assert len(want) > 0, where
            assert np.array_equal(want.tracker_id, have.tracker_id), where
            assert np.array_equal(want.class_id, have.class_id), where
            assert np.array_equal(want.confidence, have.confidence), where
            assert np.array_equal(want.data["tracker_score"], have.data["tracker_score"]), where
            assert np.array_equal(want.mask, have.mask), where
        # Sessions hold the same tensors: no batch-sized storage kept alive through a slice.
        assert plain.stats(f"cam-{stream}") == batched.stats(f"cam-{stream}")


@pytest.mark.parametrize("size", [(96, 128), (240, 320), (1080, 1920), (50, 60)])
def test_tensor_preprocess_gives_the_processors_pixels_exactly(tiny_tracker, size):
    rgb = np.random.default_rng(sum(size)).integers(0, 256, (*size, 3), dtype=np.uint8)
    preprocess = TensorPreprocessor.from_processor(tiny_tracker.processor, torch.device("cpu"))
    assert preprocess is not None
    want = tiny_tracker.processor(images=rgb, return_tensors="pt").pixel_values[0]
    have = preprocess(rgb)
    assert have.shape == want.shape and have.dtype == want.dtype
    assert torch.equal(have, want)


def test_unmirrored_processor_configuration_falls_back_to_the_processor(tiny_tracker):
    image_processor = SimpleNamespace(**vars(tiny_tracker.processor.image_processor))
    image_processor.do_center_crop = True
    assert TensorPreprocessor.from_processor(image_processor, torch.device("cpu")) is None


def test_compile_vision_is_ignored_on_cpu_with_a_warning(tiny_tracker, caplog):
    encoder = tiny_tracker.model.detector_model.vision_encoder
    with caplog.at_level(logging.WARNING, logger="tracker.compile"):
        assert not compile_vision_encoder(tiny_tracker.model, torch.device("cpu"), max_batch=8)
    assert "forward" not in vars(encoder)
    assert "CUDA" in caplog.text


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.gpu
@needs_cuda
def test_tensor_preprocess_matches_the_processor_on_cuda(tiny_tracker):
    device = torch.device("cuda")
    rgb = np.random.default_rng(0).integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    preprocess = TensorPreprocessor.from_processor(tiny_tracker.processor, device)
    want = tiny_tracker.processor(images=rgb, device=device, return_tensors="pt").pixel_values[0]
    torch.testing.assert_close(preprocess(rgb), want, atol=0, rtol=0)


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_batched_and_compiled_backbone_match_on_cuda(tiny_model_dir, dtype):
    """On GPU batched/compiled kernels may round differently: masks agree on >= 99% of pixels."""
    reference = Sam3VideoTracker.from_pretrained(
        str(tiny_model_dir), device="cuda", dtype=dtype, max_num_objects=3
    )
    fast = Sam3VideoTracker.from_pretrained(
        str(tiny_model_dir),
        device="cuda",
        dtype=dtype,
        max_num_objects=3,
        batch_streams=True,
        gather_window_ms=500,
        compile_vision=True,
    )
    want_registry = SessionRegistry(reference, **TRACK_RULES_OFF)
    have_registry = SessionRegistry(fast, **TRACK_RULES_OFF)
    got: dict[int, list] = {s: [] for s in range(2)}

    def feed(stream: int) -> None:
        for index in range(6):
            got[stream].append(_process(have_registry, stream, index))

    threads = [_start(lambda s=s: feed(s)) for s in range(2)]
    for thread in threads:
        thread.join(600)
    for stream in range(2):
        for index in range(6):
            want = _process(want_registry, stream, index)
            have = got[stream][index]
            assert np.array_equal(want.tracker_id, have.tracker_id)
            np.testing.assert_allclose(want.confidence, have.confidence, atol=2e-2)
            assert (want.mask == have.mask).mean() >= 0.99
