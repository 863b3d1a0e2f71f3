"""Tracking figures from a well-kept library: predicted tracks vs ground truth, by motmetrics.

``bench quality`` hands every frame's ground-truth masks and predicted masks (with their ids) to a
``TrackScorer``; ``summarise`` turns any number of scorers (clips, concepts) into one
``TrackingScores``. The CLEAR-MOT bookkeeping (matching that keeps last frame's pairs, switches,
fragmentation, mostly tracked) and the IDF1 assignment are motmetrics'; this module only decides
what counts as a match.

The match rule: a prediction may match a ground-truth object in a frame when their mask IoU is at
least ``MIN_MATCH_IOU`` (0.5), and motmetrics' distance for the pair is ``1 - mask IoU``. Masks,
not boxes, because masks are what the model outputs and what the synthetic truth knows exactly
(occluded parts removed); 0.5 makes a match unique (two predictions cannot both overlap one object
by more than half of their union). The mean mask IoU reported is over the pairs motmetrics matched.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import motmetrics as mm
import numpy as np
import supervision as sv

MIN_MATCH_IOU = 0.5
"""Mask IoU a prediction needs with a ground-truth object to be matched to it in a frame."""

_METRICS: tuple[str, ...] = (
    "num_frames",
    "num_unique_objects",
    "num_objects",
    "num_predictions",
    "num_matches",
    "num_switches",
    "num_false_positives",
    "num_misses",
    "mostly_tracked",
    "mota",
    "idf1",
    "precision",
    "recall",
)
_MATCHED_EVENTS = ("MATCH", "SWITCH")  # motmetrics' event types that pair an object and a track


def mask_iou(gt_masks: np.ndarray, pred_masks: np.ndarray) -> np.ndarray:
    """``(G, P)`` IoU of ``(G, H, W)`` ground-truth masks and ``(P, H, W)`` predicted masks."""
    if len(gt_masks) == 0 or len(pred_masks) == 0:
        return np.zeros((len(gt_masks), len(pred_masks)), dtype=np.float64)
    return np.asarray(sv.mask_iou_batch(gt_masks.astype(bool), pred_masks.astype(bool)))


def mask_distances(
    gt_masks: np.ndarray, pred_masks: np.ndarray, *, min_iou: float = MIN_MATCH_IOU
) -> np.ndarray:
    """motmetrics' ``(G, P)`` distance matrix: ``1 - mask IoU``, NaN (may not match) below
    ``min_iou``."""
    iou = mask_iou(gt_masks, pred_masks)
    return np.where(iou >= min_iou, 1.0 - iou, np.nan)


class TrackScorer:
    """One sequence (a clip, one concept) scored frame by frame: a motmetrics accumulator.

    Ids are the sequence's own: ground-truth object ids and predicted ``tracker_id`` values only
    need to be consistent within it.

    Examples:
        >>> import numpy as np
        >>> mask = np.zeros((1, 4, 4), dtype=bool); mask[0, :2, :2] = True
        >>> scorer = TrackScorer()
        >>> scorer.update([1], mask, [7], mask)
        >>> summarise([scorer]).idf1
        1.0
    """

    def __init__(self, *, min_iou: float = MIN_MATCH_IOU) -> None:
        self.min_iou = min_iou
        self.accumulator = mm.MOTAccumulator(auto_id=True)

    def update(
        self,
        gt_ids: Sequence[int] | np.ndarray,
        gt_masks: np.ndarray,
        pred_ids: Sequence[int] | np.ndarray,
        pred_masks: np.ndarray,
    ) -> None:
        """Score the next frame: ``(G,)`` ids with ``(G, H, W)`` masks vs ``(P,)`` with
        ``(P, H, W)``."""
        gt = [int(i) for i in gt_ids]
        pred = [int(i) for i in pred_ids]
        if len(gt) != len(gt_masks) or len(pred) != len(pred_masks):
            raise ValueError("ids and masks: one id per mask, for truth and predictions alike")
        if len(set(pred)) != len(pred):
            raise ValueError(f"pred_ids: a track id appears twice in one frame ({pred})")
        distances = mask_distances(gt_masks, pred_masks, min_iou=self.min_iou)
        self.accumulator.update(gt, pred, distances)


@dataclass(frozen=True)
class TrackingScores:
    """The figures of one or more sequences together; NaN where a figure is undefined (MOTA and
    recall without ground truth, precision without predictions, mask IoU without a match).

    Attributes:
        sequences: how many sequences (clip x concept) were pooled.
        frames: frames scored, summed over sequences.
        gt_objects: distinct ground-truth objects (counted once per sequence).
        gt_instances: ground-truth object-frames (the denominator of MOTA and recall).
        predictions: predicted object-frames.
        matches: object-frames matched (switches included).
        id_switches: matched object-frames whose track differs from the object's previous one.
        false_positives: predicted object-frames matched to nothing.
        false_negatives: ground-truth object-frames matched to nothing.
        mostly_tracked: ground-truth objects matched in at least 80% of the frames they are in.
        mota: 1 - (FN + FP + switches) / gt_instances; may be negative.
        idf1: F1 of the best one-to-one assignment of tracks to objects over whole sequences.
        precision: matches / predictions.
        recall: matches / gt_instances.
        mean_iou: mean mask IoU of the matched pairs.
    """

    sequences: int
    frames: int
    gt_objects: int
    gt_instances: int
    predictions: int
    matches: int
    id_switches: int
    false_positives: int
    false_negatives: int
    mostly_tracked: int
    mota: float
    idf1: float
    precision: float
    recall: float
    mean_iou: float


def summarise(scorers: Sequence[TrackScorer]) -> TrackingScores:
    """Pool ``scorers`` (counts summed, ratios from the sums) into one ``TrackingScores``."""
    if not scorers:
        raise ValueError("scorers: need at least one sequence to summarise")
    host = mm.metrics.create()
    table = host.compute_many(
        [s.accumulator for s in scorers],
        metrics=list(_METRICS),
        names=[str(index) for index in range(len(scorers))],
        generate_overall=True,
    )
    row = table.loc["OVERALL"]
    iou_sum, iou_count = 0.0, 0
    for scorer in scorers:
        events = scorer.accumulator.mot_events
        matched = events[events["Type"].isin(_MATCHED_EVENTS)]
        iou_sum += float((1.0 - matched["D"].astype(float)).sum())
        iou_count += len(matched)

    def count(name: str) -> int:
        return int(row[name])

    def ratio(name: str) -> float:
        value = float(row[name])
        return value if math.isfinite(value) else math.nan

    gt_instances = count("num_objects")
    predictions = count("num_predictions")
    return TrackingScores(
        sequences=len(scorers),
        frames=count("num_frames"),
        gt_objects=count("num_unique_objects"),
        gt_instances=gt_instances,
        predictions=predictions,
        matches=count("num_matches") + count("num_switches"),
        id_switches=count("num_switches"),
        false_positives=count("num_false_positives"),
        false_negatives=count("num_misses"),
        mostly_tracked=count("mostly_tracked"),
        mota=ratio("mota") if gt_instances else math.nan,
        idf1=ratio("idf1") if gt_instances or predictions else math.nan,
        precision=ratio("precision") if predictions else math.nan,
        recall=ratio("recall") if gt_instances else math.nan,
        mean_iou=iou_sum / iou_count if iou_count else math.nan,
    )
