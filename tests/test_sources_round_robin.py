"""Several sources read in turn: each gets its share, a dead one holds nobody up."""

from __future__ import annotations

import collections
import time
from pathlib import Path

import pytest

from pipeline.sources import RoundRobinReader, make_sources
from tests.sources_helpers import free_port, write_test_clip

pytestmark = pytest.mark.timeout(60)


def test_a_file_that_always_has_frames_does_not_starve_a_live_source(tmp_path: Path) -> None:
    clip = write_test_clip(tmp_path / "clip.mp4", frames=200)
    sources = make_sources([str(clip), "testpattern?fps=30&size=64x48"])
    reader = RoundRobinReader(sources)
    for source in sources:
        source.start()

    served = []
    for _ in range(20):
        served.append(reader.read(timeout=5))
        time.sleep(0.05)  # the model: slower than the 30 fps camera, so it always has a frame
    for source in sources:
        source.stop()

    order = [frame.source_id for frame in served if frame is not None]
    assert len(order) == 20
    counts = collections.Counter(order)
    assert counts[1] >= 8  # without turns the file (source 0) would take every read
    assert counts[0] >= 8


def test_a_dead_camera_holds_up_neither_the_reader_nor_the_other_sources(tmp_path: Path) -> None:
    clip = write_test_clip(tmp_path / "clip.mp4", frames=10)
    dead = f"rtsp://127.0.0.1:{free_port()}/dead"
    sources = make_sources([dead, str(clip)], backoff_initial_s=0.05)
    reader = RoundRobinReader(sources)
    for source in sources:
        source.start()

    frames = []
    while len(frames) < 10:
        frame = reader.read(timeout=5)
        assert frame is not None, "the file's frames were held up"
        frames.append(frame)
    assert reader.read(timeout=0.1) is None  # the file is done, the camera still down
    for source in sources:
        source.stop()

    assert [f.frame_id for f in frames] == list(range(1, 11))
    assert {f.source_id for f in frames} == {1}
    assert reader.exhausted  # the dead camera is stopped now too
