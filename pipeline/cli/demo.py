"""``sam3-stream demo``: the whole path on a bundled sample clip, offline on a fresh machine.

Writes a short clip of moving shapes, runs it through the pipeline with the real
``facebook/sam3`` when its weights are in the local cache, else with the tiny random checkpoint
(and says loudly that its masks mean nothing), and writes an annotated MP4 and a JSON-lines file.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
from typing import Any

BANNER = (
    "="
    * 78
    + "\nfacebook/sam3 weights are not in the local cache: running the TINY RANDOMLY INITIALISED\n"
    "model instead. Its masks and ids are MEANINGLESS; this run only shows the pipeline works.\n"
    "For real results: accept the licence at https://huggingface.co/facebook/sam3, then\n"
    "`hf auth login` and `hf download facebook/sam3`, and run `sam3-stream demo` again.\n"
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
    parser.add_argument("--classes", default="square, circle", help="comma-separated concepts")
    parser.add_argument("--frames", type=int, default=45, help="length of the sample clip")
    parser.add_argument("--device", default="auto")
    parser.set_defaults(handler=_run)


def _choose_model(requested: str | None, output_dir: pathlib.Path) -> tuple[str, bool, int | None]:
    """(model, is_tiny, object budget: None for the tracker's default)."""
    from tracker import build_tiny_model, is_tiny_model
    from tracker.weights import REAL_MODEL, real_weights_available

    if requested:
        return requested, is_tiny_model(requested), None
    if real_weights_available(REAL_MODEL):
        return REAL_MODEL, False, None
    tiny = output_dir / "tiny-sam3"
    if not is_tiny_model(tiny):
        build_tiny_model(tiny)
    # Few objects keep the random model quick on a laptop CPU.
    return str(tiny), True, 3


def _run(args: argparse.Namespace) -> int:
    from pipeline.errors import ConfigError
    from pipeline.sources.sample_clip import write_sample_clip

    if args.frames < 1:
        raise ConfigError(f"--frames must be at least 1, got {args.frames}")
    _check_device_here(args.device)
    output_dir = _usable_output_dir(pathlib.Path(args.output_dir))
    model, is_tiny, max_objects = _choose_model(args.model, output_dir)
    if is_tiny:
        print(BANNER, file=sys.stderr)
    clip = write_sample_clip(output_dir / "sample.mp4", frames=args.frames)
    print(f"sample clip: {clip}")
    video_path = output_dir / "annotated.mp4"
    jsonl_path = output_dir / "detections.jsonl"
    frames, detections = _run_demo(
        clip,
        model=model,
        device=args.device,
        class_names=args.classes,
        threshold=0.0 if is_tiny else 0.5,
        video_path=video_path,
        jsonl_path=jsonl_path,
        max_objects=max_objects,
    )
    print(f"processed {frames} frames, {detections} detections with {model}")
    print(f"annotated video: {video_path}")
    print(f"detections (JSON lines): {jsonl_path}")
    if is_tiny:
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
