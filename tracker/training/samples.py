"""Detector training samples: for one frame, text prompts with the instances each one names.

SAM3's detector answers "all instances of this concept" and a presence score saying whether the
concept is in the image at all. Training both needs prompts that name something (positives, with
every instance as a target) and prompts that name nothing present (negatives, no targets, presence
0). Coloured negatives are the hard ones: "blue circle" when the only circle is red teaches the
text to matter beyond the shape.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tracker.training.shapes import COLOURS, SHAPE_KINDS
from tracker.training.truth import FrameTruth


@dataclass(frozen=True)
class ConceptSample:
    """One prompt for one frame and the instances it names (none for a negative).

    Attributes:
        text: the prompt (``"circle"``, ``"red circle"``).
        masks: ``(N, H, W)`` bool, one per instance.
        boxes: ``(N, 4)`` float32 xyxy, one per instance.
        object_ids: ``(N,)`` the instances' clip-stable ids.
    """

    text: str
    masks: np.ndarray
    boxes: np.ndarray
    object_ids: tuple[int, ...]

    @property
    def present(self) -> bool:
        """The presence target: does the prompt name anything in the frame."""
        return bool(self.object_ids)


def detector_samples(
    truth: FrameTruth,
    *,
    kinds: tuple[str, ...] = SHAPE_KINDS,
    colours: tuple[str, ...] = tuple(COLOURS),
    coloured: bool = False,
    colour_words: bool = False,
    max_negatives: int | None = None,
    rng: np.random.Generator | None = None,
) -> list[ConceptSample]:
    """Positive then negative prompts for ``truth``'s frame.

    Positives: each shape kind present (every instance of it), with ``coloured`` each
    colour + shape present, with ``colour_words`` each colour present. Negatives: each kind of
    ``kinds`` absent, with ``coloured`` each colour + shape of ``colours`` x present kinds that is
    absent (the hard negatives), with ``colour_words`` each colour of ``colours`` absent.

    Args:
        truth: the frame's ground truth.
        kinds: the shape vocabulary negatives are drawn from.
        colours: the colour vocabulary coloured negatives are drawn from.
        coloured: add colour + shape prompts.
        colour_words: add colour prompts (``"red"``): each colour of ``colours``, present or not.
        max_negatives: keep at most this many negatives (all with ``None``).
        rng: picks which negatives to keep; without it, the first in sorted order are kept.
    """
    if max_negatives is not None and max_negatives < 0:
        raise ValueError(f"max_negatives: must be 0 or more (got {max_negatives})")
    present_kinds = sorted({obj.kind for obj in truth.objects})
    positives = list(present_kinds)
    negatives = [kind for kind in kinds if kind not in present_kinds]
    if coloured:
        present_coloured = sorted({obj.coloured_text for obj in truth.objects})
        positives += present_coloured
        negatives += [
            f"{colour} {kind}"
            for kind in present_kinds
            for colour in colours
            if f"{colour} {kind}" not in present_coloured
        ]
    if colour_words:
        present_colours = {obj.colour for obj in truth.objects}
        positives += [colour for colour in colours if colour in present_colours]
        negatives += [colour for colour in colours if colour not in present_colours]
    if max_negatives is not None and len(negatives) > max_negatives:
        if rng is None:
            negatives = negatives[:max_negatives]
        else:
            keep = np.sort(rng.choice(len(negatives), size=max_negatives, replace=False))
            negatives = [negatives[i] for i in keep]
    return [_sample(truth, text) for text in positives + negatives]


def _sample(truth: FrameTruth, text: str) -> ConceptSample:
    """The instances ``text`` names in ``truth`` as one sample."""
    chosen = truth.matching(text)
    return ConceptSample(
        text=text,
        masks=truth.masks(text),
        boxes=truth.boxes(text),
        object_ids=tuple(obj.object_id for obj in chosen),
    )
