"""SessionRegistry: reseed rules, id continuity, inputs, expiry, errors (real tiny SAM3)."""

from __future__ import annotations

import logging
import threading

import numpy as np
import pytest

from tests.frames import moving_shapes
from tests.scripted_tracker import ScriptedTracker
from tracker import RESEED_TRIGGERS, InferenceError, ReseedReason, SessionRegistry
from tracker.inputs import normalise_class_names, to_rgb

# Tests of other rules pass ``confirm_frames=1`` so a track is shown on its first frame, as they
# assume; confirmation itself is tested with the track rules.


def _run(registry: SessionRegistry, frames: range, **kwargs):
    kwargs.setdefault("video_identifier", "cam")
    kwargs.setdefault("class_names", "person")
    kwargs.setdefault("threshold", 0.0)
    return [registry.process(moving_shapes(i), frame_id=i, **kwargs) for i in frames]


def test_first_frames_produce_detections_in_design_format(tiny_tracker):
    registry = SessionRegistry(tiny_tracker)
    detections = _run(registry, range(2), class_names=["person", "car"])[-1]
    assert len(detections) > 0
    assert detections.xyxy.dtype == np.float32
    assert detections.mask.dtype == bool and detections.mask.shape[1:] == (96, 128)
    assert detections.tracker_id.dtype == np.int64
    assert set(detections.data["class_name"]) <= {"person", "car"}
    names = ["person", "car"]
    assert all(
        names[c] == n
        for c, n in zip(detections.class_id, detections.data["class_name"], strict=True)
    )
    assert "tracker_score" in detections.data
    # xyxy is the tight box of each mask
    for box, mask in zip(detections.xyxy, detections.mask, strict=True):
        ys, xs = np.nonzero(mask)
        assert (box[0], box[1]) == (xs.min(), ys.min())


def test_consecutive_frames_keep_one_session_and_no_reseed(tiny_tracker):
    registry = SessionRegistry(tiny_tracker)
    _run(registry, range(0, 10, 3))  # frame ids may skip forward (drops)
    stats = registry.stats("cam")
    assert stats.reseeds == 0 and stats.frames_processed == 4 and len(registry) == 1


def test_reseed_triggers_are_the_documented_rule_in_order():
    assert RESEED_TRIGGERS == (
        "new session",
        "epoch changed",
        "frame_id went backwards",
        "reset by caller",
    )
    assert tuple(ReseedReason) == RESEED_TRIGGERS


def test_a_class_change_is_applied_to_the_running_session_and_is_no_reseed(tiny_tracker, caplog):
    """The rule's other half; tests/test_tracker_live_concepts.py shows what happens to tracks."""
    registry = SessionRegistry(tiny_tracker)
    _run(registry, range(3), class_names="person, car")
    caplog.set_level(logging.INFO, logger="tracker")
    after = _run(registry, range(3, 6), class_names="car, dog")
    stats = registry.stats("cam")
    assert stats.reseeds == 0 and stats.frames_processed == 6
    assert not [r for r in caplog.records if "reseeding" in r.getMessage()]
    names = ("car", "dog")
    assert all(
        names[c] == n for d in after for c, n in zip(d.class_id, d.data["class_name"], strict=True)
    )


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"epoch": 1}, ReseedReason.EPOCH_CHANGED),
        ({"frame_id": 0}, ReseedReason.FRAME_ID_WENT_BACKWARDS),
        ({"reset": True}, ReseedReason.RESET_BY_CALLER),
    ],
    ids=["epoch", "frame_id_backwards", "reset"],
)
def test_reseed_trigger_continues_ids_above_previous(tiny_tracker, caplog, change, reason):
    registry = SessionRegistry(tiny_tracker, confirm_frames=1)
    first = _run(registry, range(3))
    highest = registry.stats("cam").highest_tracker_id
    assert highest >= max(first[-1].tracker_id)
    caplog.set_level(logging.INFO, logger="tracker")
    if change.get("reset"):
        registry.reset("cam")
        change = {}
    after = registry.process(
        moving_shapes(5),
        video_identifier="cam",
        frame_id=change.get("frame_id", 5),
        class_names=change.get("class_names", "person"),
        threshold=0.0,
        epoch=change.get("epoch", 0),
    )
    stats = registry.stats("cam")
    assert stats.reseeds == 1
    assert len(after) > 0 and after.tracker_id.min() > highest
    assert [r.getMessage() for r in caplog.records if "reseeding" in r.getMessage()] == [
        f"reseeding cam: {reason}"
    ]


