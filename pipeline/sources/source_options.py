"""Tuning knobs shared by every source kind, validated once, in one place.

A pipeline passes the same ``**source_options`` to every source of a list (a file and a camera
side by side), so each kind reads only the fields it uses; a name no kind knows is a user error.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

from pipeline.errors import ConfigError
from pipeline.sources.backoff import Backoff


@dataclass(frozen=True)
class SourceOptions:
    """Options for sources; every field has a production default.

    Attributes:
        realtime: files only. False: every frame, as fast as the consumer takes them. True: paced
            by PTS like a live camera, and a slow consumer gets the freshest frame (drops).
        stall_timeout_s: live sources: no decoded frame for this long means the camera is silent
            (also FFmpeg's read timeout, so a hung camera whose TCP connection stays open is
            caught); the source reconnects.
        open_timeout_s: live sources: longest wait for a connection to open.
        max_reconnect_attempts: live sources: give up (ERROR) after this many failed attempts in
            a row; None retries forever.
        backoff_initial_s / backoff_max_s / backoff_jitter: the reconnect delays (see
            ``pipeline.sources.backoff.Backoff``).
        file_buffer_frames: files: decoded frames held ahead of the consumer.
        rtsp_transport: "tcp" (default: no packet loss on busy networks) or "udp".
        decoder_threads: 0 lets FFmpeg choose; live streams use slice threading only, because
            frame threading adds one frame of latency per thread.
        av_options: extra FFmpeg demuxer options, merged over the low-latency defaults.
        first_epoch: the epoch of the first connection (0). A driver that runs an identifier
            again (the service after a restart, a failover) passes its last epoch + 1, so
            ``(video_identifier, epoch, frame_id)`` never repeats.
    """

    realtime: bool = False
    stall_timeout_s: float = 5.0
    open_timeout_s: float = 10.0
    max_reconnect_attempts: int | None = None
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 10.0
    backoff_jitter: float = 0.25
    file_buffer_frames: int = 4
    rtsp_transport: str = "tcp"
    decoder_threads: int = 0
    av_options: Mapping[str, str] = field(default_factory=dict)
    first_epoch: int = 0

    def __post_init__(self) -> None:
        self._check_types()
        for name in ("stall_timeout_s", "open_timeout_s"):
            if not getattr(self, name) > 0:
                raise ConfigError(
                    f"source option {name} must be > 0, got {getattr(self, name)}", field=name
                )
        if self.max_reconnect_attempts is not None and self.max_reconnect_attempts < 0:
            raise ConfigError(
                "source option max_reconnect_attempts must be >= 0 or None (retry forever), "
                f"got {self.max_reconnect_attempts}",
                field="max_reconnect_attempts",
            )
        if self.file_buffer_frames < 1:
            raise ConfigError(
                f"source option file_buffer_frames must be >= 1, got {self.file_buffer_frames}",
                field="file_buffer_frames",
            )
        if self.rtsp_transport not in ("tcp", "udp"):
            raise ConfigError(
                f"source option rtsp_transport must be 'tcp' or 'udp', got {self.rtsp_transport!r}",
                field="rtsp_transport",
            )
        if self.first_epoch < 0:
            raise ConfigError(
                f"source option first_epoch must be >= 0, got {self.first_epoch}",
                field="first_epoch",
            )
        if self.decoder_threads < 0:
            raise ConfigError(
                f"source option decoder_threads must be >= 0, got {self.decoder_threads}",
                field="decoder_threads",
            )
        self.make_backoff()  # validates the backoff fields

    def _check_types(self) -> None:
        """Each field has its type, so a wrong one is refused by name now, not per frame later."""
        if not isinstance(self.realtime, bool):
            _refuse_type("realtime", "True or False", self.realtime)
        for name in (
            "stall_timeout_s",
            "open_timeout_s",
            "backoff_initial_s",
            "backoff_max_s",
            "backoff_jitter",
        ):
            if not _is_number(getattr(self, name)):
                _refuse_type(name, "a number", getattr(self, name))
        for name in ("file_buffer_frames", "decoder_threads", "first_epoch"):
            if not _is_integer(getattr(self, name)):
                _refuse_type(name, "an integer", getattr(self, name))
        if self.max_reconnect_attempts is not None and not _is_integer(self.max_reconnect_attempts):
            _refuse_type(
                "max_reconnect_attempts", "an integer or None", self.max_reconnect_attempts
            )
        if not isinstance(self.av_options, Mapping) or not all(
            isinstance(key, str) and isinstance(value, str)
            for key, value in self.av_options.items()
        ):
            _refuse_type(
                "av_options", "a mapping of FFmpeg option names to strings", self.av_options
            )

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> SourceOptions:
        """Build from keyword arguments, naming any the sources do not know."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise ConfigError(
                f"unknown source option(s): {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known))}",
                field=unknown[0],
            )
        return cls(**kwargs)

    def make_backoff(self) -> Backoff:
        """A fresh reconnect backoff with these settings."""
        return Backoff(
            initial_s=self.backoff_initial_s,
            max_s=self.backoff_max_s,
            jitter=self.backoff_jitter,
        )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _refuse_type(name: str, expected: str, value: Any) -> NoReturn:
    raise ConfigError(f"source option {name} must be {expected}, got {value!r}", field=name)
