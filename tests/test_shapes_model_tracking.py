"""Tracking behaviour on the bundled small SAM3, which random weights could never show.

The model is the real checkpoint shipped in ``tracker/checkpoints/sam3-shapes`` (trained on
synthetic shapes, loaded by ``from_pretrained``), run through the streaming path a camera takes
(``SessionRegistry``: confirmation, hotstart, eviction, budget). The clip is scripted, not drawn
from a seed, so each test can name its moment: a red circle crosses the whole clip, a green
square leaves through the bottom edge, a blue triangle enters from the right. The model knows
colour words only (shape names do not bind yet, issue 16), so the prompts are colours.
"""

from __future__ import annotations

import json
import pathlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import supervision as sv

from pipeline import InferencePipeline
from pipeline.sources.sample_clip import write_sample_clip
from tracker import Sam3VideoTracker, SegmentAnything3, SessionRegistry, is_tiny_model
from tracker.shapes_checkpoint import (
    CARD_FILE,
    is_shapes_model,
    shapes_model_path,
    shapes_model_threshold,
)
from tracker.training.backgrounds import draw_background
from tracker.training.scenes import Placement, render_frame
from tracker.training.shapes_model import TRACK_FROM_DETECTIONS
from tracker.training.truth import FrameTruth

SIZE = 112
FRAMES = 30
RED, GREEN, BLUE = 1, 2, 3  # the scripted objects' truth ids
GREEN_GONE = 14  # first frame without the green square
BLUE_INSIDE = 11  # first frame the blue triangle is wholly inside the frame
MAX_UNMATCHED = 3  # frames a track may go unmatched before it is removed (default 30)
MATCH_IOU = 0.5


def _placements(t: int) -> list[Placement]:
    """Frame ``t`` of the script: radius-13 shapes moving at 1.5 to 3.5 pixels a frame."""
    placements = [Placement(RED, "circle", "red", (20 + 1.5 * t, 30), 13)]
    if t < GREEN_GONE:
        placements.append(Placement(GREEN, "square", "green", (80, 60 + 3.5 * t), 13))
    placements.append(Placement(BLUE, "triangle", "blue", (130 - 3.0 * t, 85), 13))
    return placements


def scripted_clip() -> list[tuple[np.ndarray, FrameTruth]]:
    """The scripted frames (BGR) with their exact truth, over one flat background."""
    background = draw_background("flat", np.random.default_rng(0), height=SIZE, width=SIZE)
    return [
        render_frame(background, _placements(t), index=t, min_visible_pixels=30)
        for t in range(FRAMES)
    ]


@dataclass(frozen=True)
class Run:
    """One streaming run of the scripted clip: each frame's truth and output detections."""

    truths: list[FrameTruth]
    detections: list[sv.Detections]
    evictions: dict[str, int]

    def ids_on(self, object_id: int, t: int) -> list[int]:
        """Tracker ids whose mask overlaps truth object ``object_id`` by IoU >= 0.5 on ``t``."""
        truth = self.truths[t].get(object_id)
        detections = self.detections[t]
        if truth is None or detections.mask is None or len(detections) == 0:
            return []
        ious = sv.mask_iou_batch(truth.mask[None], detections.mask)[0]  # (N,)
        return [int(i) for i in detections.tracker_id[ious >= MATCH_IOU]]

    def all_ids(self, t: int) -> set[int]:
        return (
            set()
            if self.detections[t].tracker_id is None
            else set(self.detections[t].tracker_id.tolist())
        )


@pytest.fixture(scope="module")
def shapes_tracker() -> Sam3VideoTracker:
    return Sam3VideoTracker.from_pretrained(str(shapes_model_path()), device="cpu")


@pytest.fixture(scope="module")
def threshold() -> float:
    return shapes_model_threshold(shapes_model_path())


def _stream(
    registry: SessionRegistry,
    frames: list[tuple[np.ndarray, FrameTruth]],
    threshold: float,
    *,
    first_frame_id: int = 0,
) -> list[sv.Detections]:
    return [
        registry.process(
            image,
            video_identifier="camera",
            frame_id=first_frame_id + t,
            class_names=["red", "green", "blue"],
            threshold=threshold,
        )
        for t, (image, _) in enumerate(frames)
    ]


@pytest.fixture(scope="module")
def run(shapes_tracker: Sam3VideoTracker, threshold: float) -> Run:
    frames = scripted_clip()
    registry = SessionRegistry(shapes_tracker, max_objects=6, max_unmatched_frames=MAX_UNMATCHED)
    detections = _stream(registry, frames, threshold)
    evictions = dict(registry.stats("camera").evictions)
    registry.close("camera")
    return Run([truth for _, truth in frames], detections, evictions)


def test_each_shape_keeps_one_tracker_id_for_its_whole_visit(run: Run) -> None:
    red = [run.ids_on(RED, t) for t in range(FRAMES)]
    blue = [run.ids_on(BLUE, t) for t in range(BLUE_INSIDE, FRAMES)]
    assert len({i for ids in red for i in ids}) == 1, red
    assert len({i for ids in blue for i in ids}) == 1, blue
    # found on nearly every frame (frame 0 is a track's birth: confirmed on the next match)
    assert sum(bool(ids) for ids in red[1:]) >= 0.9 * (FRAMES - 1), red
    assert sum(bool(ids) for ids in blue) >= 0.6 * len(blue), blue


