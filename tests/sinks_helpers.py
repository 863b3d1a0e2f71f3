"""Builders shared by the sinks tests: frames, detections with masks, an HTTP server, Xvfb."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import supervision as sv

from pipeline.video_frame import VideoFrame

EPOCH_START = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)


def make_frame(
    frame_id: int = 0,
    *,
    width: int = 160,
    height: int = 120,
    video_identifier: str = "cam",
    source_id: int = 0,
    from_file: bool = True,
    epoch: int = 0,
    fps: float = 25.0,
) -> VideoFrame:
    """A frame with a dull grey gradient, so mask colours stand out against it."""
    ramp = np.linspace(40, 90, width, dtype=np.uint8)
    image = np.repeat(np.repeat(ramp[None, :, None], height, axis=0), 3, axis=2)
    return VideoFrame(
        image=np.ascontiguousarray(image),
        frame_id=frame_id,
        frame_timestamp=EPOCH_START + timedelta(seconds=frame_id / fps),
        fps=fps,
        measured_fps=fps,
        source_id=source_id,
        video_identifier=video_identifier,
        comes_from_video_file=from_file,
        epoch=epoch,
    )


def make_detections(
    width: int = 160,
    height: int = 120,
    boxes: list[tuple[int, int, int, int]] | None = None,
    *,
    first_tracker_id: int = 1,
) -> sv.Detections:
    """Detections shaped as the tracker emits them: an ellipse mask inside each box."""
    boxes = boxes or [(10, 20, 60, 90), (90, 30, 150, 100)]
    masks = np.zeros((len(boxes), height, width), dtype=bool)
    rows, cols = np.mgrid[0:height, 0:width]
    for index, (x1, y1, x2, y2) in enumerate(boxes):
        cx, cy, rx, ry = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2, (y2 - y1) / 2
        masks[index] = ((cols - cx) / rx) ** 2 + ((rows - cy) / ry) ** 2 <= 1.0
    count = len(boxes)
    return sv.Detections(
        xyxy=np.array(boxes, dtype=np.float32).reshape(-1, 4),
        mask=masks,
        confidence=np.linspace(0.9, 0.5, count).astype(np.float32),
        class_id=np.arange(count) % 2,
        tracker_id=np.arange(first_tracker_id, first_tracker_id + count, dtype=np.int64),
        data={"class_name": np.array(["person", "forklift"] * count)[:count]},
    )


@dataclass
class RecordingServer:
    """An HTTP server on 127.0.0.1 that records JSON bodies and answers ``status``.

    Each request sets ``received`` (a Condition) so tests wait for deliveries instead of sleeping.
    """

    port: int = 0
    status: int = 200
    bodies: list = field(default_factory=list)
    headers: list = field(default_factory=list)
    received: threading.Condition = field(default_factory=threading.Condition)
    _server: http.server.ThreadingHTTPServer | None = None

    def start(self) -> RecordingServer:
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                # Record before answering: once the sink sees the response, the body is here.
                with recorder.received:
                    if recorder.status < 300:
                        recorder.bodies.append(json.loads(body))
                        recorder.headers.append(dict(self.headers))
                    recorder.received.notify_all()
                self.send_response(recorder.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def wait_for_bodies(self, count: int, timeout: float = 10.0) -> bool:
        with self.received:
            return self.received.wait_for(lambda: len(self.bodies) >= count, timeout)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


@contextlib.contextmanager
def xvfb(width: int = 640, height: int = 480) -> Iterator[str]:
    """Start a virtual X server and yield its DISPLAY string once it accepts connections.

    ``-displayfd`` makes Xvfb pick a free display number and write it to our pipe only when it is
    ready, so there is no display number to guess and no socket to poll.
    """
    binary = shutil.which("Xvfb")
    if binary is None:
        raise FileNotFoundError("Xvfb")
    read_end, write_end = os.pipe()
    screen = f"{width}x{height}x24"
    process = subprocess.Popen(
        [binary, "-displayfd", str(write_end), "-screen", "0", screen, "-nolisten", "tcp"],
        pass_fds=(write_end,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_end)
    try:
        with os.fdopen(read_end, "rb") as pipe:
            number = pipe.readline().decode().strip()
        if not number:
            raise RuntimeError(f"Xvfb exited with {process.wait(5)} before opening a display")
        yield f":{number}"
    finally:
        process.terminate()
        process.wait(10)
