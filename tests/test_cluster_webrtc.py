"""A WebRTC viewer at the front door watches a stream that runs on a Ray worker (issue 17, item 5).

The worker sends frame images over the wire only while the front door has a viewer of the stream
(``RemotePipeline.wants_images`` -> ``StreamWorker.set_want_images``); otherwise a frame crosses
as its detections and size only. The worker tests check that switch on the worker class alone;
this one runs it end to end: a real local Ray cluster (one CPU worker on the tiny checkpoint), a
real file stream created over HTTP, a real aiortc viewer on loopback that decodes the VP8 video
and reads the detections channel, and after it leaves, images stop crossing the wire.

The local cluster is owned by this process (``ray.init``/``ray.shutdown``, never ``ray stop``),
see ``tests/cluster_helpers.py``.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription

from pipeline.cluster.remote_pipeline import RemotePipeline
from pipeline.cluster.results import WireFrame
from pipeline.cluster.settings import ClusterSettings
from pipeline.service import IceSettings, ServiceSettings, create_app
from pipeline.sources.sample_clip import write_sample_clip
from tests.cluster_helpers import tiny_engine
from tests.service_helpers import RunningServer, start_server
from tests.waiting import CallRecorder, wait_until

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.timeout(240)

WIDTH, HEIGHT = 160, 120
FRAMES_WANTED = 3
DEADLINE_S = 60.0
"""A guard against hanging when the code is broken; the waits end in seconds when it works."""

SAMPLE_BACKGROUND_BGR = (60, 40, 30)
"""``sample_frame``'s background; the stand-in image of a frame sent without pixels is black."""

VP8_TOLERANCE = 20
"""How far a decoded pixel may be from the colour that was encoded."""

MIN_BACKGROUND_SHARE = 0.05
"""A frame shows the clip when this share of its pixels is the clip's background (masks and boxes
drawn at threshold 0 cover the rest; an annotated stand-in measured 0.001 at most, a real frame
0.12 to 0.8)."""


def shows_the_clip(image: np.ndarray) -> bool:
    """Whether a decoded (H, W, 3) BGR frame carries the clip's pixels, not a black stand-in."""
    distance = np.abs(image.astype(np.int16) - np.array(SAMPLE_BACKGROUND_BGR, np.int16))
    share = float((distance.max(axis=2) <= VP8_TOLERANCE).mean())
    return share >= MIN_BACKGROUND_SHARE


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """A Ray cluster of this test process: one 1-CPU worker plus headroom."""
    temp_dir = tempfile.mkdtemp(prefix="ray-webrtc-", dir="/tmp")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        configure_logging=False,
        log_to_driver=False,
        _temp_dir=temp_dir,
    )
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture
def server(local_ray: None, tiny_model_dir: Path, tmp_path: Path) -> Iterator[RunningServer]:
    """A front door with one CPU worker and loopback-only ICE (the test's viewer is local too)."""
    settings = ServiceSettings(
        state_dir=tmp_path / "state",
        media_root=tmp_path,
        ice=IceSettings(loopback_only=True),
        cluster=ClusterSettings(
            workers=1, gpus_per_worker=0, cpus_per_worker=1, max_streams_per_worker=1
        ),
    )
    running = start_server(create_app(settings, engine=tiny_engine(tiny_model_dir)))
    try:
        running.wait_booted(120)
        yield running
    finally:
        running.stop()


class WireImages(CallRecorder[bool]):
    """Whether each result that reached the front door carried its image over the wire.

    Wraps the stream's ``deliver`` (the poller's hand-off) and calls through, so every frame
    still reaches SSE and the viewer as before.
    """

    def __init__(self, pipeline: RemotePipeline) -> None:
        super().__init__()
        self._deliver = pipeline.deliver
        pipeline.deliver = self  # type: ignore[method-assign]

    def __call__(self, frame: WireFrame) -> None:
        self.record(frame.image is not None)
        self._deliver(frame)


