"""``sam3-stream demo``: the whole path on a bundled sample clip, offline on a fresh machine.

Writes a short clip of moving shapes, runs it through the pipeline with the real
``facebook/sam3`` when its weights are in the local cache, else with the small SAM3 trained on
synthetic shapes that ships in the package (and says loudly what it is), and writes an annotated
MP4 and a JSON-lines file. The tiny random checkpoint runs only when asked for by ``--model``.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
from dataclasses import dataclass
from typing import Any

TINY_BANNER = (
    "="
    * 78
    + "\nRunning a TINY RANDOMLY INITIALISED checkpoint (asked for with --model). Its masks\n"
    "and ids are MEANINGLESS; this run only shows the pipeline works. Without --model the demo\n"
    "runs facebook/sam3 when it is cached, else the bundled small SAM3 trained on shapes.\n"
    + "="
    * 78
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the full pipeline on a bundled sample clip (offline-capable)",
        description="Writes a sample clip, tracks its shapes, writes an annotated MP4 and JSONL.",
    )
    parser.add_argument("--output-dir", default="sam3-stream-demo", help="where files go")
    parser.add_argument("--model", default=None, help="model id or directory (default: auto)")
    parser.add_argument(
        "--classes",
        default=None,
        help="comma-separated concepts (default: 'square, circle' for SAM3, "
        "'green, magenta' for the bundled shapes model: it knows colour words only)",
    )
    parser.add_argument("--frames", type=int, default=45, help="length of the sample clip")
    parser.add_argument("--device", default="auto")
    parser.set_defaults(handler=_run)


REAL_CLASSES = "square, circle"
SHAPES_CLASSES = "green, magenta"
"""The sample clip's square is green and its disc magenta: SAM3 is asked for the shapes, the
bundled shapes model for their colours (the only words it knows)."""


@dataclass(frozen=True)
class DemoModel:
    """The model a demo runs and how to run it."""

    path: str
    banner: str | None  # said first on stderr; None for the real weights
    classes: str  # the default prompt for the sample clip
    threshold: float  # output score threshold
    max_objects: int | None  # None: the tracker's default budget


def _choose_model(requested: str | None) -> DemoModel:
    """The real SAM3 when cached, else the bundled shapes model; ``requested`` always wins."""
    from tracker import is_tiny_model
    from tracker.errors import ModelLoadError
    from tracker.shapes_checkpoint import (
        SHAPES_BANNER,
        is_shapes_model,
        shapes_model_path,
        shapes_model_threshold,
    )
    from tracker.weights import REAL_MODEL, real_weights_available

    if requested is None and real_weights_available(REAL_MODEL):
        requested = REAL_MODEL
    if requested is None:
        try:
            requested = str(shapes_model_path())
        except FileNotFoundError as error:
            raise ModelLoadError(str(error)) from None
    if is_tiny_model(requested):
        # Few objects keep the random model quick on a laptop CPU.
        return DemoModel(requested, TINY_BANNER, REAL_CLASSES, 0.0, 3)
    if is_shapes_model(requested):
        threshold = shapes_model_threshold(requested)
        return DemoModel(requested, SHAPES_BANNER, SHAPES_CLASSES, threshold, None)
    return DemoModel(requested, None, REAL_CLASSES, 0.5, None)


def _run(args: argparse.Namespace) -> int:
    from pipeline.errors import ConfigError
    from pipeline.sources.sample_clip import write_sample_clip

    if args.frames < 1:
        raise ConfigError(f"--frames must be at least 1, got {args.frames}")
    _check_device_here(args.device)
    output_dir = _usable_output_dir(pathlib.Path(args.output_dir))
    model = _choose_model(args.model)
    if model.banner:
        print(model.banner, file=sys.stderr)
    clip = write_sample_clip(output_dir / "sample.mp4", frames=args.frames)
    print(f"sample clip: {clip}")
    video_path = output_dir / "annotated.mp4"
    jsonl_path = output_dir / "detections.jsonl"
    frames, detections = _run_demo(
        clip,
        model=model.path,
        device=args.device,
        class_names=model.classes if args.classes is None else args.classes,
        threshold=model.threshold,
        video_path=video_path,
        jsonl_path=jsonl_path,
        max_objects=model.max_objects,
    )
    print(f"processed {frames} frames, {detections} detections with {model.path}")
    print(f"annotated video: {video_path}")
    print(f"detections (JSON lines): {jsonl_path}")
    if model.banner == TINY_BANNER:
        print("(random weights: the masks above are meaningless)", file=sys.stderr)
    return 0


def _check_device_here(device: str) -> None:
    """A device name the pipeline takes, present on this machine: checked before any work.

    Raises:
        ConfigError: not a device name; ModelLoadError: this machine does not have it.
    """
    from pipeline.loop.options import check_device
    from tracker.model import resolve_device

    resolve_device(check_device(device))


def _usable_output_dir(requested: pathlib.Path) -> pathlib.Path:
    """``requested`` resolved and created, or one line saying why it cannot hold the outputs.

    Raises:
        ConfigError: it is a file, cannot be created, or cannot be written.
    """
    from pipeline.errors import ConfigError

    output_dir = requested.expanduser().resolve()
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(
            f"--output-dir {output_dir}: cannot create it: {error.strerror or error}",
            field="output_dir",
        ) from None
    if not os.access(output_dir, os.W_OK | os.X_OK):
        raise ConfigError(f"--output-dir {output_dir}: not writable", field="output_dir")
    return output_dir


def _run_demo(
    clip: pathlib.Path,
    *,
    model: str,
    device: str,
    class_names: str,
    threshold: float,
    video_path: pathlib.Path,
    jsonl_path: pathlib.Path,
    max_objects: int | None,
) -> tuple[int, int]:
    """Run ``clip`` through the pipeline; return (frames processed, detections emitted)."""
    import sinks
    from pipeline.loop.inference_pipeline import InferencePipeline
    from tracker import Sam3VideoTracker

    tracker = Sam3VideoTracker.from_pretrained(model, device=device)
    video_sink = sinks.VideoFileSink(str(video_path))  # native size and fps, not init()'s 720p
    jsonl_sink = sinks.JsonlSink(jsonl_path)
    counts = {"frames": 0, "detections": 0}

    def count(predictions: Any, frame: Any) -> None:
        counts["frames"] += 1
        counts["detections"] += len(predictions)

    fan_out = sinks.MultiSink([video_sink, jsonl_sink, count])
    pipeline = InferencePipeline.init(
        video_reference=str(clip),
        class_names=class_names,
        on_prediction=fan_out,
        threshold=threshold,
        tracker=tracker,
        max_objects=max_objects,
        show_progress=True,
    )
    try:
        pipeline.start()
        pipeline.join()
    finally:
        pipeline.terminate()
        sinks.close_sink(fan_out)
        video_sink.release()
        jsonl_sink.close()
    return counts["frames"], counts["detections"]
