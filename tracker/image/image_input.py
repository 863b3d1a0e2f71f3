"""Turn what a caller hands an image API into one (H, W, 3) uint8 RGB array, within size caps.

Accepted: a path (``str`` or ``pathlib.Path``), a numpy BGR/BGRA/gray uint8 array (OpenCV's
layout), a PIL image, or encoded bytes (JPEG, PNG, ...). The caps are checked before decoding
where the format allows it, so a hostile file cannot take the memory its header claims.
"""

from __future__ import annotations

import io
import pathlib
from typing import Any

import numpy as np

from tracker.inputs import to_rgb

MAX_IMAGE_BYTES = 64 * 1024 * 1024
"""Largest encoded image (bytes or file) accepted: a 8K PNG of noise is about 100 MB raw, and
nothing SAM3 sees at 1008x1008 needs more."""

MAX_IMAGE_WIDTH, MAX_IMAGE_HEIGHT = 7680, 4320
MAX_IMAGE_PIXELS = MAX_IMAGE_WIDTH * MAX_IMAGE_HEIGHT
"""Largest image by area (8K UHD): the same cap the video sources apply to a decoded frame."""

ImageLike = Any
"""str | pathlib.Path | numpy.ndarray | PIL.Image.Image | bytes."""


def load_rgb(image: ImageLike, *, field: str = "image") -> np.ndarray:
    """(H, W, 3) uint8 RGB from any accepted image form.

    Raises:
        ValueError: naming ``field`` when the image is missing, unreadable, undecodable, not
            uint8, or over ``MAX_IMAGE_BYTES`` / ``MAX_IMAGE_PIXELS``.
    """
    if isinstance(image, np.ndarray):
        if image.ndim >= 2:
            _check_pixels(image.shape[1], image.shape[0], field)
        try:
            return to_rgb(image)
        except ValueError as error:
            raise ValueError(f"{field}: {error}") from None
    if isinstance(image, (bytes, bytearray, memoryview)):
        return _decode(bytes(image), field)
    if isinstance(image, (str, pathlib.Path)):
        path = pathlib.Path(image).expanduser()
        if not path.is_file():
            raise ValueError(f"{field}: no such file {str(path)!r}")
        if path.stat().st_size > MAX_IMAGE_BYTES:
            raise ValueError(f"{field}: file is over the {MAX_IMAGE_BYTES} byte limit")
        return _decode(path.read_bytes(), field)
    from PIL import Image

    if isinstance(image, Image.Image):
        _check_pixels(image.width, image.height, field)
        return np.array(image.convert("RGB"), dtype=np.uint8)
    raise ValueError(
        f"{field} must be a path, a numpy BGR array, a PIL image or encoded bytes; "
        f"got {type(image).__name__}"
    )


def _decode(data: bytes, field: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    if len(data) > MAX_IMAGE_BYTES:
        raise ValueError(f"{field}: {len(data)} bytes is over the {MAX_IMAGE_BYTES} byte limit")
    if not data:
        raise ValueError(f"{field}: empty image data")
    try:
        with Image.open(io.BytesIO(data)) as opened:
            # The header's size, before any pixel is decoded.
            _check_pixels(opened.width, opened.height, field)
            return np.array(opened.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ValueError(f"{field}: not a decodable image ({type(error).__name__})") from None
    except Image.DecompressionBombError:
        raise ValueError(f"{field}: over the {MAX_IMAGE_PIXELS} pixel limit") from None


def _check_pixels(width: int, height: int, field: str) -> None:
    if width * height > MAX_IMAGE_PIXELS:
        raise ValueError(
            f"{field}: {width}x{height} is over the {MAX_IMAGE_PIXELS} pixel limit "
            f"({MAX_IMAGE_WIDTH}x{MAX_IMAGE_HEIGHT}); downscale it first"
        )
