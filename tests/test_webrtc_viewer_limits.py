"""WebRTC viewers are capped and an offer that never connects is forgotten (issue 12, item 6).

Real aiortc on both sides, on loopback: the server runs in a uvicorn thread with ICE restricted to
127.0.0.1, the viewers are aiortc peer connections on the test's own event loop. An offer that
can never connect is what an attacker sends: no candidates and no end-of-candidates, so the
server's ICE agent waits for trickled candidates that never come. Before the cap and the connect
timeout such offers piled up (260 viewers, 530 file descriptors in 2.5 minutes).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from pipeline.cli.serve import main as serve_main
from pipeline.service import IceSettings, ServiceSettings, create_app
from pipeline.service.settings import ViewerSettings
from tests.service_helpers import RunningServer, ScriptedPipelines, scripted_engine, start_server
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(120)


def _serve(viewers: ViewerSettings) -> RunningServer:
    settings = ServiceSettings(ice=IceSettings(loopback_only=True), viewers=viewers)
    app = create_app(settings, engine=scripted_engine(), pipeline_factory=ScriptedPipelines().init)
    server = start_server(app)
    server.wait_booted()
    return server


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[RunningServer] = []

    def start(**viewers: Any) -> RunningServer:
        servers.append(_serve(ViewerSettings(**viewers)))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def _create_stream(server: RunningServer) -> str:
    with server.client() as http:
        response = http.post("/streams", json={"source": "testpattern", "classes": ["square"]})
    assert response.status_code == 201, response.text
    stream_id: str = response.json()["id"]
    return stream_id


async def _viewer() -> RTCPeerConnection:
    """A viewer as the page makes it: receive-only video plus the detections channel."""
    peer = RTCPeerConnection()
    peer.addTransceiver("video", direction="recvonly")
    peer.createDataChannel("detections")
    await peer.setLocalDescription(await peer.createOffer())
    return peer


async def _unreachable_offer() -> str:
    """An offer whose ICE can never complete: no candidates, none promised to follow."""
    peer = await _viewer()
    sdp = peer.localDescription.sdp
    await peer.close()
    kept = [
        line
        for line in sdp.splitlines()
        if not line.startswith(("a=candidate:", "a=end-of-candidates"))
    ]
    return "\r\n".join(kept) + "\r\n"


async def _post_offer(server: RunningServer, stream_id: str, sdp: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.url, timeout=30.0) as http:
        return await http.post(f"/streams/{stream_id}/webrtc", json={"sdp": sdp, "type": "offer"})


def _publisher(server: RunningServer, stream_id: str) -> Any:
    return server.manager.get(stream_id).webrtc


def _slots_in_use(server: RunningServer) -> int:
    in_use: int = server.manager.viewer_slots.in_use
    return in_use


def test_offers_that_never_connect_are_closed_at_the_connect_timeout(serve: Any) -> None:
    server = serve(max_per_stream=3, max_total=8, connect_timeout_s=5.0)
    stream_id = _create_stream(server)
    publisher = _publisher(server, stream_id)

    async def flood() -> list[int]:
        return [
            (await _post_offer(server, stream_id, await _unreachable_offer())).status_code
            for _ in range(4)
        ]

    assert asyncio.run(flood()) == [200, 200, 200, 429], "three held, the fourth over the cap"
    assert publisher.viewers == 3 and _slots_in_use(server) == 3

    wait_until(
        lambda: publisher.viewers == 0 and _slots_in_use(server) == 0,
        timeout=30,
        what="unconnected viewers to be dropped at the connect timeout",
    )
    with server.client() as http:
        outputs = http.get(f"/streams/{stream_id}").json()["status"]["outputs"]
    assert outputs["webrtc_viewers"] == 0
    again = asyncio.run(_post_offer(server, stream_id, asyncio.run(_unreachable_offer())))
    assert again.status_code == 200, "the slots are free again"


def test_offers_over_the_per_stream_or_server_cap_get_429_naming_the_cap(serve: Any) -> None:
    server = serve(max_per_stream=2, max_total=3, connect_timeout_s=60.0)
    first, second = _create_stream(server), _create_stream(server)

    async def offers(stream_id: str, count: int) -> list[httpx.Response]:
        return [
            await _post_offer(server, stream_id, await _unreachable_offer()) for _ in range(count)
        ]

    on_first = asyncio.run(offers(first, 3))
    assert [response.status_code for response in on_first] == [200, 200, 429]
    assert "--max-viewers-per-stream (2)" in on_first[2].json()["detail"]
    on_second = asyncio.run(offers(second, 2))
    assert [response.status_code for response in on_second] == [200, 429]
    assert "--max-viewers (3)" in on_second[1].json()["detail"]
    assert _publisher(server, first).viewers == 2 and _publisher(server, second).viewers == 1
    assert _slots_in_use(server) == 3, "a refused offer made no peer connection"

    with server.client() as http:
        assert http.delete(f"/streams/{first}").status_code == 204
    wait_until(lambda: _slots_in_use(server) == 1, timeout=30, what="the deleted stream's slots")
    assert [response.status_code for response in asyncio.run(offers(second, 1))] == [200]


def test_a_connected_viewer_is_kept_and_frees_its_slot_when_it_closes(serve: Any) -> None:
    server = serve(max_per_stream=1, max_total=4, connect_timeout_s=10.0)
    stream_id = _create_stream(server)
    publisher = _publisher(server, stream_id)

    async def connect_then_close() -> tuple[int, int]:
        viewer = await _viewer()
        connected = asyncio.Event()

        @viewer.on("connectionstatechange")
        def _on_state() -> None:
            if viewer.connectionState == "connected":
                connected.set()

        answer = await _post_offer(server, stream_id, viewer.localDescription.sdp)
        assert answer.status_code == 200, answer.text
        await viewer.setRemoteDescription(RTCSessionDescription(**answer.json()))
        await asyncio.wait_for(connected.wait(), timeout=30)
        await asyncio.to_thread(
            wait_until,
            lambda: publisher.connecting == 0,
            30,
            "the server to see its viewer connected (its deadline cancelled)",
        )
        viewers_while_connected = publisher.viewers
        over_cap = await _post_offer(server, stream_id, await _unreachable_offer())
        await viewer.close()
        return viewers_while_connected, over_cap.status_code

    viewers_while_connected, over_cap = asyncio.run(connect_then_close())
    assert viewers_while_connected == 1 and over_cap == 429
    wait_until(
        lambda: publisher.viewers == 0 and _slots_in_use(server) == 0,
        timeout=30,
        what="the closed viewer's slot to be given back",
    )
    again = asyncio.run(_post_offer(server, stream_id, asyncio.run(_unreachable_offer())))
    assert again.status_code == 200


def test_an_offer_that_cannot_be_used_gives_its_slot_back(serve: Any) -> None:
    server = serve(max_per_stream=1, max_total=1, connect_timeout_s=60.0)
    stream_id = _create_stream(server)
    for _ in range(2):  # the second would be a 429 if the first had kept its slot
        refused = asyncio.run(_post_offer(server, stream_id, "v=0\r\nnot an offer\r\n"))
        assert refused.status_code == 422, refused.text
    assert _slots_in_use(server) == 0 and _publisher(server, stream_id).viewers == 0


@pytest.mark.parametrize("flag", ["--max-viewers-per-stream", "--max-viewers"])
def test_serve_refuses_a_viewer_cap_below_one_in_one_line(
    flag: str, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert serve_main(["serve", "--state-dir", str(tmp_path), flag, "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [f"sam3-stream: error: {flag} must be at least 1, got 0"]
