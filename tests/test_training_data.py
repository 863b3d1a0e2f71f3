"""The synthetic shapes data: deterministic clips whose truth is exactly what is drawn."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest
import supervision as sv

from tracker.training import (
    COLOURS,
    SHAPE_KINDS,
    Placement,
    SceneConfig,
    SyntheticClip,
    detector_samples,
    draw_background,
    draw_shape_mask,
    generate_clip,
    mot_rows,
    render_frame,
    write_clip_mp4,
    write_mot_gt,
)

HEIGHT, WIDTH = 64, 80
BUSY = SceneConfig(objects=5, min_size=12, max_size=28, occlusion=1.0)
COMINGS_AND_GOINGS = SceneConfig(
    objects=4, min_size=10, max_size=20, speed=(2.0, 4.0), enter_fraction=0.5,
    leave_fraction=0.5, occlusion=0.0,
)  # fmt: skip


def _clip(seed: int, scene: SceneConfig = BUSY, frames: int = 16) -> SyntheticClip:
    return generate_clip(seed, frames=frames, height=HEIGHT, width=WIDTH, scene=scene)


def _flat(height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    return np.full((height, width, 3), 90, dtype=np.uint8)


def test_the_same_seed_gives_an_identical_clip_and_another_seed_does_not() -> None:
    first, again, other = _clip(11), _clip(11), _clip(12)
    assert all(np.array_equal(a, b) for a, b in zip(first.images, again.images, strict=True))
    for truth, repeat in zip(first.truths, again.truths, strict=True):
        assert truth.object_ids == repeat.object_ids
        assert np.array_equal(truth.masks(), repeat.masks())
        assert np.array_equal(truth.boxes(), repeat.boxes())
    assert not all(np.array_equal(a, b) for a, b in zip(first.images, other.images, strict=True))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_masks_are_exactly_the_pixels_painted_in_the_objects_colour(seed: int) -> None:
    clip = _clip(seed)
    for image, truth in zip(clip.images, clip.truths, strict=True):
        for name, bgr in COLOURS.items():
            painted = (image == bgr).all(axis=2)  # (H, W) bool
            masks = [obj.mask for obj in truth.objects if obj.colour == name]
            union = np.any(masks, axis=0) if masks else np.zeros_like(painted)
            assert np.array_equal(painted, union), f"frame {truth.index}, {name}"


def test_generated_clips_contain_partial_occlusions() -> None:
    clip = _clip(3, frames=24)
    fractions = [obj.visible_fraction for truth in clip.truths for obj in truth.objects]
    assert min(fractions) < 0.9, "occlusion=1.0 put no object partly behind another"


def test_occlusion_removes_the_hidden_pixels_from_the_back_objects_mask() -> None:
    back = Placement(1, "square", "red", center=(40, 32), radius=16, depth=0)
    front = Placement(2, "circle", "blue", center=(50, 32), radius=8, depth=1)
    image, truth = render_frame(_flat(), [front, back])
    square = draw_shape_mask("square", height=HEIGHT, width=WIDTH, center=(40, 32), radius=16)
    circle = draw_shape_mask("circle", height=HEIGHT, width=WIDTH, center=(50, 32), radius=8)
    back_truth, front_truth = truth.get(1), truth.get(2)
    assert back_truth is not None and front_truth is not None
    assert np.array_equal(back_truth.mask, square & ~circle)
    assert np.array_equal(front_truth.mask, circle)
    assert 0 < back_truth.visible_fraction < 1 and front_truth.visible_fraction == 1
    assert (image[square & circle] == COLOURS["blue"]).all()


def test_a_fully_hidden_object_is_absent_from_the_truth() -> None:
    hidden = Placement(1, "square", "red", center=(40, 32), radius=6, depth=0)
    cover = Placement(2, "circle", "green", center=(40, 32), radius=14, depth=1)
    image, truth = render_frame(_flat(), [hidden, cover])
    assert truth.object_ids == [2]
    assert not (image == COLOURS["red"]).all(axis=2).any()


def test_an_object_outside_the_frame_is_absent_and_one_cut_by_the_edge_is_clipped() -> None:
    outside = Placement(1, "star", "white", center=(-30, 10), radius=10)
    cut = Placement(2, "hexagon", "cyan", center=(2, 30), radius=10)
    _, truth = render_frame(_flat(), [outside, cut])
    assert truth.object_ids == [2]
    obj = truth.get(2)
    assert obj is not None and obj.box[0] == 0


def test_entering_objects_appear_mid_clip_and_leaving_ones_are_gone_before_the_end() -> None:
    clip = _clip(5, COMINGS_AND_GOINGS, frames=24)
    entering = [p for p in clip.plans if p.enter_frame is not None]
    leaving = [p for p in clip.plans if p.leave_frame is not None]
    assert entering and leaving
    for plan in entering:
        seen = clip.visible_frames(plan.object_id)
        assert seen, f"object {plan.object_id} never came in"
        assert plan.enter_frame is not None and plan.enter_frame < seen[0] <= plan.enter_frame + 4
    last = len(clip) - 1
    for plan in leaving:
        seen = clip.visible_frames(plan.object_id)
        assert seen and seen[-1] < last, f"object {plan.object_id} never left"
        x, y = plan.centers[seen[-1] + 1]
        assert not (0 <= x < WIDTH and 0 <= y < HEIGHT), "it left the frame, not hid"
        if plan.enter_frame is None:
            assert seen[0] == 0


def test_ids_keep_their_shape_and_colour_in_every_frame() -> None:
    clip = _clip(7, frames=20)
    plans = {plan.object_id: plan for plan in clip.plans}
    for truth in clip.truths:
        assert len(set(truth.object_ids)) == len(truth.object_ids)
        for obj in truth.objects:
            assert (obj.kind, obj.colour) == (
                plans[obj.object_id].kind,
                plans[obj.object_id].colour,
            )
    assert sum(len(clip.visible_frames(i)) > 1 for i in plans) >= 2


def test_boxes_are_supervisions_boxes_of_the_masks() -> None:
    clip = _clip(8)
    for truth in clip.truths:
        if truth.objects:
            assert np.array_equal(truth.boxes(), sv.mask_to_xyxy(truth.masks()))


def test_concepts_are_the_shapes_and_coloured_shapes_seen() -> None:
    clip = _clip(9)
    seen = clip.seen_objects()
    assert clip.concepts() == sorted({obj.kind for obj in seen})
    assert clip.concepts(coloured=True) == sorted({f"{o.colour} {o.kind}" for o in seen})
    assert seen[0].text == seen[0].kind
    assert seen[0].matches(f"  {seen[0].colour.upper()}   {seen[0].kind} ")


def test_detector_samples_give_every_instance_to_positives_and_none_to_negatives() -> None:
    placements = [
        Placement(1, "circle", "red", center=(15, 15), radius=8),
        Placement(2, "circle", "blue", center=(60, 40), radius=8),
        Placement(3, "star", "red", center=(30, 45), radius=10),
    ]
    _, truth = render_frame(_flat(), placements)
    samples = {s.text: s for s in detector_samples(truth, coloured=True)}
    assert samples["circle"].object_ids == (1, 2) and samples["circle"].masks.shape == (2, 64, 80)
    assert samples["red circle"].object_ids == (1,)
    assert samples["red star"].present
    negatives = [s for s in samples.values() if not s.present]
    assert {s.text for s in negatives} >= set(SHAPE_KINDS) - {"circle", "star"}
    assert {"green circle", "blue star"} <= {s.text for s in negatives}, "hard negatives"
    assert "red circle" not in {s.text for s in negatives}
    for sample in negatives:
        assert sample.masks.shape == (0, HEIGHT, WIDTH) and sample.boxes.shape == (0, 4)
    some = detector_samples(truth, max_negatives=2, rng=np.random.default_rng(0))
    assert sum(not s.present for s in some) == 2 and sum(s.present for s in some) == 2


def test_the_mp4_writer_round_trips_frame_count_and_size(tmp_path: Path) -> None:
    clip = _clip(4, frames=12)
    path = write_clip_mp4(clip, tmp_path / "clip.mp4")
    with av.open(str(path)) as container:
        decoded = [frame.to_ndarray(format="bgr24") for frame in container.decode(video=0)]
    assert len(decoded) == 12 and decoded[0].shape == (HEIGHT, WIDTH, 3)
    error = np.abs(decoded[5].astype(int) - clip.images[5].astype(int)).mean()
    assert error < 8, f"the encoding is far from the frames (mean error {error:.1f})"


def test_the_mp4_writer_refuses_odd_sizes(tmp_path: Path) -> None:
    clip = generate_clip(1, frames=2, height=33, width=48, scene=SceneConfig(max_size=16))
    with pytest.raises(ValueError, match="height"):
        write_clip_mp4(clip, tmp_path / "odd.mp4")


def test_mot_rows_are_the_truth_boxes_counted_from_frame_one(tmp_path: Path) -> None:
    clip = _clip(6, frames=8)
    rows = mot_rows(clip)
    assert len(rows) == sum(len(truth.objects) for truth in clip.truths)
    frame, object_id, x, y, w, h = rows[0]
    first = clip.truths[frame - 1].get(object_id)
    assert first is not None
    assert (x, y, x + w, y + h) == tuple(float(v) for v in first.box)
    kind = first.kind
    assert {row[1] for row in mot_rows(clip, kind)} == {
        obj.object_id for truth in clip.truths for obj in truth.matching(kind)
    }
    lines = write_mot_gt(clip, tmp_path / "gt.txt").read_text().splitlines()
    assert len(lines) == len(rows) and lines[0].split(",")[:2] == [str(frame), str(object_id)]


def test_every_background_kind_stays_below_object_colours() -> None:
    rng = np.random.default_rng(0)
    for kind in ("flat", "gradient", "noise", "stripes"):
        background = draw_background(kind, rng, height=HEIGHT, width=WIDTH)
        assert background.shape == (HEIGHT, WIDTH, 3) and background.max() < 255


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: SceneConfig(occlusion=1.5), "occlusion"),
        (lambda: SceneConfig(kinds=("circle", "blob")), "kinds"),
        (lambda: SceneConfig(min_size=30, max_size=20), "min_size"),
        (lambda: generate_clip(-1, frames=2, height=64, width=64), "seed"),
        (lambda: generate_clip(0, frames=2, height=32, width=64), "max_size"),
        (lambda: generate_clip(0, frames=0, height=64, width=64), "frames"),
    ],
)
def test_bad_settings_raise_one_line_naming_the_field(
    make: Callable[[], object], field: str
) -> None:
    with pytest.raises(ValueError, match=rf"^{field}:"):
        make()
