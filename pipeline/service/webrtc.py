"""WebRTC out of the service: annotated frames as a video track, detections on a data channel.

The browser offers (a recvonly video transceiver plus a ``detections`` data channel), the server
answers with ``POST /streams/{id}/webrtc``; no trickle ICE, the offer carries every candidate.

LATEST FRAME ONLY. A stream publishes its newest (image, detections) into ``LatestFrame``, which
holds one and replaces it: nothing queues between the model and the encoder. The track annotates
(``sinks.annotate``) only the frames it actually sends, off the event loop, so an idle stream or a
slow encoder costs no drawing. All peers share one source track per stream through aiortc's
``MediaRelay`` with ``buffered=False``: its default per-consumer queue is unbounded, and a viewer
on a slow link would otherwise hold every frame it has not sent yet.

Detections go out as the JSONL record without masks (``sinks.serialize.frame_record``); a channel
whose send buffer is backed up skips frames instead of growing.

VIEWER CAPS. An offer first claims a slot (``ViewerSlots``: per stream and for the server; over
either cap it is answered 429 before any peer connection exists). A peer that is not connected
``connect_timeout_s`` after its answer is closed and its slot given back, as is one that fails or
closes: offers that never complete ICE cannot pile up.

ICE. aiortc's default STUN server is Google's; the service gathers host candidates only unless
``ice_servers`` are configured. ``IceSettings.loopback_only`` keeps every packet on 127.0.0.1:
aioice leaves 127.0.0.1 out of its host candidates (``aioice.ice.get_host_addresses``) and aiortc
has no option to choose interfaces, so ``use_loopback_host_candidates`` replaces that function
(process-wide), and remote candidates that are not loopback addresses are dropped from offers.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import ipaddress
import logging
import threading
import time
from typing import Any

import aioice.ice
import av
import cv2
import numpy as np
import supervision as sv
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError

from pipeline.service.api_errors import WebRTCOfferError
from pipeline.service.models import WebRTCOffer
from pipeline.service.settings import IceSettings
from pipeline.service.viewer_slots import ViewerSlots
from sinks.annotate import annotate
from sinks.serialize import dumps, frame_record

logger = logging.getLogger(__name__)

VIDEO_CLOCK_RATE = 90_000
"""RTP video clock: pts in 1/90000 s, taken from the wall clock at send time."""

MAX_VIEWER_WIDTH = 1280
"""Wider frames are scaled down for the viewer: software VP8 at 4K would starve the model of CPU."""

MAX_CHANNEL_BACKLOG_BYTES = 256 * 1024
"""A data channel with more unsent bytes than this skips frames (latest-only, like the video)."""

_RECV_POLL_S = 0.5


def _loopback_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    return ["127.0.0.1"] if use_ipv4 else ["::1"]


def use_loopback_host_candidates() -> None:
    """Make aioice gather host candidates on loopback only, for every connection of the process."""
    aioice.ice.get_host_addresses = _loopback_host_addresses


def keep_loopback_candidates(sdp: str) -> str:
    """Drop ``a=candidate`` lines whose address is not a loopback IP (mDNS names included)."""
    kept = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            fields = line.split()
            address = fields[4] if len(fields) > 4 else ""
            try:
                if not ipaddress.ip_address(address).is_loopback:
                    continue
            except ValueError:
                continue
        kept.append(line)
    return "\r\n".join(kept) + "\r\n"


class LatestFrame:
    """The newest (image, detections) of one stream; a new frame replaces the old, never queues.

    Written from a sink worker thread, read by video tracks on the event loop.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._frame: tuple[np.ndarray, sv.Detections] | None = None
        self._sequence = 0
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    @property
    def sequence(self) -> int:
        """How many frames were published; a reader compares it with the last it took."""
        with self._lock:
            return self._sequence

    def publish(self, image: np.ndarray, detections: sv.Detections) -> None:
        """Replace the held frame (any thread) and wake the readers."""
        with self._lock:
            self._frame = (image, detections)
            self._sequence += 1
            waiters = list(self._waiters)
        for loop, event in waiters:
            with contextlib.suppress(RuntimeError):  # loop closed at shutdown
                loop.call_soon_threadsafe(event.set)

    async def newer_than(
        self, sequence: int, timeout: float
    ) -> tuple[int, np.ndarray, sv.Detections] | None:
        """The held frame if it is newer than ``sequence``; else wait up to ``timeout`` for one."""
        event = asyncio.Event()
        waiter = (asyncio.get_running_loop(), event)
        with self._lock:
            if self._frame is not None and self._sequence > sequence:
                return (self._sequence, *self._frame)
            self._waiters.add(waiter)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout)
            with self._lock:
                if self._frame is not None and self._sequence > sequence:
                    return (self._sequence, *self._frame)
            return None
        finally:
            with self._lock:
                self._waiters.discard(waiter)


