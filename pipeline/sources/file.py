"""Video files: every frame, in order, at the consumer's pace, with timestamps from PTS."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import av

from pipeline.errors import SourceError
from pipeline.sources.base import SourceState, VideoSource

logger = logging.getLogger(__name__)

CLEAN_END = "end of file"


@dataclass
class FileDamage:
    """What decoding a file met on the way.

    Attributes:
        decoded: frames the decoder produced so far.
        corrupt_packets: packets the decoder refused.
        packets_after_error: packets decoded fine since the last refused one. None of them
            after a refused packet means the file was cut there (the decoder's final flush
            still hands out a few frames of earlier packets, so frames can't tell).
        cut_short: the container shows the file was cut (``mp4_cut_short``).
    """

    decoded: int = 0
    corrupt_packets: int = 0
    packets_after_error: int = 0
    cut_short: bool = False

    def corrupt_packet(self) -> None:
        self.corrupt_packets += 1
        self.packets_after_error = 0

    def good_packet(self) -> None:
        self.packets_after_error += 1


def mp4_cut_short(path: Path) -> bool:
    """True when an MP4/MOV file ends inside one of its top-level boxes: it was cut short.

    A fragmented MP4 cut mid-fragment decodes without a single error (the demuxer just stops), so
    the decoder cannot tell; the box sizes can: in a whole file they add up to its length.
    """
    size = path.stat().st_size
    offset = 0
    with path.open("rb") as file:
        while offset < size:
            file.seek(offset)
            header = file.read(16)
            if len(header) < 8:
                return True
            length = int.from_bytes(header[:4], "big")
            if length == 1:  # 64-bit size after the type
                if len(header) < 16:
                    return True
                length = int.from_bytes(header[8:16], "big")
            elif length == 0:  # the box runs to the end of the file
                return False
            if length < 8:
                return True  # not an MP4 box: corrupt
            offset += length
    return offset > size


def file_end_reason(damage: FileDamage, total_frames: int | None) -> str:
    """Why a file source ended, in words: the one rule for "end of file" versus damaged.

    - ``"end of file"``: no packet was refused and every frame the header promised came.
    - ``"truncated: ..."``: the last packets were refused, the container ends mid-box, or fewer
      frames came than the header promised: the file was cut short (a crash, a copy running).
    - ``"end of file; N corrupt packet(s) skipped"``: damaged in the middle, decoded to the end.

    Examples:
        >>> file_end_reason(FileDamage(decoded=40), 40)
        'end of file'
        >>> file_end_reason(FileDamage(decoded=17, corrupt_packets=1), 40)
        'truncated: decode error after frame 17 of 40'
    """
    of_total = f" of {total_frames}" if total_frames is not None else ""
    if damage.corrupt_packets and not damage.packets_after_error:
        return f"truncated: decode error after frame {damage.decoded}{of_total}"
    if damage.cut_short or (total_frames is not None and damage.decoded < total_frames):
        return f"truncated: the file ends after frame {damage.decoded}{of_total}"
    if damage.corrupt_packets:
        return f"{CLEAN_END}; {damage.corrupt_packets} corrupt packet(s) skipped"
    return CLEAN_END


class FileSource(VideoSource):
    """A video file decoded with PyAV.

    By default the decoder waits for the consumer (a few buffered frames), so every
    frame is processed once and in order however slow the model is. With
    ``options.realtime=True`` the file is paced by its PTS and a slow consumer gets the freshest
    frame, like a live camera; handy to rehearse a camera setup with a recording.

    ``frame_timestamp`` is the wall clock when decoding started plus the frame's PTS offset from
    the first frame, so timestamps keep the file's own timing (variable frame rate included); a
    naive local-time ``datetime``, as every source's and Roboflow's are.
    The reference is checked when the source is made: a missing, unreadable or undecodable file
    raises ``SourceError`` at once instead of failing later in a thread.

    A damaged file (cut short by a crash or a copy, or with corrupt packets) is decoded as far as
    it goes and still ENDS, but not as "end of file": its ``end_reason`` says what happened
    (``FILE_END_REASONS``, ``file_end_reason``), a warning is logged, and ``sam3-stream run``
    exits 1 for it.

    Args:
        path: the video file.
        **kwargs: see ``VideoSource``.

    Examples:
        source = FileSource("clip.mp4")
        source.start()
        while (frame := source.read(timeout=1.0)) is not None or not source.exhausted:
            ...
        source.stop()
    """

    kind = "file"

    def __init__(self, path: str | os.PathLike[str], **kwargs: Any) -> None:
        self.path = Path(path)
        self.total_frames: int | None = None
        self.duration_s: float | None = None
        self._probe_fps = 0.0
        self._damage = FileDamage()
        self._probe()
        super().__init__(str(path), **kwargs)
        self._set_declared_fps(self._probe_fps)

    @property
    def is_live(self) -> bool:
        return self.options.realtime

    def _probe(self) -> None:
        """Fail now, with a message that says what to do, if this file can never be played."""
        path = self.path
        if not path.exists():
            raise SourceError(
                f"video file not found: {path} (for a stream, give a URL such as rtsp://host/path)"
            )
        if path.is_dir():
            raise SourceError(f"{path} is a directory, not a video file")
        if not os.access(path, os.R_OK):
            raise SourceError(f"video file {path} is not readable: check its permissions")
        try:
            with av.open(str(path)) as container:
                if not container.streams.video:
                    raise SourceError(f"{path} has no video stream")
                stream = container.streams.video[0]
                self._probe_fps = float(stream.average_rate or stream.guessed_rate or 0.0)
                self.total_frames = stream.frames or None
                if container.duration:
                    self.duration_s = container.duration / av.time_base
        except (av.FFmpegError, OSError, UnicodeDecodeError) as error:
            raise SourceError(f"cannot decode {path} as video ({error})") from error

    def _run(self) -> None:
        try:
            container = av.open(str(self.path))
        except (av.FFmpegError, OSError) as error:
            self._record_failure(f"cannot open {self.path}: {error}")
            self._set_link(SourceState.ERROR, f"cannot open {self.path}: {error}")
            return
        try:
            ended = self._decode(container)
            is_mp4 = "mp4" in container.format.name.split(",")
        except av.FFmpegError as error:
            self._record_failure(f"reading {self.path} failed: {error}")
            self._set_link(SourceState.ERROR, f"reading {self.path} failed: {error}")
            return
        finally:
            container.close()
        if ended:
            if is_mp4:
                try:
                    self._damage.cut_short = mp4_cut_short(self.path)
                except OSError:  # gone or unreadable since: the decoder's word stands
                    logger.debug("%s: could not check its MP4 boxes", self.path, exc_info=True)
            reason = file_end_reason(self._damage, self.total_frames)
            if reason != CLEAN_END:
                logger.warning("%s: %s", self.path, reason)
            self._set_link(SourceState.ENDED, reason)

    def _decode(self, container: av.container.InputContainer) -> bool:
        """Decode to the end; False if stopped first."""
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # throughput matters for files, latency does not
        stream.codec_context.thread_count = self.options.decoder_threads
        fps = self._probe_fps or 30.0
        started = datetime.now()  # naive local, as live frames and Roboflow's frames are
        first_pts: float | None = None
        anchor: float | None = None  # monotonic time of PTS 0 when pacing in real time
        index = 0
        for packet in container.demux(stream):
            started_decoding = time.perf_counter()
            try:
                frames = packet.decode()
            except av.error.InvalidDataError as error:
                self._record_decode_error(f"{self.path}: skipped a corrupt packet ({error})")
                self._damage.corrupt_packet()
                continue
            if packet.size:  # not the empty packet that flushes the decoder at the end
                self._damage.good_packet()
            packet_s = time.perf_counter() - started_decoding  # charged to its first frame
            for av_frame in frames:
                pts = av_frame.time if av_frame.time is not None else index / fps
                index += 1
                self._damage.decoded = index
                if first_pts is None:
                    first_pts = pts
                offset = pts - first_pts

                paused_at = time.monotonic()
                if self._wait_while_paused():
                    return False
                if anchor is not None:  # a pause must not make the pacing catch up afterwards
                    anchor += time.monotonic() - paused_at
                if self.options.realtime:
                    if anchor is None:
                        anchor = time.monotonic() - offset
                    if self._sleep(anchor + offset - time.monotonic()):
                        return False

                frame_id = self._count_decoded()
                if frame_id is None:
                    continue
                converting = time.perf_counter()
                image = av_frame.to_ndarray(format="bgr24")  # (H, W, 3) uint8 BGR
                decode_s = packet_s + time.perf_counter() - converting
                packet_s = 0.0
                timestamp = started + timedelta(seconds=offset)
                if not self._publish_frame(
                    image, frame_id, timestamp, from_file=True, decode_s=decode_s
                ):
                    return False
                if self._stopping:
                    return False
        return True
