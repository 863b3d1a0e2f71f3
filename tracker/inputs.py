"""Validation and normalisation of what callers hand the registry: images, classes, thresholds."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from itertools import islice

import numpy as np


def to_rgb(image: np.ndarray) -> np.ndarray:
    """Return an (H, W, 3) uint8 RGB copy of a BGR, BGRA or grayscale uint8 frame.

    OpenCV and PyAV ``bgr24`` frames are BGR; SAM3 was trained on RGB. Feeding BGR unconverted
    silently degrades detections (Roboflow shipped that bug), so conversion happens here, once.

    Raises:
        ValueError: naming the shape and dtype when the array is not a usable image.
    """
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got dtype {image.dtype} with shape {image.shape}")
    if image.size == 0:
        raise ValueError(f"image is empty: shape {image.shape}")
    if image.ndim == 2:
        # (H, W) gray -> (H, W, 3)
        return np.ascontiguousarray(np.repeat(image[:, :, None], 3, axis=2))
    if image.ndim == 3 and image.shape[2] == 3:
        return np.ascontiguousarray(image[:, :, ::-1])
    if image.ndim == 3 and image.shape[2] == 4:
        return np.ascontiguousarray(image[:, :, 2::-1])
    raise ValueError(
        "image must be HxWx3 BGR, HxWx4 BGRA or HxW gray, "
        f"got shape {image.shape} dtype {image.dtype}"
    )


MAX_CLASS_NAMES = 64
"""The most class names one call may give (duplicates and blanks count): concepts per stream."""


def normalise_class_names(class_names: str | Iterable[str] | None) -> tuple[str, ...]:
    """Strip, drop empties and de-duplicate keeping order; accepts a list or "a, b, c".

    The count is checked before any entry is looked at, and de-duplication is one pass over a
    dict, so a huge list costs nothing but its refusal.

    Raises:
        ValueError: when there are more than ``MAX_CLASS_NAMES`` entries or an entry is not a
            string (the entries are never quoted: they may be anything a client sent).
    """
    if class_names is None:
        return ()
    if isinstance(class_names, str):
        if class_names.count(",") >= MAX_CLASS_NAMES:
            raise ValueError(_too_many_class_names())
        items = class_names.split(",")
    else:
        items = list(islice(class_names, MAX_CLASS_NAMES + 1))
        if len(items) > MAX_CLASS_NAMES:
            raise ValueError(_too_many_class_names())
    seen: dict[str, None] = {}
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"class names must be strings, got {type(item).__name__}")
        name = item.strip()
        if name:
            seen.setdefault(name, None)
    return tuple(seen)


def _too_many_class_names() -> str:
    return f"at most {MAX_CLASS_NAMES} class names are allowed, counting duplicates and blanks"


def check_threshold(threshold: float) -> float:
    """Return ``threshold`` as a float in [0, 1] or raise ``ValueError``."""
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        raise ValueError(f"threshold must be a number in [0, 1], got {threshold!r}") from None
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {value}")
    return value


def check_class_texts(
    class_names: Sequence[str],
    count_tokens: Callable[[str], int],
    token_limit: int,
    *,
    field: str = "class_names",
) -> None:
    """Refuse a class whose text is longer than the model's text encoder reads.

    SAM3's text encoder has a fixed number of positions (32 for ``facebook/sam3``); a longer
    prompt is not truncated by the port but fails inside the model on every frame. Checking at
    creation turns that into one error naming the class by position (its text is not quoted: it
    may be anything a client sent).

    Args:
        class_names: normalised class names (``normalise_class_names``).
        count_tokens: tokens one text takes, start and end tokens included (the tokenizer's).
        token_limit: the most tokens the model reads per text.
        field: the caller's name for the list, used in the message (``classes`` in the API).

    Raises:
        ValueError: naming ``field[i]``, its token count and the limit.
    """
    for index, name in enumerate(class_names):
        tokens = count_tokens(name)
        if tokens > token_limit:
            raise ValueError(
                f"{field}[{index}] is {tokens} tokens long but this model reads at most "
                f"{token_limit} per class (start and end tokens included): shorten it"
            )
