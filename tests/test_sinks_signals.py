"""SIGTERM in the middle of a run leaves a playable MP4 and only complete JSON lines."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import av
import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
GUARD_S = 60.0
READY_AFTER = 10

# As the pipeline CLI will: SIGTERM raises SystemExit, so atexit hooks and finally blocks run.
# The script never calls release(): the VideoFileSink's atexit hook has to finalise the file.
WRITER_SCRIPT = textwrap.dedent(
    """
    import signal, sys
    import sinks
    from tests.sinks_helpers import make_detections, make_frame

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    video = sinks.VideoFileSink(sys.argv[1])
    jsonl = sinks.JsonlSink(sys.argv[2])
    detections = make_detections()
    for frame_id in range(100_000):
        frame = make_frame(frame_id)
        frame.image[96:, :48] = frame_id * 20 % 240  # a counter to read back from the video
        video.on_prediction({"predictions": detections}, frame)
        jsonl.on_prediction({"predictions": detections}, frame)
        if frame_id == READY_AFTER:
            print("ready", flush=True)
    """
).replace("READY_AFTER", str(READY_AFTER))


def test_sigterm_mid_run_leaves_a_playable_mp4_and_complete_json_lines(tmp_path: Path) -> None:
    video_path, jsonl_path = tmp_path / "out.mp4", tmp_path / "out.jsonl"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER_SCRIPT, str(video_path), str(jsonl_path)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout.readline() == "ready\n", writer.stderr.read()
        writer.send_signal(signal.SIGTERM)
        _, stderr = writer.communicate(timeout=GUARD_S)
    finally:
        writer.kill()

    assert writer.returncode == 128 + signal.SIGTERM, stderr
    lines = jsonl_path.read_text().splitlines()
    records = [json.loads(line) for line in lines]  # every line parses: none was cut
    assert len(records) > READY_AFTER
    assert [r["frame_id"] for r in records] == list(range(len(records)))
    with av.open(str(video_path)) as container:
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    assert len(frames) > READY_AFTER
    assert len(frames) in (len(records), len(records) + 1), "the signal lands between the sinks"
    counters = [int(np.median(frame[100:116, 4:44])) for frame in frames]  # below the boxes
    expected = [i * 20 % 240 for i in range(len(frames))]
    assert np.abs(np.subtract(counters, expected)).max() <= 6, "every frame, in order, to the last"
