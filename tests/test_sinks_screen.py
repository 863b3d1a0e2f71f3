"""render_boxes: a real window under Xvfb shows annotate's output; no display fails once, clearly.

OpenCV's Qt backend aborts the process when it cannot reach a display, so every window is opened in
a subprocess; the test process never touches the GUI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

import sinks
from tests.sinks_helpers import make_detections, make_frame, xvfb

REPO_ROOT = Path(__file__).resolve().parent.parent
GUARD_S = 30.0

SHOW_SCRIPT = textwrap.dedent(
    """
    import json, sys, threading
    import cv2
    import sinks
    from tests.sinks_helpers import make_detections, make_frame

    left = make_frame(7, width=200, height=150, video_identifier="left", from_file=False)
    right = make_frame(7, width=120, height=90, video_identifier="right", source_id=1)
    sinks.render_boxes(
        {"predictions": make_detections(200, 150)}, left, display_size=None, fps_overlay=False
    )
    sinks.render_boxes(None, right, display_size=(64, 48))
    visible = {
        title: cv2.getWindowProperty(title, cv2.WND_PROP_VISIBLE)
        for title in ("sam3-stream: left", "sam3-stream: right")
    }
    print(json.dumps(visible), flush=True)
    done = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.readline(), done.set()), daemon=True).start()
    while not done.is_set():  # keep the GUI painting until the test has its screenshot
        cv2.waitKey(20)
    """
)

NO_DISPLAY_SCRIPT = textwrap.dedent(
    """
    import json
    import sinks
    from tests.sinks_helpers import make_detections, make_frame

    outcomes = []
    for frame_id in range(3):
        try:
            sinks.render_boxes(make_detections(), make_frame(frame_id))
            outcomes.append("returned")
        except sinks.DisplayUnavailableError as error:
            outcomes.append("error: " + str(error))
    print(json.dumps(outcomes))
    """
)


def run_python(script: str, env: dict[str, str], **kwargs: object) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


GRAB_SCRIPT = textwrap.dedent(
    """
    import sys
    import av  # and not cv2: with opencv-python's bundled libxcb loaded first, x11grab segfaults
    import numpy as np

    display, size, path = sys.argv[1:]
    for _ in sys.stdin:
        with av.open(display, format="x11grab", options={"video_size": size}) as screen:
            np.save(path, next(screen.decode(video=0)).to_ndarray(format="bgr24"))
        print("grabbed", flush=True)
    """
)


class Screenshots:
    """Screenshots of an X display, taken by a helper process that loads PyAV but not OpenCV."""

    def __init__(self, display: str, width: int, height: int, directory: Path) -> None:
        self._path = directory / "screen.npy"
        self._process = subprocess.Popen(
            [sys.executable, "-c", GRAB_SCRIPT, display, f"{width}x{height}", str(self._path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def grab(self) -> np.ndarray:
        self._process.stdin.write("grab\n")
        self._process.stdin.flush()
        assert self._process.stdout.readline() == "grabbed\n", "the screenshot helper died"
        return np.load(self._path)

    def close(self) -> None:
        self._process.communicate(timeout=GUARD_S)


def find(screen: np.ndarray, image: np.ndarray) -> tuple[float, tuple[int, int]]:
    """Where ``image`` best matches ``screen``, and its mean squared error there.

    ``matchTemplate`` only locates: its float sums leave a rounding residue (OpenCV 5 reports
    about 0.001 for an exact match), so the error is recomputed exactly in integers.
    """
    scores = cv2.matchTemplate(screen, image, cv2.TM_SQDIFF)
    _, _, (x, y), _ = cv2.minMaxLoc(scores)
    height, width = image.shape[:2]
    found = screen[y : y + height, x : x + width].astype(np.int64)
    return float(np.mean((found - image.astype(np.int64)) ** 2)), (x, y)


@pytest.fixture
def display() -> Iterator[str]:
    if "x11grab" not in av.formats_available:
        pytest.skip("PyAV's FFmpeg has no x11grab device to take screenshots with")
    try:
        with xvfb(640, 480) as name:
            yield name
    except FileNotFoundError:
        pytest.skip("Xvfb is not installed (Debian package: xvfb)")


def test_render_boxes_shows_the_annotated_frame_in_a_window_per_source(
    display: str, tmp_path: Path, artifacts_dir: Path
) -> None:
    expected = sinks.annotate(make_frame(7, width=200, height=150).image, make_detections(200, 150))
    screenshots = Screenshots(display, 640, 480, tmp_path)
    shower = run_python(SHOW_SCRIPT, {**os.environ, "DISPLAY": display}, stdin=subprocess.PIPE)
    try:
        visible = json.loads(shower.stdout.readline() or "null")
        assert visible == {"sam3-stream: left": 1.0, "sam3-stream: right": 1.0}, (
            shower.stderr.read() if visible is None else visible
        )
        # Nothing tells us when the X server has painted the window: look until it shows up.
        deadline = time.monotonic() + GUARD_S
        while True:
            screen = screenshots.grab()
            error, (x, y) = find(screen, expected)
            if error == 0 or time.monotonic() > deadline:
                break
    finally:
        shower.communicate("done\n", timeout=GUARD_S)
        screenshots.close()
    cv2.imwrite(str(artifacts_dir / "sinks-render-boxes-screen.png"), screen)

    assert error == 0, f"annotated frame not on screen (best match {error:.1f} at {x},{y})"
    np.testing.assert_array_equal(screen[y : y + 150, x : x + 200], expected)


def without_display() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}


def test_no_display_fails_once_at_the_first_frame_with_a_clear_error() -> None:
    result = run_python(NO_DISPLAY_SCRIPT, without_display()).communicate(timeout=GUARD_S)

    outcomes = json.loads(result[0])
    assert len(outcomes) == 3
    assert outcomes[0].startswith("error: no display for the screen sink: DISPLAY is not set")
    assert outcomes[1:] == ["returned", "returned"], "later frames are dropped quietly, not raised"


def test_an_unreachable_display_is_an_error_not_an_abort() -> None:
    number = next(n for n in range(54321, 54400) if not Path(f"/tmp/.X11-unix/X{n}").exists())
    env = {**without_display(), "DISPLAY": f":{number}"}

    process = run_python(NO_DISPLAY_SCRIPT, env)
    stdout, stderr = process.communicate(timeout=GUARD_S)

    assert process.returncode == 0, stderr
    outcomes = json.loads(stdout)
    assert f"cannot connect to X display ':{number}'" in outcomes[0]
    assert outcomes[1:] == ["returned", "returned"]


def test_a_failed_screen_sink_counts_later_frames_as_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("sinks.screen.display_problem", lambda: "no display: test")
    screen = sinks.ScreenSink()

    with pytest.raises(sinks.DisplayUnavailableError, match="no display: test"):
        screen.on_prediction(make_detections(), make_frame(0))
    screen.on_prediction(make_detections(), make_frame(1))

    assert screen.state is sinks.SinkState.FAILED
    assert screen.stats.dropped == 1