def test_class_names_normalised_so_equivalent_lists_do_not_reseed(tiny_tracker):
    registry = SessionRegistry(tiny_tracker)
    registry.process(moving_shapes(0), video_identifier="c", frame_id=0, class_names="person, car")
    registry.process(
        moving_shapes(1),
        video_identifier="c",
        frame_id=1,
        class_names=[" person", "car", "car", ""],
    )
    assert registry.stats("c").reseeds == 0
    assert normalise_class_names(" a, b,,a ,c") == ("a", "b", "c")


def test_empty_class_names_return_empty_detections_without_running_model(tiny_tracker):
    registry = SessionRegistry(tiny_tracker)
    detections = registry.process(
        moving_shapes(0), video_identifier="e", frame_id=0, class_names=" , "
    )
    assert len(detections) == 0 and len(registry) == 0


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((10, 10, 3), dtype=np.float32), "uint8"),
        (np.zeros((10, 10, 3, 1), dtype=np.uint8), "shape"),
        (np.zeros((10, 10, 2), dtype=np.uint8), "shape"),
        (np.zeros((0, 10, 3), dtype=np.uint8), "empty"),
        ([[1, 2]], "numpy"),
    ],
)
def test_bad_images_raise_value_error_naming_the_problem(tiny_tracker, image, message):
    registry = SessionRegistry(tiny_tracker)
    with pytest.raises(ValueError, match=message):
        registry.process(image, video_identifier="x", frame_id=0, class_names="person")


@pytest.mark.parametrize("threshold", [-0.1, 1.5, "high"])
def test_threshold_outside_unit_interval_raises(tiny_tracker, threshold):
    registry = SessionRegistry(tiny_tracker)
    with pytest.raises(ValueError, match="threshold"):
        registry.process(
            moving_shapes(0), video_identifier="x", frame_id=0, class_names="a", threshold=threshold
        )


def test_gray_and_bgra_are_converted_and_bgr_is_swapped_to_rgb():
    bgr = np.zeros((2, 2, 3), dtype=np.uint8)
    bgr[..., 0] = 255  # blue in BGR
    assert to_rgb(bgr)[0, 0].tolist() == [0, 0, 255]
    bgra = np.dstack([bgr, np.full((2, 2), 7, dtype=np.uint8)])
    assert to_rgb(bgra)[0, 0].tolist() == [0, 0, 255]
    assert to_rgb(np.full((2, 2), 9, dtype=np.uint8)).shape == (2, 2, 3)


def test_model_receives_rgb_frames():
    stand_in = ScriptedTracker(lambda n: ["a"])  # records what the model side receives
    registry = SessionRegistry(stand_in)
    frame = np.zeros((8, 8, 3), dtype=np.uint8)
    frame[..., 2] = 200  # red in BGR
    registry.process(frame, video_identifier="v", frame_id=0, class_names="a")
    assert stand_in.received[0][0, 0].tolist() == [200, 0, 0]


def test_threshold_filters_on_confidence(tiny_tracker):
    registry = SessionRegistry(tiny_tracker, confirm_frames=1)
    everything = _run(registry, range(1), video_identifier="t0")[0]
    registry2 = SessionRegistry(tiny_tracker, confirm_frames=1)
    cut = float(np.median(everything.confidence))
    filtered = _run(registry2, range(1), video_identifier="t1", threshold=cut)[0]
    assert len(filtered) == int((everything.confidence >= cut).sum())
    assert (filtered.confidence >= cut).all()


def test_idle_sessions_expire_and_lru_closes_beyond_max_sessions(tiny_tracker):
    now = [0.0]
    registry = SessionRegistry(
        tiny_tracker, max_sessions=2, idle_timeout_s=10.0, clock=lambda: now[0]
    )
    for name in ("a", "b"):
        registry.process(moving_shapes(0), video_identifier=name, frame_id=0, class_names="p")
    now[0] = 5.0
    registry.process(moving_shapes(1), video_identifier="a", frame_id=1, class_names="p")
    registry.process(moving_shapes(0), video_identifier="c", frame_id=0, class_names="p")
    assert registry.identifiers() == ["a", "c"]  # b was least recently used
    now[0] = 16.0
    registry.expire_idle()
    assert len(registry) == 0


