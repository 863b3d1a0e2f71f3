"""``sam3-stream run``: track concepts in files, cameras and streams, results to sinks.

Either flags (``--source`` repeatable, ``--classes``, ``--sink`` repeatable, ...) or ``--config
FILE`` (YAML, see ``pipeline.config.run_config``); flags given with ``--config`` override its
fields. Every value goes through the same pydantic model, so a bad flag and a bad config field get
the same one-line error, naming the flag or the field, and exit code 2.

Visual tracking: ``--box X0,Y0,X1,Y1`` (one object each) and ``--point X,Y[:0|1]`` (all points one
object, with the box when exactly one is given) prompt objects on every source's first frame;
``--classes`` is then optional. Any of them replaces the file's ``prompts:`` (rules and schema in
``pipeline.config.prompt_config``).
"""

from __future__ import annotations

import argparse
from typing import Any

# Field of PipelineConfig -> the flag that sets it, for errors that name what the user typed.
FLAGS = {
    "sources": "--source",
    "classes": "--classes",
    "threshold": "--threshold",
    "model": "--model",
    "device": "--device",
    "max_fps": "--max-fps",
    "sinks": "--sink",
    "status_interval_s": "--status-interval",
    "max_objects": "--max-objects",
}

EPILOG = """\
sources: a file path, rtsp://, rtsps://, rtmp://, http(s):// (HLS too: the URL of the .m3u8;
  http(s) is always treated as a live stream), a webcam index (0) or /dev/videoN,
  or testpattern[?fps=30&size=640x480&frames=N] (synthetic moving shapes).
sinks: screen | video:PATH (annotated, fragmented MP4: .mp4, .m4v or .mov) | jsonl:PATH |
  webhook:URL | udp:HOST:PORT

SIGINT/SIGTERM: stop decoding, deliver every frame already decoded to every sink, finalise files;
  a second signal kills at once (video files still play up to their last 2 s fragment).
exit codes: 0 the sources ended (or were stopped) and nothing was lost; 1 output is incomplete
  (a source gave up, an input file was truncated or damaged, a sink lost output: a sink that
  cannot write at all ends the run at once); 2 refused before any work (bad flag, config,
  reference, sink or model), or a --box/--point (prompts:) that does not fit a source's frames
  (found on its first frame: the run stops). Every cause is one "sam3-stream: error:" line.
prompts: --box X0,Y0,X1,Y1 is corners in pixels of the source's frames (segment's --box is
  X,Y,W,H); --point X,Y is positive, X,Y:0 negative; every source gets every prompt.

examples:
  sam3-stream run --source rtsp://user:pw@cam/stream1 --classes "person, forklift" \\
      --sink jsonl:detections.jsonl
  sam3-stream run --source clip.mp4 --classes person --sink video:annotated.mp4
  sam3-stream run --source clip.mp4 --box 40,30,120,110 --point 300,90 --point 310,60:0 \
      --sink jsonl:tracks.jsonl      (two objects: the box, and the points)
  sam3-stream run --config configs/rtsp-camera.yaml
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="track concepts in files, cameras or streams; write results to sinks",
        description="Run SAM3 on one or more sources until they end or SIGINT/SIGTERM.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", metavar="FILE", help="YAML config (flags override it)")
    parser.add_argument(
        "--source", action="append", metavar="REF", help="video reference (repeatable)"
    )
    parser.add_argument(
        "--classes",
        metavar="'A, B'",
        help="comma-separated concepts to track (optional with --box / --point)",
    )
    parser.add_argument(
        "--box",
        action="append",
        metavar="X0,Y0,X1,Y1",
        help="track the object in this box from the first frame (corners, pixels; repeatable: "
        "one object each)",
    )
    parser.add_argument(
        "--point",
        action="append",
        metavar="X,Y[:0|1]",
        help="a click on (:1, the default) or beside (:0) one object, tracked from the first "
        "frame; repeatable: all points are that one object, with the box if one --box is given",
    )
    parser.add_argument(
        "--prompt-class",
        metavar="NAME",
        help="class_name of the --box / --point objects in the output (default foreground)",
    )
    parser.add_argument("--threshold", type=float, help="minimum detection score (default 0.5)")
    parser.add_argument("--model", help="Hub id or directory (default facebook/sam3)")
    parser.add_argument("--device", help="auto (default), cpu, cuda, cuda:N or mps")
    parser.add_argument("--max-fps", type=float, help="cap on frames processed per source")
    parser.add_argument("--sink", action="append", metavar="SPEC", help="output (repeatable)")
    parser.add_argument(
        "--max-objects",
        type=int,
        metavar="N",
        help="live tracks per source at most; a new object evicts the stalest track "
        "(default: the tracker's budget)",
    )
    parser.add_argument(
        "--status-interval", type=float, metavar="S", help="seconds between live status lines"
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bar or status lines"
    )
    parser.set_defaults(handler=_run)


def config_from_args(args: argparse.Namespace) -> Any:
    """Merge ``--config`` and flags into a validated ``PipelineConfig``.

    Raises:
        ConfigError: one line naming the flag or the config field.
    """
    from pipeline.config.config_file import read_config_file
    from pipeline.config.prompt_config import prompts_from_flags
    from pipeline.config.run_config import parse_config
    from pipeline.errors import ConfigError

    data: dict[str, Any] = read_config_file(args.config) if args.config else {}
    values = {
        "sources": args.source,
        "classes": args.classes,
        "threshold": args.threshold,
        "model": args.model,
        "device": args.device,
        "max_fps": args.max_fps,
        "sinks": args.sink,
        "status_interval_s": args.status_interval,
        "max_objects": args.max_objects,
    }
    given = {field: value for field, value in values.items() if value is not None}
    data.update(given)
    flag_prompts = prompts_from_flags(args.box or [], args.point or [], args.prompt_class)
    if flag_prompts:
        data["prompts"] = flag_prompts  # validated already: their errors named the flag
    if args.no_progress:
        data["show_progress"] = False
    if "sources" not in data:
        raise ConfigError("no source: give --source REF (repeatable) or --config FILE")
    if "classes" not in data and not data.get("prompts"):
        raise ConfigError(
            "no concepts: give --classes 'person, forklift' (or classes: in FILE), or objects "
            "to track by --box X0,Y0,X1,Y1 / --point X,Y"
        )
    origin = args.config or "command line"
    return parse_config(data, origin=origin, flags={f: FLAGS[f] for f in given})


def _run(args: argparse.Namespace) -> int:
    from pipeline.cli.run_pipeline import run_config
    from pipeline.redact import install_log_redaction

    install_log_redaction()
    return run_config(config_from_args(args))
