"""The demo's processing: file -> tracker -> annotated MP4 + JSONL."""

from __future__ import annotations

import pathlib
from typing import Any


def run_demo(
    clip: pathlib.Path,
    *,
    model: str,
    device: str,
    class_names: str,
    threshold: float,
    video_path: pathlib.Path,
    jsonl_path: pathlib.Path,
    config_overrides: dict[str, Any],
) -> tuple[int, int]:
    """Run ``clip`` through the pipeline; return (frames processed, detections emitted)."""
    import sinks
    from pipeline.loop.inference_pipeline import InferencePipeline
    from tracker import Sam3VideoTracker

    tracker = Sam3VideoTracker.from_pretrained(model, device=device, **config_overrides)
    video_sink = sinks.VideoFileSink.init(str(video_path))
    jsonl_sink = sinks.JsonlSink(jsonl_path)
    counts = {"frames": 0, "detections": 0}

    def count(predictions: Any, frame: Any) -> None:
        counts["frames"] += 1
        counts["detections"] += len(predictions)

    fan_out = sinks.multi_sink([video_sink, jsonl_sink, count])
    pipeline = InferencePipeline.init(
        video_reference=str(clip),
        class_names=class_names,
        on_prediction=fan_out,
        threshold=threshold,
        tracker=tracker,
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