def test_closed_identifier_continues_ids_when_it_returns(tiny_tracker):
    registry = SessionRegistry(tiny_tracker)
    first = _run(registry, range(2))[-1]
    registry.close("cam")
    again = _run(registry, range(2))[-1]
    assert again.tracker_id.min() > first.tracker_id.max()


def test_model_error_raises_for_that_call_and_next_frame_reseeds(tiny_tracker, monkeypatch):
    registry = SessionRegistry(tiny_tracker, confirm_frames=1)
    before = _run(registry, range(2))[-1]
    original = tiny_tracker.step
    calls = {"n": 0}

    def failing_once(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("CUDA out of memory (simulated)")
        return original(*args, **kwargs)

    monkeypatch.setattr(tiny_tracker, "step", failing_once)
    with pytest.raises(InferenceError, match="frame 2 of cam"):
        registry.process(
            moving_shapes(2),
            video_identifier="cam",
            frame_id=2,
            class_names="person",
            threshold=0.0,
        )
    after = registry.process(
        moving_shapes(3), video_identifier="cam", frame_id=3, class_names="person", threshold=0.0
    )
    assert len(after) > 0 and after.tracker_id.min() > before.tracker_id.max()


def test_threads_sharing_a_registry_get_the_same_answers_as_sequential(tiny_tracker):
    sequential = SessionRegistry(tiny_tracker)
    expected = {name: _run(sequential, range(4), video_identifier=name) for name in ("x", "y")}
    shared = SessionRegistry(tiny_tracker)
    results: dict[str, list] = {}
    errors: list[BaseException] = []

    def worker(name: str) -> None:
        try:
            results[name] = _run(shared, range(4), video_identifier=name)
        except BaseException as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(n,)) for n in ("x", "y")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for name in ("x", "y"):
        for got, want in zip(results[name], expected[name], strict=True):
            assert np.array_equal(got.mask, want.mask)
            assert np.array_equal(got.tracker_id, want.tracker_id)


def test_lost_objects_are_evicted_and_ids_never_reused():
    # Scripted stand-in: random weights cannot make an object leave the scene on cue.
    script = {n: ["a", "b"] for n in range(5)} | {n: ["b"] for n in range(5, 12)}
    stand_in = ScriptedTracker(lambda n: script.get(n, ["a", "b"]))
    registry = SessionRegistry(stand_in, confirm_frames=1, lost_object_frames=4)
    seen = []
    for i in range(14):
        detections = registry.process(
            np.zeros((8, 8, 3), np.uint8), video_identifier="s", frame_id=i, class_names="x"
        )
        seen.append(detections.tracker_id.tolist())
    assert seen[0] == [1, 2]
    assert seen[6] == [2]
    stats = registry.stats("s")
    assert stats.objects_evicted == 1 and stand_in.sessions[0].removed == [0]
    # "a" comes back at frame 12 as a new object with a new id, never 1 again
    assert sorted(seen[12]) == [2, 3]


class _BlockingTracker(ScriptedTracker):
    """Scripted stand-in whose step waits until the test lets it finish (a frame in flight)."""

    def __init__(self) -> None:
        super().__init__(lambda n: ["a"])
        self.entered = threading.Event()
        self.release = threading.Event()

    def step(self, session, rgb, frame_idx):
        self.entered.set()
        assert self.release.wait(30)
        return super().step(session, rgb, frame_idx)

    def held(self, session):
        frames, objects, _ = super().held(session)
        return frames, objects, 1000  # a figure the statistics must carry through


