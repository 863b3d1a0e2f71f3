"""Pytest fixtures for a real RTSP camera: GStreamer's RTSP server in a subprocess.

The server (``tests/rtsp_server.py``) runs under the system Python because PyGObject and the
GstRtspServer typelib come from Debian packages, not from PyPI. The fixture talks to it only through
its process: it waits for the ``READY`` line (no sleeps), and faults are real signals: ``kill()``
is SIGKILL (camera loses power), ``freeze()`` is SIGSTOP (camera hangs with its TCP connection still
open), ``restart()`` brings it back on the same port, optionally at a new resolution.

Fixtures: ``rtsp_server`` (one started camera) and ``rtsp_server_factory`` (call it with
``RtspServer`` keyword arguments to start as many as a test needs). Both stop their servers at
teardown. Tests are skipped only when the system Python cannot import GStreamer's RTSP bindings;
with ``CI=true`` that is a failure instead, because CI installs the packages.

Examples:
    def test_decodes(rtsp_server):
        with av.open(rtsp_server.url, options={"rtsp_transport": "tcp"}, timeout=5) as c:
            frame = next(c.decode(video=0))
"""

from __future__ import annotations

import functools
import logging
import os
import queue
import signal
import subprocess
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest

__all__ = [
    "RtspServer",
    "gst_rtsp_unavailable_reason",
    "require_gst_rtsp",
    "rtsp_server",
    "rtsp_server_factory",
]

logger = logging.getLogger(__name__)

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER_SCRIPT = Path(__file__).with_name("rtsp_server.py")
DEBIAN_PACKAGES = (
    "python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base "
    "gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly"
)
_EXIT_CANNOT_LISTEN = 4
_READY_TIMEOUT_S = 20.0
# A port freed by SIGKILL can be refused for a moment while the kernel tears the socket down.
_REBIND_WINDOW_S = 10.0


