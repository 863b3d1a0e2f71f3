"""Progress on stderr for ``show_progress=True``: a bar for files, a periodic line for live sources.

Files have an end, so they get a bar with frames done, processing rate and ETA, redrawn in place
on a terminal. Live sources have no end, so they get one status line every ``live_every_s``
seconds (state, epoch, rates in and through the model, drops, end-to-end latency): readable in a
terminal and in a log file alike. When stderr is not a terminal the file bar is printed as a
plain line at the same slow rate instead of being redrawn.

The formatting functions are pure, taking one ``SourceStatus`` of ``InferencePipeline.status()``.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import TextIO

from pipeline.loop.status import SourceStatus

BAR_WIDTH = 20
_CLEAR_LINE = "\x1b[K"


def _name(source: SourceStatus, width: int = 32) -> str:
    name = source.stats.video_identifier
    return name if len(name) <= width else "…" + name[-(width - 1) :]


def _duration(seconds: float) -> str:
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def format_file_progress(source: SourceStatus) -> str:
    """``clip.mp4 [########------------] 18/45 40% 3.2 fps ETA 0:08`` for one file source."""
    done = source.frames_processed + source.inference_errors
    fps = source.processed_fps
    total = source.total_frames
    if not total:
        return f"{_name(source)} {done} frames {fps:.1f} fps"
    fraction = min(1.0, done / total)
    filled = round(fraction * BAR_WIDTH)
    bar = "#" * filled + "-" * (BAR_WIDTH - filled)
    if done >= total or source.stats.state == "ERROR":
        eta = "done" if done >= total else "failed"
    elif fps > 0:
        eta = "ETA " + _duration(max(0, total - done) / fps)
    else:
        eta = "ETA ?"
    return f"{_name(source)} [{bar}] {done}/{total} {fraction:.0%} {fps:.1f} fps {eta}"


def format_live_status(source: SourceStatus) -> str:
    """One line about a live source: state, epoch, rates, drops, end-to-end latency, e.g.
    ``cam RUNNING epoch 1: in 30.0 fps, model 4.0 fps, dropped 96, reconnects 1, e2e p50 0.20 s
    p95 0.31 s``."""
    stats, e2e = source.stats, source.latency_s["end_to_end"]
    latency = (
        f", e2e p50 {e2e.p50:.2f} s p95 {e2e.p95:.2f} s"
        if e2e.p50 is not None and e2e.p95 is not None
        else ""
    )
    return (
        f"{_name(source)} {stats.state} epoch {stats.epoch}: "
        f"in {stats.measured_fps:.1f} fps, model {source.processed_fps:.1f} fps, "
        f"dropped {stats.frames_dropped}, reconnects {stats.reconnects}{latency}"
    )


class ProgressReporter:
    """Draws progress from ``status()`` on a background thread until ``stop()``.

    Args:
        sources: returns the ``sources`` of the pipeline's ``status()``.
        stream: where to write (stderr by default).
        refresh_s: how often the file bar is redrawn on a terminal.
        live_every_s: how often live sources get their line (and files, off a terminal).
    """

    def __init__(
        self,
        sources: Callable[[], Sequence[SourceStatus]],
        *,
        stream: TextIO | None = None,
        refresh_s: float = 0.5,
        live_every_s: float = 10.0,
    ) -> None:
        self._sources = sources
        self._stream = stream or sys.stderr
        self._tty = bool(getattr(self._stream, "isatty", lambda: False)())
        self._refresh_s = refresh_s
        self._live_every_s = live_every_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._bar_shown = False
        self._next_line_at = time.monotonic() + live_every_s

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="progress", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop, and draw the final state once (the bar at its end)."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        self._tick(final=True)
        if self._bar_shown:
            self._write("\n")

    def _run(self) -> None:
        while not self._stop.wait(self._refresh_s):
            self._tick()

    def _tick(self, final: bool = False) -> None:
        try:
            sources = self._sources()
        except Exception:  # a status snapshot must never kill the reporter
            return
        files = [s for s in sources if not s.stats.is_live]
        live = [s for s in sources if s.stats.is_live]
        now = time.monotonic()
        periodic = final or now >= self._next_line_at
        if periodic:
            self._next_line_at = now + self._live_every_s
        if files and self._tty:
            self._write("\r" + " | ".join(map(format_file_progress, files)) + _CLEAR_LINE)
            self._bar_shown = True
        elif files and periodic:
            self._write(" | ".join(map(format_file_progress, files)) + "\n")
        if live and periodic:
            prefix = "\r" + _CLEAR_LINE if self._bar_shown else ""
            self._write(prefix + "\n".join(map(format_live_status, live)) + "\n")

    def _write(self, text: str) -> None:
        try:
            self._stream.write(text)
            self._stream.flush()
        except (OSError, ValueError):  # stderr closed or gone: progress is not worth a crash
            pass