def test_a_shape_entering_mid_stream_gets_a_new_id_within_a_few_frames(run: Run) -> None:
    found = [t for t in range(FRAMES) if run.ids_on(BLUE, t)]
    assert found and found[0] <= BLUE_INSIDE + 6, found
    blue_id = run.ids_on(BLUE, found[0])[0]
    earlier = {i for t in range(found[0]) for i in run.ids_on(RED, t) + run.ids_on(GREEN, t)}
    assert blue_id not in earlier and blue_id > max(earlier)


def test_a_shape_leaving_is_evicted_and_its_id_never_returns(run: Run) -> None:
    green_ids = {i for t in range(GREEN_GONE) for i in run.ids_on(GREEN, t)}
    assert len(green_ids) == 1, green_ids
    (green_id,) = green_ids
    gone_by = GREEN_GONE + MAX_UNMATCHED + 2
    assert all(green_id not in run.all_ids(t) for t in range(gone_by, FRAMES))
    assert run.evictions["unmatched"] >= 1, run.evictions


def test_no_object_is_tracked_twice(run: Run) -> None:
    for t in range(FRAMES):
        for obj in run.truths[t].objects:
            assert len(run.ids_on(obj.object_id, t)) <= 1, (t, obj.object_id)


def test_a_reseed_continues_ids_above_the_old_ones(
    shapes_tracker: Sam3VideoTracker, threshold: float
) -> None:
    frames = scripted_clip()[:16]
    registry = SessionRegistry(shapes_tracker, max_objects=6, max_unmatched_frames=MAX_UNMATCHED)
    before = _stream(registry, frames[:8], threshold)
    old_ids = {int(i) for d in before for i in (d.tracker_id if d.tracker_id is not None else [])}
    assert old_ids, "the first half tracks something"
    # frame ids going back: a reconnected camera, a looped file; the session reseeds
    after = _stream(registry, frames[8:], threshold, first_frame_id=0)
    registry.close("camera")
    new_ids = {int(i) for d in after for i in (d.tracker_id if d.tracker_id is not None else [])}
    assert new_ids and min(new_ids) > max(old_ids), (old_ids, new_ids)
    rerun = Run([truth for _, truth in frames[8:]], after, {})
    assert any(rerun.ids_on(RED, t) for t in range(len(after))), "red is found again"


def test_the_image_api_finds_red_and_not_blue(
    shapes_tracker: Sam3VideoTracker, threshold: float
) -> None:
    image, truth = scripted_clip()[3]  # red circle and green square; the blue one not yet in
    assert truth.get(BLUE) is None
    model = SegmentAnything3.from_tracker(shapes_tracker)
    response = model.segment_image(
        image,
        [{"type": "text", "text": "red"}, {"type": "text", "text": "blue"}],
        output_prob_thresh=threshold,
    )
    red, blue = response.prompt_results
    assert not blue.predictions
    assert red.predictions
    best = red.predictions[0]
    mask = np.zeros((SIZE, SIZE), dtype=bool)
    for polygon in best.masks:
        mask |= sv.polygon_to_mask(np.asarray(polygon, dtype=np.int32), (SIZE, SIZE)).astype(bool)
    assert sv.mask_iou_batch(truth.get(RED).mask[None], mask[None])[0, 0] >= MATCH_IOU


def test_the_readme_offline_example_tracks_the_sample_clip(tmp_path: pathlib.Path) -> None:
    """README's "Offline, without the real weights" example, with its print replaced by a list."""
    clip = write_sample_clip(tmp_path / "sample.mp4", frames=12)
    seen: list[tuple[int, list[int], list[str]]] = []

    def show(predictions: sv.Detections, video_frame: Any) -> None:
        ids = [] if predictions.tracker_id is None else predictions.tracker_id.tolist()
        seen.append((video_frame.frame_id, ids, list(predictions.data.get("class_name", []))))

    model = shapes_model_path()
    pipeline = InferencePipeline.init(
        video_reference=str(clip),
        class_names=["green", "magenta"],
        on_prediction=show,
        model=str(model),
        threshold=shapes_model_threshold(model),
    )
    try:
        pipeline.start()
        pipeline.join()
    finally:
        pipeline.terminate()
    assert [frame_id for frame_id, _, _ in seen] == list(range(1, 13))
    later = seen[3:]
    assert all(sorted(names) == ["green", "magenta"] for _, _, names in later), seen
    assert {tuple(ids) for _, ids, _ in later} == {(1, 2)}, seen


def test_the_bundled_checkpoint_says_what_it_is_and_how_it_streams() -> None:
    path = shapes_model_path()
    config = json.loads((path / "config.json").read_text())
    card = json.loads((path / CARD_FILE).read_text())
    assert {key: config[key] for key in TRACK_FROM_DETECTIONS} == TRACK_FROM_DETECTIONS
    assert config["score_threshold_detection"] == card["calibration"]["threshold"]
    assert "synthetic shapes" in card["trained_on"]
    assert (card["image_size"], card["seed"]) == (112, 0)
    assert is_shapes_model(path) and not is_tiny_model(path)
