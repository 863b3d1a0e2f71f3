"""Run the app on uvicorn over a socket bound beforehand; shut down promptly with SSE clients.

Binding first means a busy port is a clear error before anything loads, and port 0 yields a real
port the caller can print or hand to a test.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
from typing import Any

import uvicorn
from fastapi import FastAPI

from pipeline.errors import ConfigError

logger = logging.getLogger(__name__)


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (0: any free port).

    Raises:
        ConfigError: the address cannot be bound (in use, not local, permission).
    """
    try:
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as error:
        raise ConfigError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    sock.listen(128)
    return sock


class ServiceServer(uvicorn.Server):
    """uvicorn's server that ends Server-Sent Events streams as soon as it is asked to stop.

    An event stream never finishes by itself, and uvicorn waits for open responses before it
    shuts down; without this, every connected SSE client would hold a SIGTERM for the whole
    graceful timeout.
    """

    def __init__(self, app: FastAPI, **config: Any) -> None:
        config.setdefault("log_config", None)  # keep the caller's handlers and redaction filter
        config.setdefault("access_log", False)  # uvicorn's would log query strings (?api_key=)
        config.setdefault("timeout_graceful_shutdown", 3)
        super().__init__(uvicorn.Config(app, **config))
        self._service_app = app

    def run(self, sockets: list[socket.socket] | None = None) -> None:
        """Serve until stopped; SIGINT/SIGTERM are a clean stop (return, exit code 0).

        uvicorn re-raises the stop signal once it has shut down, to get the signal's default
        behaviour, which kills the process (exit 143 for SIGTERM) after a perfectly clean
        shutdown. Python handlers installed around it take that re-raised signal instead.
        """
        if threading.current_thread() is not threading.main_thread():
            super().run(sockets=sockets)
            return
        previous = {
            sig: signal.signal(sig, _stopped_already) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            super().run(sockets=sockets)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def handle_exit(self, sig: int, frame: Any) -> None:
        self.end_event_streams()
        super().handle_exit(sig, frame)

    def end_event_streams(self) -> None:
        self._service_app.state.service.manager.end_event_streams()

    def stop(self) -> None:
        """Ask the server to stop (from any thread), ending event streams first."""
        self.end_event_streams()
        self.should_exit = True


def _stopped_already(sig: int, frame: Any) -> None:
    logger.info("stopped by signal %d", sig)
