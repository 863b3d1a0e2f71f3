"""``sam3-stream bench quality``: tracking quality on held-out synthetic clips, ours vs plain HF.

Each clip is generated from its seed (``tracker.training``), so no data is downloaded and a held-out
clip stays held out: benchmark seeds start at ``HELD_OUT_SEED_START`` and training must draw its
seeds below it. The concepts of a clip are the shape names present in it (or ``--classes``). The
same frames run through

- **ours**: the streaming path a camera takes, ``SessionRegistry.process`` on
  ``Sam3VideoTracker`` (pruning, lost-track eviction, the object budget, confirmation and the
  hotstart rules), one ``video_identifier`` per clip;
- **plain**: the plain HF loop (``pipeline.bench.plain_hf.PlainHFStream``), one unpruned session per
  clip, the same threshold on its output scores.

Every (clip, concept) is one sequence scored against the truth by ``tracking_metrics`` (motmetrics,
mask IoU >= 0.5); figures are pooled per concept and over all. Each variant runs in its own spawned
process, as the other benches do, so neither pays for the other's warm-up or memory.
"""

from __future__ import annotations

import math
import multiprocessing
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.bench.tracking_metrics import MIN_MATCH_IOU, TrackingScores, TrackScorer, summarise
from tracker.training import COLOURS, SHAPE_KINDS, SceneConfig, SyntheticClip, generate_clip
from tracker.training.truth import normalise_text

HELD_OUT_SEED_START = 10_000
"""First seed of the benchmark's clips; ``train-small-model`` must train on seeds below it."""

VARIANTS: tuple[str, ...] = ("ours", "plain")
VARIANT_TITLES = {
    "ours": "ours (SessionRegistry: pruning, eviction, budget, confirmation, hotstart)",
    "plain": "plain HF (PlainHFStream: one unpruned session per clip)",
}
OVERALL = "all"

# (N,) int ids and (N, H, W) bool masks of one concept's predictions in one frame
Predictions = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class QualitySettings:
    """What one ``bench quality`` run measures; both variants receive the same settings.

    Attributes:
        model: model id or checkpoint directory.
        clips: held-out clips, seeds ``seed`` .. ``seed + clips - 1``.
        frames: frames per clip.
        width, height: frame size in pixels.
        seed: first clip's seed.
        classes: concepts prompted on every clip; empty: each clip's shape names present in it.
        threshold: output score below which an object is not reported (both variants).
        device: ``auto``, ``cpu``, ``cuda``...
        max_objects: ours' live-track budget per stream (None: the tracker's default).
    """

    model: str
    clips: int = 4
    frames: int = 32
    width: int = 320
    height: int = 240
    seed: int = HELD_OUT_SEED_START
    classes: tuple[str, ...] = ()
    threshold: float = 0.5
    device: str = "auto"
    max_objects: int | None = None

    def __post_init__(self) -> None:
        for name in ("clips", "frames"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be at least 1 (got {getattr(self, name)})")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold: must be in [0, 1] (got {self.threshold})")
        if self.max_objects is not None and self.max_objects < 1:
            raise ValueError(f"max_objects: must be at least 1 (got {self.max_objects})")
        # frozen: normalise in place once, so every comparison reads the truth's spelling
        object.__setattr__(self, "classes", check_concepts(self.classes))
        bench_scene(self.width, self.height)  # refuses a frame too small for any shape

    @property
    def seeds(self) -> range:
        return range(self.seed, self.seed + self.clips)


@dataclass(frozen=True)
class VariantResult:
    """One variant's figures: per concept and over all (``OVERALL``), and its time per frame."""

    variant: str
    scores: dict[str, TrackingScores]
    frames: int
    seconds: float  # in the model calls only: clip generation and scoring are not counted

    @property
    def ms_per_frame(self) -> float:
        return 1000.0 * self.seconds / max(self.frames, 1)


