"""``sam3-stream segment IMAGE --text "cat" [--box X,Y,W,H[:0|1] ...]``: concept segmentation of
one image from the command line.

The text and every ``--box`` form ONE prompt: the phrase narrowed by exemplars (label 1, the
default, a positive example; 0 a negative one), or exemplars alone without ``--text``. Prints one
line per instance, writes the response JSON (Roboflow's ``/sam3/concept_segment`` shape) with
``--output`` and the image with the masks drawn with ``--annotated``. Bad input (a malformed or
out-of-image box, an unreadable image, an unknown format) is one line on stderr and exit code 2,
checked before the model loads.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

FORMATS = ("polygon", "rle")
_BOX = re.compile(r"^\s*([^,:]+),([^,:]+),([^,:]+),([^,:]+)(?::([^:]*))?\s*$")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "segment",
        help="find every instance of a concept on one image (text and/or exemplar boxes)",
        description=(
            "Concept segmentation of one image with SAM3. --text and every --box form ONE "
            "prompt: the phrase narrowed by exemplar boxes (':1' positive, the default; ':0' "
            "negative), or exemplars alone. Boxes are pixels, X,Y the top-left corner. Prints "
            "one line per instance; --output writes the response JSON (as Roboflow's "
            "/sam3/concept_segment answers), --annotated the image with the masks drawn."
        ),
    )
    parser.add_argument("image", help="image file (JPEG, PNG, ...)")
    parser.add_argument("--text", default=None, help="the concept, e.g. 'cat'")
    parser.add_argument(
        "--box",
        action="append",
        default=[],
        metavar="X,Y,W,H[:0|1]",
        help="an exemplar box, top-left anchored pixels; ':0' marks a negative exemplar "
        "(repeatable)",
    )
    parser.add_argument("--format", default="polygon", help="mask encoding: polygon or rle")
    parser.add_argument("--output", default=None, help="write the response JSON here")
    parser.add_argument("--annotated", default=None, help="write the image with masks here")
    parser.add_argument("--threshold", type=float, default=0.5, help="minimum score in [0, 1]")
    parser.add_argument(
        "--model",
        default="sam3/sam3_final",
        help="sam3/sam3_final or facebook/sam3 (local cache or $SAM3_STREAM_MODEL), or a directory",
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto", help="auto, float32, bfloat16, float16")
    parser.set_defaults(handler=_run)


def parse_box(text: str) -> tuple[dict[str, float], int]:
    """``"X,Y,W,H[:0|1]"`` -> (a top-left box, its label).

    Raises:
        ConfigError: naming ``--box`` and what is wrong.

    Examples:
        >>> parse_box("10,20,30,40:0")
        ({'x': 10.0, 'y': 20.0, 'width': 30.0, 'height': 40.0}, 0)
    """
    from pipeline.errors import ConfigError

    match = _BOX.match(text)
    if match is None:
        raise ConfigError(
            f"--box {text!r} must be X,Y,W,H or X,Y,W,H:0|1 (pixels, top-left corner)",
            field="box",
        )
    try:
        x, y, width, height = (float(value) for value in match.groups()[:4])
    except ValueError:
        raise ConfigError(f"--box {text!r}: X, Y, W and H must be numbers", field="box") from None
    label = match.group(5)
    if label is not None and label.strip() not in ("0", "1"):
        raise ConfigError(
            f"--box {text!r}: the label after ':' must be 1 (positive) or 0 (negative)",
            field="box",
        )
    if width <= 0 or height <= 0:
        raise ConfigError(f"--box {text!r} has zero or negative area", field="box")
    return {"x": x, "y": y, "width": width, "height": height}, int(label or 1)


def _run(args: argparse.Namespace) -> int:
    import cv2

    from pipeline.errors import ConfigError
    from tracker import Sam3Prompt, SegmentAnything3
    from tracker.image import check_prompts, load_rgb

    if args.format not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {args.format!r}")
    if not 0.0 <= args.threshold <= 1.0:
        raise ConfigError(f"--threshold must be in [0, 1], got {args.threshold}")
    boxes = [parse_box(text) for text in args.box]
    if not (args.text and args.text.strip()) and not boxes:
        raise ConfigError("give --text, --box, or both: the prompt is empty")
    for path in (args.output, args.annotated):
        if path is not None and not Path(path).expanduser().resolve().parent.is_dir():
            raise ConfigError(f"cannot write {path!r}: its directory does not exist")
    try:
        rgb = load_rgb(args.image)
        prompt = Sam3Prompt(
            type="visual" if boxes and not args.text else "text",
            text=args.text,
            boxes=[Sam3Prompt.Box(**box) for box, _ in boxes] or None,
            box_labels=[label for _, label in boxes] or None,
        )
        check_prompts([prompt], rgb.shape[1], rgb.shape[0])
    except ValueError as error:
        raise ConfigError(_one_line(error)) from None
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)  # (H, W, 3) uint8
    model = SegmentAnything3(model_id=args.model, device=args.device, dtype=args.dtype)
    try:
        response = model.segment_image(
            bgr, [prompt], output_prob_thresh=args.threshold, format=args.format
        )
    except ValueError as error:
        raise ConfigError(_one_line(error)) from None
    body = response.model_dump(mode="json")
    print(summary(body, args.image))
    if args.output is not None:
        Path(args.output).expanduser().write_text(json.dumps(body) + "\n")
    if args.annotated is not None:
        annotated = annotate(bgr, body)
        if not cv2.imwrite(str(Path(args.annotated).expanduser()), annotated):
            raise ConfigError(f"cannot write {args.annotated!r}: use a .png or .jpg name")
    return 0


def summary(body: dict[str, Any], image: str) -> str:
    """One line per prompt, then one per instance: score and bounding box."""
    lines = []
    for result in body["prompt_results"]:
        echo = result["echo"]
        what = repr(echo["text"]) if echo["text"] else "exemplars"
        boxes = f" with {echo['num_boxes']} exemplar box(es)" if echo["num_boxes"] else ""
        lines.append(f"{image}: {what}{boxes}: {len(result['predictions'])} instance(s)")
        for index, prediction in enumerate(result["predictions"]):
            x0, y0, x1, y1 = _bounds(prediction)
            lines.append(
                f"  #{index} confidence {prediction['confidence']:.3f} box ({x0}, {y0}, {x1}, {y1})"
            )
    lines.append(f"{body['time'] * 1000:.0f} ms")
    return "\n".join(lines)


def annotate(bgr: Any, body: dict[str, Any]) -> Any:
    """The image with every instance's mask filled and outlined, one colour per instance."""
    import numpy as np
    import supervision as sv

    shape = bgr.shape[:2]
    masks = [
        _mask_of(prediction, shape)
        for result in body["prompt_results"]
        for prediction in result["predictions"]
    ]
    if not masks:
        return bgr.copy()
    stacked = np.stack(masks)  # (N, H, W) bool
    detections = sv.Detections(
        xyxy=sv.mask_to_xyxy(stacked).astype(np.float32),
        mask=stacked,
        class_id=np.arange(len(masks)),
    )
    annotated = sv.MaskAnnotator(opacity=0.45).annotate(bgr.copy(), detections)
    return sv.PolygonAnnotator(thickness=2).annotate(annotated, detections)


def _mask_of(prediction: dict[str, Any], shape: tuple[int, int]) -> Any:
    """An (H, W) bool mask from a prediction's polygons or COCO RLE."""
    import numpy as np
    import supervision as sv

    masks = prediction["masks"]
    if prediction["format"] == "rle":
        height, width = masks["size"]
        return sv.rle_to_mask(masks["counts"], (width, height)).astype(bool)
    mask = np.zeros(shape, dtype=bool)
    for polygon in masks:
        mask |= sv.polygon_to_mask(np.asarray(polygon, dtype=np.int32), (shape[1], shape[0])) > 0
    return mask


def _bounds(prediction: dict[str, Any]) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) pixels of a prediction's mask; zeros for an empty one."""
    import numpy as np

    masks = prediction["masks"]
    if prediction["format"] == "rle":
        ys, xs = np.nonzero(_mask_of(prediction, tuple(masks["size"])))
    else:
        points = np.asarray([p for polygon in masks for p in polygon]).reshape(-1, 2)
        xs, ys = points[:, 0], points[:, 1]
    if len(xs) == 0:
        return 0, 0, 0, 0
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())