def viewer_image(image_bgr: np.ndarray, detections: sv.Detections) -> np.ndarray:
    """Annotate a frame for the viewer: at most ``MAX_VIEWER_WIDTH`` wide, even sides (yuv420p)."""
    annotated = annotate(image_bgr, detections)  # (H, W, 3) uint8 BGR
    height, width = annotated.shape[:2]
    if width > MAX_VIEWER_WIDTH:
        scale = MAX_VIEWER_WIDTH / width
        annotated = cv2.resize(
            annotated,
            (MAX_VIEWER_WIDTH, max(2, round(height * scale))),
            interpolation=cv2.INTER_AREA,
        )
        height, width = annotated.shape[:2]
    return annotated[: height - height % 2, : width - width % 2]


class AnnotatedVideoTrack(MediaStreamTrack):
    """A video track that sends the latest annotated frame of a stream, each frame once."""

    kind = "video"

    def __init__(self, latest: LatestFrame) -> None:
        super().__init__()
        self._latest = latest
        self._sent = 0
        self._started = time.monotonic()

    async def recv(self) -> av.VideoFrame:
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            got = await self._latest.newer_than(self._sent, _RECV_POLL_S)
            if got is not None:
                break
        self._sent, image, detections = got
        annotated = await asyncio.to_thread(viewer_image, image, detections)
        frame = av.VideoFrame.from_ndarray(annotated, format="bgr24")
        frame.pts = int((time.monotonic() - self._started) * VIDEO_CLOCK_RATE)
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK_RATE)
        return frame