def check_concepts(classes: Sequence[str]) -> tuple[str, ...]:
    """The concepts as the truth reads them: shape names, colour words and colour + shape; any
    other name is refused.

    Raises:
        ValueError: an unknown concept, named in the message.
    """
    known = set(SHAPE_KINDS) | set(COLOURS)
    known |= {f"{colour} {kind}" for colour in COLOURS for kind in SHAPE_KINDS}
    concepts = tuple(dict.fromkeys(normalise_text(name) for name in classes))
    unknown = [name for name in concepts if name not in known]
    if unknown:
        raise ValueError(
            f"classes: unknown concept {', '.join(map(repr, unknown))}; use shape names "
            f"({', '.join(SHAPE_KINDS)}), colours ({', '.join(COLOURS)}) or a colour and a shape"
        )
    return concepts


def bench_scene(width: int, height: int) -> SceneConfig:
    """The generator's default scene, shapes shrunk to at most half the shorter side if needed."""
    default = SceneConfig()
    largest = min(default.max_size, min(width, height) // 2)
    if largest < 1 or min(width, height) < 8:
        raise ValueError(f"size: {width}x{height} is too small for a synthetic clip (8x8 at least)")
    return SceneConfig(min_size=min(default.min_size, largest), max_size=largest)


def held_out_clip(settings: QualitySettings, seed: int) -> SyntheticClip:
    """The clip of ``seed`` at the settings' size."""
    return generate_clip(
        seed,
        frames=settings.frames,
        height=settings.height,
        width=settings.width,
        scene=bench_scene(settings.width, settings.height),
    )


def run_quality_bench(settings: QualitySettings) -> dict[str, VariantResult]:
    """Run both variants, each in a fresh spawned process; return their results by name."""
    context = multiprocessing.get_context("spawn")
    results: dict[str, VariantResult] = {}
    for variant in VARIANTS:
        with context.Pool(1) as pool:
            results[variant] = pool.apply(run_variant, (variant, settings))
    return results


def run_variant(variant: str, settings: QualitySettings) -> VariantResult:
    """Load the model, run every held-out clip through ``variant``, score it against the truth."""
    from tracker import Sam3VideoTracker

    tracker = Sam3VideoTracker.from_pretrained(settings.model, device=settings.device)
    runner = _ours_runner(tracker, settings) if variant == "ours" else _plain_runner(tracker)
    scorers: dict[str, list[TrackScorer]] = {}
    frames, seconds = 0, 0.0
    for number, seed in enumerate(settings.seeds, start=1):
        clip = held_out_clip(settings, seed)
        concepts = list(settings.classes) or clip.concepts()
        if not concepts:
            _progress(variant, f"clip {number}/{settings.clips} (seed {seed}): no objects, skipped")
            continue
        started = time.perf_counter()
        predictions = runner(clip, concepts, settings.threshold)
        elapsed = time.perf_counter() - started
        frames, seconds = frames + len(clip), seconds + elapsed
        for concept in concepts:
            scorers.setdefault(concept, []).append(
                score_sequence(clip, concept, [frame[concept] for frame in predictions])
            )
        _progress(
            variant,
            f"clip {number}/{settings.clips} (seed {seed}, {', '.join(concepts)}): "
            f"{len(clip)} frames, {1000 * elapsed / len(clip):.0f} ms/frame",
        )
    if not scorers:
        from pipeline.errors import ConfigError

        raise ConfigError(
            "--seed: no generated clip had an object to track; try others", field="seed"
        )
    scores = {concept: summarise(scorers[concept]) for concept in sorted(scorers)}
    scores[OVERALL] = summarise([s for concept in sorted(scorers) for s in scorers[concept]])
    return VariantResult(variant, scores, frames, seconds)


def score_sequence(
    clip: SyntheticClip, concept: str, predictions: Sequence[Predictions]
) -> TrackScorer:
    """One concept's predictions on ``clip``, frame by frame, against the objects it names."""
    scorer = TrackScorer(min_iou=MIN_MATCH_IOU)
    for truth, (pred_ids, pred_masks) in zip(clip.truths, predictions, strict=True):
        gt_ids = [obj.object_id for obj in truth.matching(concept)]
        scorer.update(gt_ids, truth.masks(concept), pred_ids, pred_masks)
    return scorer


Runner = Callable[[SyntheticClip, list[str], float], list[dict[str, Predictions]]]


def _ours_runner(tracker: Any, settings: QualitySettings) -> Runner:
    from tracker import SessionRegistry

    registry = (
        SessionRegistry(tracker)
        if settings.max_objects is None
        else SessionRegistry(tracker, max_objects=settings.max_objects)
    )

    def run(clip: SyntheticClip, concepts: list[str], threshold: float) -> list[dict[str, Any]]:
        identifier = f"clip-{clip.seed}"
        frames = []
        for index, image in enumerate(clip.images):
            detections = registry.process(
                image,
                video_identifier=identifier,
                frame_id=index,
                class_names=concepts,
                threshold=threshold,
            )
            names = detections.data.get("class_name", np.empty(0, dtype=object))  # (N,) str
            masks: Any = detections.mask  # (N, H, W) bool, or None when empty
            frames.append(
                {
                    concept: _predictions(
                        detections.tracker_id,
                        masks,
                        np.array([name == concept for name in names], dtype=bool),
                        clip,
                    )
                    for concept in concepts
                }
            )
        registry.close(identifier)
        return frames

    return run


def _plain_runner(tracker: Any) -> Runner:
    from pipeline.bench.plain_hf import PlainHFStream

    def run(clip: SyntheticClip, concepts: list[str], threshold: float) -> list[dict[str, Any]]:
        stream = PlainHFStream(
            tracker.processor,
            tracker.model,
            device=tracker.device,
            classes=concepts,
            autocast_dtype=tracker.compute_dtype,
        )
        frames = []
        for image in clip.images:
            outputs = stream.step(image)
            ids = outputs["object_ids"].cpu().numpy().astype(np.int64)  # (N,)
            scores = outputs["scores"].float().cpu().numpy().reshape(-1)  # (N,)
            masks = outputs["masks"].cpu().numpy().astype(bool)  # (N, H, W)
            masks = masks.reshape(-1, clip.height, clip.width)
            prompt_to_obj_ids: Any = outputs["prompt_to_obj_ids"]  # {text: [object id, ...]}
            owner = {int(obj): text for text, objs in prompt_to_obj_ids.items() for obj in objs}
            kept = scores >= threshold
            frames.append(
                {
                    concept: _predictions(
                        ids,
                        masks,
                        kept & np.array([owner.get(int(i)) == concept for i in ids], dtype=bool),
                        clip,
                    )
                    for concept in concepts
                }
            )
        return frames

    return run


def _predictions(
    ids: np.ndarray | None, masks: np.ndarray | None, keep: np.ndarray, clip: SyntheticClip
) -> Predictions:
    """The ``keep`` rows of ``(N,)`` ids and ``(N, H, W)`` masks (either None when empty)."""
    if ids is None or masks is None or not np.any(keep):
        return np.zeros(0, dtype=np.int64), np.zeros((0, clip.height, clip.width), dtype=bool)
    return np.asarray(ids)[keep].astype(np.int64), np.asarray(masks)[keep].astype(bool)


def _progress(variant: str, message: str) -> None:
    """Long runs say where they are on stderr; the report on stdout stays clean."""
    print(f"[{variant}] {message}", file=sys.stderr, flush=True)


# ---- report ---------------------------------------------------------------------------------

_COLUMNS = (
    ("concept", 9),
    ("seqs", 4),
    ("GT ids", 6),
    ("MOTA", 7),
    ("IDF1", 6),
    ("IDsw", 5),
    ("prec", 6),
    ("recall", 6),
    ("FP", 6),
    ("FN", 6),
    ("MT", 7),
    ("mIoU", 6),
)


def format_report(settings: QualitySettings, results: dict[str, VariantResult]) -> str:
    """A table per variant, the ours/plain ratios, and time per frame."""
    first, last = settings.seeds[0], settings.seeds[-1]
    concepts = ", ".join(settings.classes) or "the shape names present in each clip"
    lines = [
        f"bench quality: {settings.clips} held-out clip(s), seeds {first}-{last}, "
        f"{settings.frames} frames each, {settings.width}x{settings.height}, "
        f"threshold {settings.threshold:g}",
        f"concepts: {concepts}; match: mask IoU >= {MIN_MATCH_IOU:g} "
        "(motmetrics distance 1 - mask IoU); mIoU over matched pairs; MT: mostly tracked / GT ids",
    ]
    for variant in VARIANTS:
        result = results[variant]
        lines += ["", f"{VARIANT_TITLES[variant]}: {result.ms_per_frame:.1f} ms/frame"]
        lines.append(_header())
        lines += [_row(concept, scores) for concept, scores in result.scores.items()]
    ours, plain = results["ours"], results["plain"]
    lines += [
        "",
        "ours / plain (ratios; '-' where a figure is undefined, plain's is 0, or a MOTA is "
        "not positive)",
    ]
    lines.append(
        f"{'concept':<9} {'MOTA':>6} {'IDF1':>6} {'IDsw':>6} {'prec':>6} {'recall':>6} "
        f"{'FP':>6} {'FN':>6} {'mIoU':>6}"
    )
    for concept, mine in ours.scores.items():
        theirs = plain.scores.get(concept)
        if theirs is None:
            continue
        motas = (mine.mota, theirs.mota) if min(mine.mota, theirs.mota) > 0 else (0.0, 0.0)
        pairs = [
            motas,
            (mine.idf1, theirs.idf1),
            (mine.id_switches, theirs.id_switches),
            (mine.precision, theirs.precision),
            (mine.recall, theirs.recall),
            (mine.false_positives, theirs.false_positives),
            (mine.false_negatives, theirs.false_negatives),
            (mine.mean_iou, theirs.mean_iou),
        ]
        lines.append(f"{concept:<9} " + " ".join(f"{_ratio(a, b):>6}" for a, b in pairs))
    lines.append(
        f"wall time per frame: ours {ours.ms_per_frame:.1f} ms, plain {plain.ms_per_frame:.1f} ms, "
        f"ours/plain {_ratio(ours.ms_per_frame, plain.ms_per_frame)}"
    )
    return "\n".join(lines)


def report_json(settings: QualitySettings, results: dict[str, VariantResult]) -> dict[str, Any]:
    """The report's figures as one JSON-ready dict (NaN as None)."""

    def clean(value: Any) -> Any:
        return None if isinstance(value, float) and not math.isfinite(value) else value

    return {
        "seeds": [settings.seeds[0], settings.seeds[-1]],
        "frames": settings.frames,
        "size": f"{settings.width}x{settings.height}",
        "threshold": settings.threshold,
        "min_match_iou": MIN_MATCH_IOU,
        **{
            variant: {
                "ms_per_frame": round(result.ms_per_frame, 2),
                "scores": {
                    concept: {k: clean(v) for k, v in vars(scores).items()}
                    for concept, scores in result.scores.items()
                },
            }
            for variant, result in results.items()
        },
    }


def _header() -> str:
    return " ".join(
        f"{name:<{width}}" if index == 0 else f"{name:>{width}}"
        for index, (name, width) in enumerate(_COLUMNS)
    )


def _row(concept: str, s: TrackingScores) -> str:
    cells = [
        f"{concept:<9}",
        f"{s.sequences:>4}",
        f"{s.gt_objects:>6}",
        f"{_number(s.mota):>7}",
        f"{_number(s.idf1):>6}",
        f"{s.id_switches:>5}",
        f"{_number(s.precision):>6}",
        f"{_number(s.recall):>6}",
        f"{s.false_positives:>6}",
        f"{s.false_negatives:>6}",
        f"{f'{s.mostly_tracked}/{s.gt_objects}':>7}",
        f"{_number(s.mean_iou):>6}",
    ]
    return " ".join(cells)


def _number(value: float) -> str:
    return f"{value:.3f}" if math.isfinite(value) else "-"


def _ratio(ours: float, plain: float) -> str:
    if not (math.isfinite(ours) and math.isfinite(plain)) or plain == 0:
        return "-"
    return f"{ours / plain:.2f}"
