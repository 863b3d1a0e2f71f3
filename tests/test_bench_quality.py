"""`sam3-stream bench quality`: motmetrics glue on hand-made tracks, and a smoke run on the tiny
checkpoint (random weights: the figures mean nothing, the report's shape and ranges do)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from pipeline.bench.quality import (
    HELD_OUT_SEED_START,
    QualitySettings,
    check_concepts,
    held_out_clip,
    score_sequence,
)
from pipeline.bench.tracking_metrics import TrackScorer, mask_iou, summarise
from tracker.shapes_checkpoint import shapes_model_path, shapes_model_threshold

H, W = 12, 16


def square(x: int, y: int, side: int = 4) -> np.ndarray:
    """(H, W) bool mask of a side x side square at (x, y)."""
    mask = np.zeros((H, W), dtype=bool)
    mask[y : y + side, x : x + side] = True
    return mask


def stack(*masks: np.ndarray) -> np.ndarray:
    return np.stack(masks) if masks else np.zeros((0, H, W), dtype=bool)


A, B = square(0, 0), square(8, 6)  # two objects that never overlap


def scored(frames: list[tuple[list[int], np.ndarray, list[int], np.ndarray]]):
    scorer = TrackScorer()
    for gt_ids, gt_masks, pred_ids, pred_masks in frames:
        scorer.update(gt_ids, gt_masks, pred_ids, pred_masks)
    return summarise([scorer])


def test_perfect_tracks_score_mota_1_idf1_1_no_switch_iou_1():
    frames = [([1, 2], stack(A, B), [7, 9], stack(A, B)) for _ in range(5)]
    scores = scored(frames)
    assert (scores.mota, scores.idf1, scores.precision, scores.recall) == (1.0, 1.0, 1.0, 1.0)
    assert scores.id_switches == 0 and scores.mean_iou == 1.0
    assert (scores.false_positives, scores.false_negatives) == (0, 0)
    assert scores.mostly_tracked == 2 == scores.gt_objects and scores.matches == 10


def test_a_track_changing_id_on_its_object_is_one_switch():
    frames = [([1], stack(A), [7 if t < 3 else 8], stack(A)) for t in range(6)]
    scores = scored(frames)
    assert scores.id_switches == 1
    assert scores.mota == pytest.approx(1 - 1 / 6)
    assert scores.idf1 == pytest.approx(0.5)  # half the frames on the best track
    assert (scores.false_positives, scores.false_negatives) == (0, 0)


def test_two_tracks_swapping_objects_count_a_switch_each():
    frames = [([1, 2], stack(A, B), [7, 9] if t < 2 else [9, 7], stack(A, B)) for t in range(4)]
    assert scored(frames).id_switches == 2


def test_a_missed_object_counts_false_negatives():
    frames = [([1, 2], stack(A, B), [7], stack(A)) for _ in range(4)]
    scores = scored(frames)
    assert scores.false_negatives == 4 and scores.false_positives == 0
    assert scores.recall == pytest.approx(0.5) and scores.precision == 1.0
    assert scores.mota == pytest.approx(0.5) and scores.mostly_tracked == 1


def test_a_ghost_track_counts_false_positives():
    frames = [([1], stack(A), [7, 8], stack(A, B)) for _ in range(4)]
    scores = scored(frames)
    assert scores.false_positives == 4 and scores.false_negatives == 0
    assert scores.precision == pytest.approx(0.5) and scores.recall == 1.0
    assert scores.mota == pytest.approx(0.0)


def test_a_mask_overlapping_less_than_half_is_no_match_and_iou_is_over_matched_pairs():
    shifted = square(2, 0)  # IoU with A: 8 / 24
    close = square(0, 0, side=4) | square(0, 4, side=2)  # A plus 4 pixels: IoU 16 / 20
    assert mask_iou(stack(A), stack(shifted))[0, 0] == pytest.approx(1 / 3)
    scores = scored(
        [([1], stack(A), [7], stack(shifted)), ([1], stack(A), [7], stack(close))],
    )
    assert (scores.false_positives, scores.false_negatives, scores.matches) == (1, 1, 1)
    assert scores.mean_iou == pytest.approx(16 / 20)


def test_figures_without_truth_or_predictions_are_undefined_not_zero():
    ghost_only = scored([([], stack(), [3], stack(A))])
    assert math.isnan(ghost_only.mota) and math.isnan(ghost_only.recall)
    assert ghost_only.false_positives == 1 and ghost_only.precision == 0.0
    nothing_found = scored([([1], stack(A), [], stack())])
    assert math.isnan(nothing_found.precision) and math.isnan(nothing_found.mean_iou)


def test_sequences_pool_by_summing_counts():
    perfect = TrackScorer()
    missed = TrackScorer()
    for _ in range(3):
        perfect.update([1], stack(A), [5], stack(A))
        missed.update([1], stack(B), [], stack())
    pooled = summarise([perfect, missed])
    assert (pooled.sequences, pooled.frames, pooled.gt_objects) == (2, 6, 2)
    assert pooled.recall == pytest.approx(0.5) and pooled.false_negatives == 3


def test_scorer_refuses_a_track_id_twice_in_one_frame():
    with pytest.raises(ValueError, match="pred_ids"):
        TrackScorer().update([1], stack(A), [7, 7], stack(A, B))


def test_a_generated_clip_scored_against_its_own_truth_is_perfect():
    settings = QualitySettings(model="unused", clips=1, frames=8, width=64, height=48)
    clip = held_out_clip(settings, HELD_OUT_SEED_START)
    concept = clip.concepts()[0]
    truth_as_tracks = [
        (np.array([o.object_id for o in t.matching(concept)]), t.masks(concept))
        for t in clip.truths
    ]
    scores = summarise([score_sequence(clip, concept, truth_as_tracks)])
    assert scores.gt_instances > 0
    assert (scores.mota, scores.idf1, scores.mean_iou, scores.id_switches) == (1.0, 1.0, 1.0, 0)


def test_concepts_are_shape_names_colours_or_colour_and_shape():
    assert check_concepts([" Circle", "red  star", "circle", "Blue"]) == (
        "circle",
        "red star",
        "blue",
    )
    with pytest.raises(ValueError, match="classes: unknown concept 'person'"):
        check_concepts(["circle", "person"])


def _bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli.main", "bench", "quality", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ},
    )


def test_bench_quality_refuses_an_unknown_concept_in_one_line(tiny_model_dir):
    result = _bench("--model", str(tiny_model_dir), "--classes", "person")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "sam3-stream: error: --classes: unknown concept 'person'; use shape names "
        "(circle, square, triangle, star, hexagon, cross), colours "
        "(red, green, blue, yellow, magenta, cyan, white, orange) or a colour and a shape"
    ]


def test_bench_quality_reports_both_variants_on_a_held_out_clip(tiny_model_dir):
    result = _bench(
        "--model", str(tiny_model_dir), "--device", "cpu", "--clips", "1", "--frames", "6",
        "--size", "64x48", "--threshold", "0", "--max-objects", "2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout.splitlines()
    settings = QualitySettings(model="unused", clips=1, frames=6, width=64, height=48)
    clip = held_out_clip(settings, HELD_OUT_SEED_START)
    concepts = clip.concepts()
    # one table per variant: a title, a header, a row per concept present, then "all"
    for title in ("ours (SessionRegistry", "plain HF (PlainHFStream"):
        start = next(i for i, line in enumerate(out) if line.startswith(title))
        assert "ms/frame" in out[start] and out[start + 1].split()[:3] == ["concept", "seqs", "GT"]
        rows = [line.split()[0] for line in out[start + 2 : start + 3 + len(concepts)]]
        assert rows == [*concepts, "all"]
    assert any(line.startswith("ours / plain") for line in out)
    assert out[-2].startswith("wall time per frame: ours ")

    report = json.loads(out[-1])
    assert report["seeds"] == [HELD_OUT_SEED_START, HELD_OUT_SEED_START]
    truth_instances = sum(len(t.objects) for t in clip.truths)
    for variant in ("ours", "plain"):
        assert report[variant]["ms_per_frame"] > 0
        scores = report[variant]["scores"]
        assert list(scores) == [*concepts, "all"]
        overall = scores["all"]
        assert overall["gt_instances"] == truth_instances
        assert overall["gt_objects"] == len(clip.seen_objects())
        assert overall["matches"] + overall["false_negatives"] == overall["gt_instances"]
        assert overall["matches"] + overall["false_positives"] == overall["predictions"]
        assert 0 <= overall["id_switches"] <= overall["matches"]
        assert 0 <= overall["mostly_tracked"] <= overall["gt_objects"]
        assert overall["mota"] <= 1.0 and 0.0 <= overall["idf1"] <= 1.0
        for figure in ("precision", "recall", "mean_iou"):
            assert overall[figure] is None or 0.0 <= overall[figure] <= 1.0
    assert "[ours] clip 1/1 (seed 10000" in result.stderr
    assert "[plain] clip 1/1 (seed 10000" in result.stderr


def test_bench_quality_measures_the_bundled_model_at_its_calibrated_threshold_by_default():
    result = _bench(
        "--device", "cpu", "--clips", "1", "--frames", "12", "--size", "112x112",
        "--classes", "red", "green", "blue", "yellow", "magenta", "cyan", "white", "orange",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["threshold"] == shapes_model_threshold(shapes_model_path()) < 0.5
    # a trained model: most of what ours reports is a real object, matched by mask IoU >= 0.5
    overall = report["ours"]["scores"]["all"]
    assert overall["matches"] > 0 and overall["precision"] >= 0.5, overall