async def _watch(server: RunningServer, stream_id: str) -> tuple[list[np.ndarray], list[dict]]:
    """Connect a viewer as the page does; decoded frames (BGR) and channel records until
    ``FRAMES_WANTED`` frames showed the stream's pixels; then close the viewer."""
    peer = RTCPeerConnection()
    tracks: asyncio.Queue[MediaStreamTrack] = asyncio.Queue()
    records: list[dict[str, Any]] = []
    peer.on("track", tracks.put_nowait)
    peer.addTransceiver("video", direction="recvonly")
    channel = peer.createDataChannel("detections")
    channel.on("message", lambda text: records.append(json.loads(text)))
    try:
        await peer.setLocalDescription(await peer.createOffer())
        async with httpx.AsyncClient(base_url=server.url, timeout=30.0) as http:
            answer = await http.post(
                f"/streams/{stream_id}/webrtc",
                json={"sdp": peer.localDescription.sdp, "type": "offer"},
            )
        assert answer.status_code == 200, answer.text
        await peer.setRemoteDescription(RTCSessionDescription(**answer.json()))
        track = await asyncio.wait_for(tracks.get(), DEADLINE_S)
        assert track.kind == "video"
        images: list[np.ndarray] = []

        async def until_pixels() -> None:
            # The first frames may be black stand-ins: results the worker packed before it
            # heard that a viewer is watching.
            while sum(shows_the_clip(image) for image in images) < FRAMES_WANTED or not records:
                frame = await track.recv()
                images.append(frame.to_ndarray(format="bgr24"))  # (H, W, 3) uint8

        try:
            await asyncio.wait_for(until_pixels(), DEADLINE_S)
        except TimeoutError:
            shown = sum(shows_the_clip(image) for image in images)
            raise AssertionError(
                f"{shown} of {len(images)} decoded frames showed the clip and "
                f"{len(records)} detection records came in {DEADLINE_S} s"
            ) from None
        return images, list(records)
    finally:
        await peer.close()


def test_a_viewer_gets_video_from_a_remote_worker_and_images_stop_when_it_leaves(
    server: RunningServer, tmp_path: Path
) -> None:
    clip = write_sample_clip(tmp_path / "clip.mp4", frames=600, fps=15, width=WIDTH, height=HEIGHT)
    with server.client() as http:
        created = http.post(
            "/streams",
            json={
                "source": clip.name,
                "source_options": {"realtime": True},  # 40 s of video: outlives the test
                "classes": ["square"],
                "threshold": 0.0,
                "max_fps": 5,
                "max_objects": 2,
            },
        )
        assert created.status_code == 201, created.text
        stream_id = created.json()["id"]
        assert created.json()["worker"] == "worker-0"
        assert http.get(f"/streams/{stream_id}").json()["worker"] == "worker-0"

    stream = server.manager.get(stream_id)
    pipeline = stream.pipeline
    assert isinstance(pipeline, RemotePipeline)
    wire = WireImages(pipeline)
    wire.wait_count(1, timeout=DEADLINE_S)  # the stream runs on the worker
    assert not pipeline.wants_images() and not any(wire.received), "no viewer: no pixels sent"

    began = time.monotonic()
    images, records = asyncio.run(_watch(server, stream_id))
    watched_s = time.monotonic() - began

    assert all(image.shape == (HEIGHT, WIDTH, 3) for image in images), [i.shape for i in images]
    assert any(wire.received), "images crossed the wire while the viewer watched"
    assert records and {(r["width"], r["height"]) for r in records} == {(WIDTH, HEIGHT)}
    assert {r["video_identifier"] for r in records} == {pipeline.video_identifier}

    # The viewer closed: the front door stops asking, and the worker stops sending pixels.
    wait_until(
        lambda: stream.webrtc.viewers == 0 and not pipeline.wants_images(),
        DEADLINE_S,
        "the closed viewer to be dropped",
    )
    wait_until(lambda: not pipeline.images_sent, DEADLINE_S, "the worker told: no images")
    told_at = len(wire.received)

    def without_pixels(sent: list[bool]) -> list[bool]:
        """What came after the first frame without pixels since the worker was told."""
        after = sent[told_at:]
        return after[after.index(False) :] if False in after else []

    # Frames the worker packed before it heard may still arrive; from the first without pixels
    # on, none has them.
    wire.wait_for(lambda sent: len(without_pixels(sent)) >= 5, timeout=DEADLINE_S)
    assert not any(without_pixels(wire.received)), wire.received[told_at:]
    print(
        f"viewer: {len(images)} frames ({FRAMES_WANTED} with pixels) and {len(records)} "
        f"detection records in {watched_s:.1f} s"
    )