def test_close_and_stats_during_a_frame_in_flight_neither_break_nor_wait_for_it():
    stand_in = _BlockingTracker()
    registry = SessionRegistry(stand_in, confirm_frames=1)
    frame = np.zeros((8, 8, 3), np.uint8)
    stand_in.release.set()
    registry.process(frame, video_identifier="busy", frame_id=0, class_names="a")
    stand_in.release.clear()
    stand_in.entered.clear()
    outcome: dict[str, object] = {}

    def in_flight() -> None:
        try:
            outcome["detections"] = registry.process(
                frame, video_identifier="busy", frame_id=1, class_names="a"
            )
        except BaseException as error:  # reported below
            outcome["error"] = error

    worker = threading.Thread(target=in_flight)
    worker.start()
    assert stand_in.entered.wait(30)
    assert registry.stats("busy").frames_processed == 1  # answered while the frame is in flight
    registry.close("busy")
    stand_in.release.set()
    worker.join(30)
    assert "error" not in outcome and len(outcome["detections"]) == 1
    again = registry.process(frame, video_identifier="busy", frame_id=2, class_names="a")
    assert again.tracker_id.min() > outcome["detections"].tracker_id.max()


def test_wait_idle_waits_for_the_frame_still_inside_the_model():
    stand_in = _BlockingTracker()
    registry = SessionRegistry(stand_in)
    worker = threading.Thread(
        target=registry.process,
        args=(np.zeros((8, 8, 3), np.uint8),),
        kwargs={"video_identifier": "cam", "frame_id": 0, "class_names": "a"},
    )
    worker.start()
    assert stand_in.entered.wait(5)
    assert not registry.wait_idle(0.05, "cam")
    assert registry.wait_idle(0.05, "other-stream")
    assert registry.all_stats() == {}  # no frame finished yet, and reading never waits
    stand_in.release.set()
    assert registry.wait_idle(5, "cam") and registry.wait_idle(5)
    worker.join(5)
    assert registry.all_stats()["cam"].bytes_held == 1000


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"video_identifier": None}, "video_identifier must be a non-empty string, got None"),
        ({"video_identifier": ""}, "video_identifier must be a non-empty string"),
        ({"frame_id": "x"}, "frame_id must be an integer, got 'x'"),
        ({"frame_id": 1.5}, "frame_id must be an integer"),
        ({"frame_id": True}, "frame_id must be an integer"),
        ({"epoch": "0"}, "epoch must be an integer"),
    ],
)
def test_process_refuses_bad_frame_keys_by_name_before_the_model(keys, message):
    stand_in = ScriptedTracker(lambda n: ["a"])
    registry = SessionRegistry(stand_in)
    frame = np.zeros((8, 8, 3), dtype=np.uint8)
    arguments = {"video_identifier": "v", "frame_id": 0, "class_names": "a", **keys}
    with pytest.raises(ValueError, match=message):
        registry.process(frame, **arguments)
    assert stand_in.received == []  # refused before the model saw the frame
    registry.process(frame, video_identifier="v", frame_id=np.int64(0), class_names="a")
    assert len(stand_in.received) == 1  # a numpy integer frame id is an integer


@pytest.mark.parametrize("overrides", [{"trust_remote_code": True}, {"output_loading_info": True}])
def test_from_pretrained_passes_only_sam3_video_config_fields_to_the_loader(tmp_path, overrides):
    from tracker import Sam3VideoTracker

    name = next(iter(overrides))
    with pytest.raises(ValueError, match=f"{name} are not Sam3VideoConfig fields"):
        # Refused before any file is read: this directory does not even exist.
        Sam3VideoTracker.from_pretrained(str(tmp_path / "nowhere"), device="cpu", **overrides)


@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("cuda", "device cuda is not available on this machine: CUDA is not available"),
        ("cuda:0", "device cuda:0 is not available on this machine: CUDA is not available"),
        ("mps", "device mps is not available on this machine: Apple MPS is not available"),
        ("tpu", "device 'tpu' is not a device name"),
    ],
)
def test_a_device_this_machine_lacks_is_named_before_loading(
    tmp_path, monkeypatch, device, message
):
    import torch

    from tracker import ModelLoadError, Sam3VideoTracker

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(ModelLoadError, match=message):
        Sam3VideoTracker.from_pretrained(str(tmp_path / "nowhere"), device=device)


def test_a_cuda_index_beyond_the_machine_s_gpus_is_named(monkeypatch):
    import torch

    from tracker import ModelLoadError
    from tracker.model import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(ModelLoadError, match=r"cuda:2 .*CUDA has 2 device\(s\)"):
        resolve_device("cuda:2")
