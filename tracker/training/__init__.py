"""Synthetic training and evaluation data: clips of moving shapes with exact ground truth.

The offline checkpoint learns concepts ("circle", "red circle") from these clips, ``bench quality``
measures tracking on held-out ones, and tests assert tracking behaviour on them. Nothing is
downloaded: a seed determines a clip.

Examples:
    >>> from tracker.training import SceneConfig, generate_clip, detector_samples
    >>> clip = generate_clip(3, frames=8, height=64, width=64, scene=SceneConfig(max_size=24))
    >>> first = detector_samples(clip.truths[0])[0]  # positives come first
    >>> first.present, first.masks.shape[1:]
    (True, (64, 64))
"""

from tracker.training.backgrounds import BACKGROUND_KINDS, draw_background
from tracker.training.config import SceneConfig
from tracker.training.export import MOT_FIELDS, mot_rows, write_clip_mp4, write_mot_gt
from tracker.training.motion import ObjectPlan, plan_objects
from tracker.training.samples import ConceptSample, detector_samples
from tracker.training.scenes import Placement, SyntheticClip, generate_clip, render_frame
from tracker.training.shapes import COLOURS, SHAPE_KINDS, draw_shape_mask
from tracker.training.truth import FrameTruth, ObjectTruth, normalise_text

__all__ = [
    "BACKGROUND_KINDS",
    "COLOURS",
    "MOT_FIELDS",
    "SHAPE_KINDS",
    "ConceptSample",
    "FrameTruth",
    "ObjectPlan",
    "ObjectTruth",
    "Placement",
    "SceneConfig",
    "SyntheticClip",
    "detector_samples",
    "draw_background",
    "draw_shape_mask",
    "generate_clip",
    "mot_rows",
    "normalise_text",
    "plan_objects",
    "render_frame",
    "write_clip_mp4",
    "write_mot_gt",
]
