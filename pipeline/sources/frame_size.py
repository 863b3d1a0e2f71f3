"""How large a frame a source may deliver: one rule for files, streams, webcams, test pattern.

Every decoded frame is held as (H, W, 3) uint8 BGR in the source's buffer, the dispatch queue,
each sink's queue and the annotated copies, so its size multiplies: issue 12 saw a 7680x7680 test
pattern take 2 GB of memory without producing a frame. SAM3 reads every frame at 1008x1008, so
pixels beyond a few megapixels buy no detections.

- ``MAX_FRAME_PIXELS``: 7680x4320 (8K UHD, 33.2 Mpx, 100 MB a frame as BGR), the largest
  standard video format. A decoded frame larger than that (by area, so a tall or wide frame of
  the same pixel count passes) ends its source with an error naming the limit
  (``VideoSource._publish_frame``), instead of filling memory.
- ``MAX_TEST_PATTERN_PIXELS``: 3840x2160 (4K UHD, 8.3 Mpx). The pattern is drawn on the CPU for
  every frame and exists to exercise the pipeline; a larger one tests nothing 4K does not, and
  its size is refused when the reference is parsed.
"""

from __future__ import annotations

MAX_FRAME_WIDTH, MAX_FRAME_HEIGHT = 7680, 4320
MAX_FRAME_PIXELS = MAX_FRAME_WIDTH * MAX_FRAME_HEIGHT
"""Largest decoded frame, by area, any source may deliver (8K UHD)."""

MAX_TEST_PATTERN_WIDTH, MAX_TEST_PATTERN_HEIGHT = 3840, 2160
MAX_TEST_PATTERN_PIXELS = MAX_TEST_PATTERN_WIDTH * MAX_TEST_PATTERN_HEIGHT
"""Largest test pattern, by area (4K UHD)."""


def oversized_frame(width: int, height: int) -> str | None:
    """Why a decoded ``width`` x ``height`` frame is refused, or None when it is within the cap.

    Examples:
        >>> oversized_frame(3840, 2160) is None
        True
        >>> oversized_frame(7680, 7680).split(",")[0]
        'decoded frames are 7680x7680 (59.0 Mpx)'
    """
    if width * height <= MAX_FRAME_PIXELS:
        return None
    return (
        f"decoded frames are {width}x{height} ({width * height / 1e6:.1f} Mpx), more than the "
        f"{MAX_FRAME_WIDTH}x{MAX_FRAME_HEIGHT} ({MAX_FRAME_PIXELS / 1e6:.1f} Mpx) a source may "
        "deliver: scale the video down at its source"
    )