@functools.lru_cache(maxsize=1)
def gst_rtsp_unavailable_reason() -> str | None:
    """Why the RTSP server cannot run here, or None when it can.

    Checked once per test session by importing the bindings in the system Python itself, which is
    the only honest test of whether the Debian packages are present.
    """
    if not os.path.exists(SYSTEM_PYTHON):
        return f"{SYSTEM_PYTHON} not found (the RTSP test server needs Debian's python3-gi)"
    probe = (
        "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); "
        "from gi.repository import Gst, GstRtspServer"
    )
    result = subprocess.run(
        [SYSTEM_PYTHON, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode != 0:
        last_line = (result.stderr.strip().splitlines() or ["unknown error"])[-1]
        return (
            f"{SYSTEM_PYTHON} cannot import GStreamer's RTSP server ({last_line}); "
            f"install the Debian packages: {DEBIAN_PACKAGES}"
        )
    return None


def require_gst_rtsp() -> None:
    """Skip the calling test when the RTSP server cannot run; fail instead under ``CI=true``."""
    reason = gst_rtsp_unavailable_reason()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI must install the RTSP server packages: {reason}")
    pytest.skip(reason)


class RtspServer:
    """One RTSP camera process serving a live H.264 test pattern on 127.0.0.1.

    Args:
        mount: path of the stream, e.g. ``/cam``.
        size: (width, height) of the pattern.
        fps: frame rate of the pattern.
        username: with ``password``, require RTSP basic auth; ``url`` then carries the credentials.
        password: see ``username``.
        port: TCP port; 0 lets the server pick a free one, which ``restart()`` then reuses.

    Examples:
        server = RtspServer(size=(320, 240)).start()
        server.freeze(); server.thaw(); server.restart(size=(160, 120)); server.stop()
    """

    def __init__(
        self,
        *,
        mount: str = "/test",
        size: tuple[int, int] = (320, 240),
        fps: int = 15,
        username: str | None = None,
        password: str | None = None,
        port: int = 0,
    ) -> None:
        self.mount = mount
        self.size = size
        self.fps = fps
        self.username = username
        self.password = password
        self.port = port
        self.encoder: str | None = None
        self._process: subprocess.Popen[str] | None = None
        self._stderr: IO[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._frozen = False

    @property
    def url(self) -> str:
        """``rtsp://[user:password@]127.0.0.1:port/mount``, credentials percent-encoded."""
        if not self.port:
            raise RuntimeError("the RTSP server has no port yet: call start() or give port=")
        userinfo = ""
        if self.username is not None:
            quote = functools.partial(urllib.parse.quote, safe="")
            userinfo = f"{quote(self.username)}:{quote(self.password or '')}@"
        return f"rtsp://{userinfo}127.0.0.1:{self.port}{self.mount}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self, timeout: float = _READY_TIMEOUT_S) -> RtspServer:
        """Start the server and return once it listens (its READY line), retrying a busy port."""
        if self.running:
            raise RuntimeError("the RTSP server is already running")
        deadline = time.monotonic() + _REBIND_WINDOW_S
        while True:
            returncode = self._spawn_and_wait_ready(timeout)
            if returncode is None:
                return self
            if returncode != _EXIT_CANNOT_LISTEN or time.monotonic() > deadline:
                raise RuntimeError(
                    f"RTSP server exited with code {returncode}: {self._stderr_text()}"
                )
            time.sleep(0.2)  # the kernel still holds the old socket; nothing to wait on

    def kill(self) -> None:
        """SIGKILL: the camera vanishes mid-stream, connections reset."""
        process = self._require_process()
        process.kill()
        process.wait(timeout=10)
        self._frozen = False

    def freeze(self) -> None:
        """SIGSTOP: the camera hangs; its TCP connections stay open but no data flows."""
        os.kill(self._require_process().pid, signal.SIGSTOP)
        self._frozen = True

    def thaw(self) -> None:
        """SIGCONT: a frozen camera resumes."""
        os.kill(self._require_process().pid, signal.SIGCONT)
        self._frozen = False

    def restart(self, size: tuple[int, int] | None = None) -> RtspServer:
        """Kill the camera if it runs and start it again on the same port, optionally resized."""
        if self.running:
            self.kill()
        if size is not None:
            self.size = size
        return self.start()

    def stop(self) -> None:
        """Stop the server (politely, then by force); safe in every state, idempotent."""
        process = self._process
        if process is not None and process.poll() is None:
            if self._frozen:
                os.kill(process.pid, signal.SIGCONT)
                self._frozen = False
            process.terminate()
            try:
                process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        self._close_pipes()

    def __enter__(self) -> RtspServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _spawn_and_wait_ready(self, timeout: float) -> int | None:
        """Spawn the process; None once READY, else its exit code."""
        self._close_pipes()
        width, height = self.size
        command = [
            SYSTEM_PYTHON,
            str(SERVER_SCRIPT),
            f"--port={self.port}",
            f"--mount={self.mount}",
            f"--size={width}x{height}",
            f"--fps={self.fps}",
        ]
        if self.username is not None:
            command += [f"--username={self.username}", f"--password={self.password or ''}"]
        # Closed by _close_pipes(); kept open so a failure can quote the server's stderr.
        self._stderr = tempfile.TemporaryFile(  # noqa: SIM115
            mode="w+", prefix="rtsp-server-", suffix=".log"
        )
        # stdin stays open for the life of the server: its end of file tells the server to exit
        # should this test process die without stopping it.
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env={**os.environ, "GST_DEBUG": os.environ.get("GST_DEBUG", "1")},
        )
        self._lines = queue.Queue()
        threading.Thread(
            target=_pump_lines, args=(self._process.stdout, self._lines), daemon=True
        ).start()
        try:
            while True:
                line = self._lines.get(timeout=timeout)
                if line is None:
                    return self._process.wait(timeout=10)
                if line.startswith("READY "):
                    fields = dict(part.split("=", 1) for part in line.split()[1:])
                    self.port = int(fields["port"])
                    self.encoder = fields.get("encoder")
                    logger.info("RTSP test server ready at %s (%s)", self.url, self.encoder)
                    return None
        except queue.Empty:
            self._process.kill()
            self._process.wait(timeout=10)
            raise RuntimeError(
                f"RTSP server did not report READY within {timeout} s: {self._stderr_text()}"
            ) from None

    def _require_process(self) -> subprocess.Popen[str]:
        if self._process is None or self._process.poll() is not None:
            raise RuntimeError("the RTSP server is not running")
        return self._process

    def _stderr_text(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read()[-2000:].strip()

    def _close_pipes(self) -> None:
        if self._process is not None and self._process.stdin is not None:
            self._process.stdin.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None


def _pump_lines(stream: IO[str] | None, lines: queue.Queue[str | None]) -> None:
    """Move the server's stdout lines into a queue so the fixture can wait with a timeout."""
    if stream is None:
        lines.put(None)
        return
    for line in stream:
        lines.put(line.strip())
    lines.put(None)


@pytest.fixture
def rtsp_server_factory() -> Iterator[Callable[..., RtspServer]]:
    """Start RTSP cameras on demand: ``rtsp_server_factory(size=(160, 120), username="u", ...)``.

    ``start=False`` returns the server unstarted (a camera that is still off); it is stopped at
    teardown all the same.
    """
    require_gst_rtsp()
    servers: list[RtspServer] = []

    def start(*, start: bool = True, **kwargs: Any) -> RtspServer:
        server = RtspServer(**kwargs)
        servers.append(server)
        return server.start() if start else server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def rtsp_server(rtsp_server_factory: Callable[..., RtspServer]) -> RtspServer:
    """One running RTSP camera with default settings (320x240 at 15 fps, mount ``/test``)."""
    return rtsp_server_factory()
