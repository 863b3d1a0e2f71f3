"""A throw-away Ray cluster on this machine: ``ray start --head --block`` in its own session.

``bench cluster`` needs a cluster when none is named; it must leave nothing behind and must not
touch anyone else's cluster on the same machine. So the head gets its own temp dir and free
ports, runs in its own process group, and is stopped by signalling that group only (never
``ray stop``, which stops every Ray on the machine). ``--block`` makes the head's processes die
with the command (Ray's own reaper), and the group is killed as a last resort.

Authentication: recent Ray clusters use token authentication, and a driver that connects by an
explicit address only authenticates when ``RAY_AUTH_MODE=token`` says so. The throw-away head
gets a fresh random token (``RAY_AUTH_TOKEN``, never written to disk or logged), and this
process uses the same one for the life of the ``with`` block, so nobody else on the network can
join the bench's cluster and the user's own token file is left alone.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from pipeline.errors import ConfigError

logger = logging.getLogger(__name__)

READY_LINE = "Ray runtime started"
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0
OBJECT_STORE_BYTES = 256 * 1024 * 1024
"""Detections and statuses are small; the default (30% of RAM in /dev/shm) is not needed."""


def free_port() -> int:
    """A TCP port nobody listens on now (the kernel's pick)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _ray_command() -> list[str]:
    """The ``ray`` CLI of this interpreter's environment (a venv's bin is not always on PATH)."""
    beside = Path(sys.executable).with_name("ray")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("ray")
    if found is None:
        raise ConfigError("the `ray` command is missing: pip install 'sam3-stream[ray]'")
    return [found]


@contextlib.contextmanager
def local_ray_head(*, num_cpus: int, num_gpus: int | None = None) -> Iterator[str]:
    """Run a one-node Ray cluster for the ``with`` block; yields its ``HOST:PORT`` address.

    Args:
        num_cpus: CPUs the node offers (worker actors reserve from these).
        num_gpus: GPUs it offers; None lets Ray count them.

    Raises:
        ConfigError: the head did not start (its last output lines say why).
    """
    port = free_port()
    temp_dir = tempfile.mkdtemp(prefix="rb-", dir="/tmp")  # sockets need a short path
    command = [
        *_ray_command(),
        "start",
        "--head",
        "--block",
        f"--port={port}",
        f"--num-cpus={num_cpus}",
        f"--temp-dir={temp_dir}",
        f"--dashboard-agent-listen-port={free_port()}",
        f"--object-store-memory={OBJECT_STORE_BYTES}",
        "--include-dashboard=false",
        "--disable-usage-stats",
    ]
    if num_gpus is not None:
        command.append(f"--num-gpus={num_gpus}")
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    hidden = ("RAY_ADDRESS", "RAY_AUTH_TOKEN_PATH")
    env = {k: v for k, v in os.environ.items() if k not in hidden} | auth
    head = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,  # its own process group: stopped without touching other Rays
    )
    saved = {name: os.environ.get(name) for name in (*auth, *hidden)}
    try:
        _wait_started(head)
        for name in hidden:
            os.environ.pop(name, None)
        os.environ.update(auth)  # this process is the cluster's driver (the front door)
        _forget_cached_token()
        yield f"127.0.0.1:{port}"
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        _stop(head)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _forget_cached_token() -> None:
    """Make this process use the auth mode and token just set in the environment.

    Ray reads ``RAY_AUTH_MODE`` into its config when it is first imported and caches the token it
    loaded first: in a process that imported Ray before (a test run collects every module), the
    driver would connect without the token, or with another, and be refused
    (``InvalidAuthToken``). Both refreshes are Ray's private API (what its own ``ray.init`` calls
    to turn token mode on); where they are missing there is nothing cached to refresh.
    """
    with contextlib.suppress(ImportError, AttributeError):
        raylet = importlib.import_module("ray._raylet")
        raylet.Config.initialize("")
        raylet.AuthenticationTokenLoader.instance().reset_cache()


def _wait_started(head: subprocess.Popen[str]) -> None:
    """Until the head prints its ready line; its output keeps draining afterwards."""
    started = threading.Event()
    tail: deque[str] = deque(maxlen=8)

    def pump() -> None:
        assert head.stdout is not None
        for line in head.stdout:
            tail.append(line.rstrip())
            if READY_LINE in line:
                started.set()

    threading.Thread(target=pump, name="ray-head-output", daemon=True).start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not started.wait(0.2):
        if head.poll() is not None or time.monotonic() > deadline:
            last = " | ".join(line for line in tail if line.strip())[-400:]
            raise ConfigError(f"the local Ray head did not start: {last or 'no output'}")


def _stop(head: subprocess.Popen[str]) -> None:
    """SIGTERM ``ray start`` (it stops its node), then SIGKILL what is left of its group."""
    head.terminate()  # the command only: its shutdown hook stops the processes it started
    try:
        head.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        logger.warning("the local Ray head did not stop in %.0f s; killing it", STOP_TIMEOUT_S)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(head.pid, signal.SIGKILL)
    head.wait(timeout=STOP_TIMEOUT_S)
