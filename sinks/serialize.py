"""The JSON record of one frame: shared by JSON lines, webhook, UDP and the HTTP service.

One schema in one place, so a consumer written against the JSONL file also reads the webhook body
and the service's Server-Sent Events::

    {"video_identifier": "cam1", "source_id": 0, "frame_id": 42, "epoch": 0,
     "timestamp": "2025-01-01T12:00:00.040000+00:00", "width": 1920, "height": 1080,
     "objects": [{"tracker_id": 3, "class_name": "person", "class_id": 0, "confidence": 0.91,
                  "bbox": [x1, y1, x2, y2], "mask": {"size": [1080, 1920], "counts": "..."}}]}

``timestamp`` is the frame's ``frame_timestamp`` in UTC with its offset. ``frame_timestamp`` itself
is a naive local-time ``datetime``, as in Roboflow; JSON carries the unambiguous instant.

``bbox`` is xyxy in pixels of the original frame, rounded to 0.01. ``mask`` is COCO run-length
encoding (``"rle"``: ``size`` is ``[height, width]``, ``counts`` the compressed string pycocotools
reads), COCO polygons (``"polygon"``: a list of flat ``[x1, y1, x2, y2, ...]`` lists), or null
(``"none"``).
"""

from __future__ import annotations

import json
import logging
import math
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import supervision as sv

from sinks.errors import SinkConfigError

logger = logging.getLogger(__name__)

MaskFormat = Literal["rle", "polygon", "none"]
MASK_FORMATS: tuple[str, ...] = ("rle", "polygon", "none")


def check_mask_format(mask_format: str) -> MaskFormat:
    """Return ``mask_format`` if we can write it; raise ``SinkConfigError`` saying the choices."""
    if mask_format not in MASK_FORMATS:
        raise SinkConfigError(
            f"unknown mask format {mask_format!r}: use one of {', '.join(MASK_FORMATS)}"
        )
    return mask_format  # type: ignore[return-value]


def encode_mask(mask: np.ndarray, mask_format: MaskFormat) -> Any:
    """Encode one (H, W) bool mask as JSON-ready data in ``mask_format``."""
    if mask_format == "rle":
        height, width = mask.shape
        return {"size": [height, width], "counts": sv.mask_to_rle(mask, compressed=True)}
    if mask_format == "polygon":
        return [polygon.reshape(-1).tolist() for polygon in sv.mask_to_polygons(mask)]
    return None


def decode_mask(encoded: Any, *, width: int, height: int) -> np.ndarray:
    """Turn a record's ``mask`` back into an (H, W) bool array.

    Exact for RLE; polygons are an outline, so their round trip is approximate.

    Args:
        encoded: the ``mask`` value of an object in a record.
        width: the record's ``width`` (polygons carry no size).
        height: the record's ``height``.
    """
    if isinstance(encoded, dict):
        rle_height, rle_width = encoded["size"]
        return sv.rle_to_mask(encoded["counts"], (rle_width, rle_height))
    mask = np.zeros((height, width), dtype=bool)
    for flat in encoded or []:
        points = np.asarray(flat, dtype=np.int32).reshape(-1, 2)
        mask |= sv.polygon_to_mask(points, (width, height)).astype(bool)
    return mask


def _number(value: Any) -> float | None:
    # JSON has no NaN; a missing confidence is null, not an invalid document.
    number = float(value)
    return number if math.isfinite(number) else None


def object_records(detections: sv.Detections, mask_format: MaskFormat) -> list[dict[str, Any]]:
    """One dict per detection, in detection order."""
    class_names = detections.data.get("class_name")
    records = []
    for index in range(len(detections)):
        records.append(
            {
                "tracker_id": (
                    int(detections.tracker_id[index]) if detections.tracker_id is not None else None
                ),
                "class_name": str(class_names[index]) if class_names is not None else None,
                "class_id": (
                    int(detections.class_id[index]) if detections.class_id is not None else None
                ),
                "confidence": (
                    _number(detections.confidence[index])
                    if detections.confidence is not None
                    else None
                ),
                "bbox": [round(float(v), 2) for v in detections.xyxy[index]],
                "mask": (
                    encode_mask(detections.mask[index], mask_format)
                    if detections.mask is not None
                    else None
                ),
            }
        )
    return records


def frame_record(
    detections: sv.Detections,
    frame: Any,
    *,
    mask_format: MaskFormat = "rle",
    size: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """The JSON-ready record of one frame (schema in the module docstring).

    Args:
        detections: the frame's detections.
        frame: the ``VideoFrame`` (duck-typed), or anything with its metadata attributes.
        mask_format: ``"rle"``, ``"polygon"`` or ``"none"``.
        size: ``(width, height)`` when ``frame`` carries no ``image`` (a queued metadata copy).
    """
    if size is None:
        height, width = frame.image.shape[:2]
    else:
        width, height = size
    timestamp = frame.frame_timestamp
    return {
        "video_identifier": str(frame.video_identifier),
        "source_id": int(frame.source_id),
        "frame_id": int(frame.frame_id),
        "epoch": int(frame.epoch),
        "timestamp": utc_isoformat(timestamp) if timestamp is not None else None,
        "width": int(width),
        "height": int(height),
        "objects": object_records(detections, mask_format),
    }


def utc_isoformat(timestamp: datetime) -> str:
    """ISO 8601 in UTC with its offset; a naive ``timestamp`` is taken as the machine's local time.

    Frames and status events carry naive local times (Roboflow's convention, so
    ``datetime.now() - frame.frame_timestamp`` works); JSON that leaves the process must name the
    instant without knowing the sender's zone.

    Examples:
        >>> utc_isoformat(datetime(2025, 1, 1, 12, 0, tzinfo=UTC))
        '2025-01-01T12:00:00+00:00'
    """
    return timestamp.astimezone(UTC).isoformat()


def dumps(record: Any) -> str:
    """Compact JSON on one line (no NaN, no newlines), as JSON lines and datagrams need."""
    return json.dumps(record, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