class WebRTCPublisher:
    """Every WebRTC viewer of one stream: peer connections, their data channels, the shared track.

    ``publish`` is called per frame from a sink worker thread and costs nothing without viewers.
    Peer connections live on the event loop that answered their offer.

    Args:
        stream_id: the stream's id (log lines and errors).
        relay: the server's ``MediaRelay`` (one source track per stream, unbuffered).
        ice: how peers gather candidates.
        slots: the server's viewer caps, shared by every stream (None: caps of this stream alone).
    """

    def __init__(
        self,
        stream_id: str,
        relay: MediaRelay,
        ice: IceSettings,
        slots: ViewerSlots | None = None,
    ) -> None:
        self.stream_id = stream_id
        self.latest = LatestFrame()
        self.channel_frames_skipped = 0
        self._relay = relay
        self._ice = ice
        self._slots = slots or ViewerSlots()
        self._lock = threading.Lock()
        self._peers: set[RTCPeerConnection] = set()
        self._connect_deadlines: dict[RTCPeerConnection, asyncio.TimerHandle] = {}
        self._closing: set[asyncio.Future[None]] = set()
        self._channels: set[RTCDataChannel] = set()
        self._track: AnnotatedVideoTrack | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    @property
    def viewers(self) -> int:
        """Peers answered and not dropped: connecting or connected."""
        with self._lock:
            return len(self._peers)

    @property
    def connecting(self) -> int:
        """Peers answered but not connected yet: each is dropped at its connect deadline."""
        with self._lock:
            return len(self._connect_deadlines)

    def publish(self, detections: sv.Detections, frame: Any) -> None:
        """Hand one frame to the viewers: the image to the track, the record to the channels."""
        with self._lock:
            if not self._peers:
                return
            loop, has_channels = self._loop, bool(self._channels)
        self.latest.publish(frame.image, detections)
        if has_channels and loop is not None:
            text = dumps(frame_record(detections, frame, mask_format="none"))
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._send_detections, text)

    def _send_detections(self, text: str) -> None:
        for channel in list(self._channels):
            if channel.readyState != "open":
                continue
            if channel.bufferedAmount > MAX_CHANNEL_BACKLOG_BYTES:
                self.channel_frames_skipped += 1
                continue
            channel.send(text)

    async def answer(self, offer: WebRTCOffer) -> RTCSessionDescription:
        """Accept a browser's offer and return the answer (all candidates included).

        The peer holds a viewer slot from before it exists until it is dropped; one that is not
        connected ``connect_timeout_s`` after this answer is dropped.

        Raises:
            ViewerLimitError: the stream or the server has as many viewers as allowed (429).
            WebRTCOfferError: the SDP cannot be parsed or negotiated, or offers no video.
        """
        sdp = keep_loopback_candidates(offer.sdp) if self._ice.loopback_only else offer.sdp
        configuration = RTCConfiguration(
            iceServers=[RTCIceServer(urls=url) for url in self._ice.ice_servers]
        )
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._closed:
                raise WebRTCOfferError(f"stream {self.stream_id!r} is being deleted")
            self._slots.claim(len(self._peers))
            try:
                peer = RTCPeerConnection(configuration=configuration)
            except BaseException:
                self._slots.release()
                raise
            self._loop = loop
            self._peers.add(peer)
            self._connect_deadlines[peer] = loop.call_later(
                self._slots.settings.connect_timeout_s, self._drop_unconnected, peer
            )

        @peer.on("datachannel")
        def _on_datachannel(channel: RTCDataChannel) -> None:
            with self._lock:
                self._channels.add(channel)
            channel.on("close", lambda: self._forget_channel(channel))

        @peer.on("connectionstatechange")
        async def _on_state() -> None:
            logger.info("viewer of %s: %s", self.stream_id, peer.connectionState)
            if peer.connectionState == "connected":
                with self._lock:
                    deadline = self._connect_deadlines.pop(peer, None)
                if deadline is not None:
                    deadline.cancel()
            elif peer.connectionState in ("failed", "closed"):
                await self._drop(peer)

        try:
            # aiortc raises assorted exception types on malformed SDP; all of them mean bad input.
            await peer.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            if not any(t.kind == "video" for t in peer.getTransceivers()):
                raise WebRTCOfferError(
                    "the offer receives no video: add a recvonly video transceiver"
                )
            peer.addTrack(self._relay.subscribe(self._source_track(), buffered=False))
            await peer.setLocalDescription(await peer.createAnswer())
        except WebRTCOfferError:
            await self._drop(peer)
            raise
        except Exception as error:
            await self._drop(peer)
            raise WebRTCOfferError(
                f"cannot use this SDP offer ({type(error).__name__}: {error})"
            ) from None
        return peer.localDescription

    def _source_track(self) -> AnnotatedVideoTrack:
        with self._lock:
            if self._track is None or self._track.readyState != "live":
                self._track = AnnotatedVideoTrack(self.latest)
            return self._track

    def _forget_channel(self, channel: RTCDataChannel) -> None:
        with self._lock:
            self._channels.discard(channel)

    def _drop_unconnected(self, peer: RTCPeerConnection) -> None:
        """The connect deadline passed: close the peer unless it connected meanwhile."""
        if peer.connectionState == "connected":
            return
        logger.info(
            "viewer of %s: not connected after %.0f s, closed",
            self.stream_id,
            self._slots.settings.connect_timeout_s,
        )
        closing = asyncio.ensure_future(self._drop(peer))
        self._closing.add(closing)  # the loop keeps only a weak reference to a task
        closing.add_done_callback(self._closing.discard)

    async def _drop(self, peer: RTCPeerConnection) -> None:
        """Forget a peer, give back its slot (once, however often it is dropped) and close it."""
        with self._lock:
            held = peer in self._peers
            self._peers.discard(peer)
            deadline = self._connect_deadlines.pop(peer, None)
        if deadline is not None:
            deadline.cancel()
        if held:
            self._slots.release()
        await peer.close()

    async def close(self) -> None:
        """Close every peer connection and stop the source track (on the peers' loop)."""
        with self._lock:
            self._closed = True
            peers, self._peers = list(self._peers), set()
            deadlines, self._connect_deadlines = list(self._connect_deadlines.values()), {}
            self._channels.clear()
            track, self._track = self._track, None
        for deadline in deadlines:
            deadline.cancel()
        for peer in peers:
            self._slots.release()
            await peer.close()
        if track is not None:
            track.stop()

    def close_soon(self) -> None:
        """``close()`` from any thread: scheduled on the peers' loop, not awaited."""
        with self._lock:
            loop = self._loop
            self._closed = True
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):
            asyncio.run_coroutine_threadsafe(self.close(), loop)
