"""``sam3-stream serve``: the HTTP service on uvicorn, one model shared by every stream.

The socket is bound before uvicorn starts, so a busy port is a one-line error (exit 2), ``--port 0``
picks a free port, and the line ``sam3-stream serve: listening on http://HOST:PORT`` on stdout
names the real one. The model loads in the background (``/healthz`` answers meanwhile); if it
cannot load, the server stops and the command exits 2 with the reason.

The API key may come from ``--api-key`` or, better (other users can read command lines), from the
``SAM3_STREAM_API_KEY`` environment variable. Without a key the server listens on loopback only:
a non-loopback address is refused (exit 2) unless ``--insecure-no-auth`` says the operator means
it. ``Host`` names other than IP literals, ``localhost`` and ``--allowed-hosts`` are refused (DNS
rebinding), and so are cross-site state changes (``pipeline.service.host_check``).

Streams created over the API cannot reach the host (``pipeline.service.api_access``): their
``jsonl:``/``video:`` sinks are new files under ``--output-dir`` (default ``STATE_DIR/outputs``),
their file sources are names under ``--media-root`` (none: refused), and their URLs may not reach
loopback or private addresses unless ``--allow-private-network``. ``--config`` streams, like
``sam3-stream run``, keep full paths.

``--ray ADDRESS`` (or a ``ray:`` block in ``--config``) runs the streams on Ray worker actors
behind the same API (``pipeline.cli.serve_ray``); without it Ray is never imported.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import logging
import os
import sys
from pathlib import Path
from typing import Any

from pipeline.cli.serve_ray import (
    add_ray_arguments,
    check_head_reachable,
    check_ray_flags,
    cluster_settings,
)

logger = logging.getLogger(__name__)

API_KEY_ENV = "SAM3_STREAM_API_KEY"


def register(subparsers: argparse._SubParsersAction) -> None:
    from pipeline.service.settings import (
        DEFAULT_MAX_STREAMS,
        DEFAULT_MAX_VIEWERS,
        DEFAULT_MAX_VIEWERS_PER_STREAM,
        DEFAULT_PORT,
        DEFAULT_VIEWER_CONNECT_TIMEOUT_S,
        default_state_dir,
    )

    parser = subparsers.add_parser(
        "serve",
        help="run the HTTP service (many streams on one model, SSE, WebRTC viewer)",
        description=(
            "Serve the stream API on one shared SAM3 model. Streams created over the API are "
            "stored under --state-dir and come back after a restart; --config streams start at "
            "every boot."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any)"
    )
    parser.add_argument(
        "--model",
        default=None,
        help="Hub id or local directory (default facebook/sam3, which loads from "
        "$SAM3_STREAM_MODEL when set)",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument(
        "--api-key",
        default=os.environ.get(API_KEY_ENV) or None,
        help=f"require this key on every endpoint but /healthz (default: ${API_KEY_ENV})",
    )
    parser.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="allow a non-loopback --host without an API key: anyone who reaches the port can "
        "run streams, write files and send webhooks as the server user",
    )
    parser.add_argument(
        "--allowed-hosts",
        action="append",
        default=[],
        metavar="NAMES",
        help="Host names the server answers to besides IP addresses and localhost, comma-"
        "separated (cams.example.com,*.lan; '*': any); others get 400 (DNS rebinding)",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=default_state_dir(),
        help=f"where stored streams live (default {default_state_dir()})",
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=None,
        help="the only directory jsonl:NAME / video:NAME sinks given over the API write in (new "
        "files only; created 0700; default STATE_DIR/outputs; config: output_dir)",
    )
    parser.add_argument(
        "--media-root",
        type=Path,
        default=None,
        help="the only directory file sources given over the API are read from, by relative name "
        "(default: none, such sources are refused; config: media_root)",
    )
    parser.add_argument(
        "--allow-private-network",
        action="store_true",
        help="let webhook, udp and source URLs given over the API reach loopback, private, "
        "link-local, CGNAT and multicast addresses (refused by default; config: "
        "allow_private_network)",
    )
    parser.add_argument("--config", type=Path, default=None, help="YAML file of boot streams")
    parser.add_argument(
        "--max-streams",
        type=int,
        default=DEFAULT_MAX_STREAMS,
        help=f"streams at once (default {DEFAULT_MAX_STREAMS}); one more is answered 429",
    )
    parser.add_argument(
        "--max-objects",
        type=int,
        default=None,
        metavar="N",
        help="live tracks per stream at most, unless a stream sets its own max_objects; a new "
        "object evicts the stalest track (default: the tracker's budget)",
    )
    parser.add_argument(
        "--batch-streams",
        action="store_true",
        help="run the vision backbone once for all streams with a frame ready "
        "(tracker.batching; measure with `sam3-stream bench throughput` first)",
    )
    parser.add_argument(
        "--webrtc-ice",
        choices=("host", "loopback"),
        default="host",
        help="host: ICE candidates on every interface but loopback (aioice's default); "
        "loopback: 127.0.0.1 only (viewer on this machine)",
    )
    parser.add_argument(
        "--ice-server",
        action="append",
        default=[],
        metavar="URL",
        help="STUN/TURN server for WebRTC, e.g. stun:stun.example.org:3478 (repeatable)",
    )
    parser.add_argument(
        "--max-viewers-per-stream",
        type=int,
        default=DEFAULT_MAX_VIEWERS_PER_STREAM,
        metavar="N",
        help=f"WebRTC viewers of one stream at once (default {DEFAULT_MAX_VIEWERS_PER_STREAM}); "
        "one more offer is answered 429",
    )
    parser.add_argument(
        "--max-viewers",
        type=int,
        default=DEFAULT_MAX_VIEWERS,
        metavar="N",
        help=f"WebRTC viewers of all streams at once (default {DEFAULT_MAX_VIEWERS}); one more "
        f"offer is answered 429; a viewer not connected within "
        f"{DEFAULT_VIEWER_CONNECT_TIMEOUT_S:.0f} s is closed",
    )
    add_ray_arguments(parser)
    parser.set_defaults(handler=_run)


def _check(args: argparse.Namespace) -> None:
    from pipeline.errors import ConfigError

    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be in 0-65535, got {args.port}")
    if args.max_streams < 1:
        raise ConfigError(f"--max-streams must be at least 1, got {args.max_streams}")
    if args.max_objects is not None and args.max_objects < 1:
        raise ConfigError(f"--max-objects must be at least 1, got {args.max_objects}")
    if args.max_viewers_per_stream < 1:
        raise ConfigError(
            f"--max-viewers-per-stream must be at least 1, got {args.max_viewers_per_stream}"
        )
    if args.max_viewers < 1:
        raise ConfigError(f"--max-viewers must be at least 1, got {args.max_viewers}")
    allowed_hosts(args)
    check_ray_flags(args)


def allowed_hosts(args: argparse.Namespace) -> tuple[str, ...]:
    """``--allowed-hosts`` (repeatable, comma-separated) as one tuple, each entry checked."""
    from pipeline.errors import ConfigError
    from pipeline.service.host_check import check_allowed_host

    entries = tuple(
        entry.strip().lower() for value in args.allowed_hosts for entry in value.split(",")
    )
    for entry in entries:
        problem = check_allowed_host(entry)
        if problem is not None:
            raise ConfigError(f"--allowed-hosts: {problem}", field="--allowed-hosts")
    return entries


def check_bind_needs_key(bound_address: str, args: argparse.Namespace) -> None:
    """Refuse a non-loopback address without an API key unless ``--insecure-no-auth``.

    The address checked is the one bound (a name like ``myhost`` resolves to an interface), so
    ``localhost`` and ``127.0.0.2`` pass and ``0.0.0.0`` does not.
    """
    from pipeline.errors import ConfigError

    if args.api_key or args.insecure_no_auth:
        return
    if not ipaddress.ip_address(bound_address.partition("%")[0]).is_loopback:
        raise ConfigError(
            f"refusing to listen on {args.host} without an API key: set ${API_KEY_ENV} (or "
            "--api-key), or pass --insecure-no-auth to let anyone who reaches it use it",
            field="--host",
        )


def _run(args: argparse.Namespace) -> int:
    from pipeline.redact import install_log_redaction, redact
    from pipeline.service import (
        IceSettings,
        ModelEngine,
        ServiceSettings,
        create_app,
        load_serve_config,
    )
    from pipeline.service.server import ServiceServer, bind_socket
    from pipeline.service.settings import ViewerSettings
    from tracker import ModelLoadError, Sam3VideoTracker
    from tracker.weights import REAL_MODEL, resolve_model

    _check(args)
    model = args.model or REAL_MODEL
    config = load_serve_config(args.config) if args.config else None
    cluster = cluster_settings(args, config)
    if cluster is not None:
        check_head_reachable(cluster)
    install_log_redaction()
    engine = ModelEngine(
        lambda: Sam3VideoTracker.from_pretrained(
            resolve_model(model), device=args.device, batch_streams=args.batch_streams
        ),
        model_name=redact(model),
        max_sessions=max(64, args.max_streams),
        max_objects=args.max_objects,
        worker_loader=_worker_loader(model, args) if cluster is not None else None,
    )
    settings = ServiceSettings(
        api_key=args.api_key,
        state_dir=args.state_dir,
        max_streams=args.max_streams,
        ice=IceSettings(
            loopback_only=args.webrtc_ice == "loopback", ice_servers=tuple(args.ice_server)
        ),
        allowed_hosts=allowed_hosts(args),
        viewers=ViewerSettings(
            max_per_stream=args.max_viewers_per_stream, max_total=args.max_viewers
        ),
        output_dir=args.output_dir or (config.output_dir if config else None),
        media_root=args.media_root or (config.media_root if config else None),
        allow_private_network=args.allow_private_network
        or (config.allow_private_network if config else False),
        cluster=cluster,
    )
    sock = bind_socket(args.host, args.port)
    host, port = sock.getsockname()[:2]
    fatal: list[str] = []
    server: ServiceServer | None = None

    def on_fatal(reason: str) -> None:
        fatal.append(reason)
        if server is not None:
            server.stop()

    with contextlib.closing(sock):
        check_bind_needs_key(host, args)
        app = create_app(settings, engine=engine, config=config, on_fatal=on_fatal)
        server = ServiceServer(app)
        if not args.api_key and not ipaddress.ip_address(host.partition("%")[0]).is_loopback:
            logger.warning("serving on %s without an API key (--insecure-no-auth)", host)
        print(f"sam3-stream serve: listening on http://{host}:{port}", flush=True)
        server.run(sockets=[sock])
    if fatal:
        raise ModelLoadError(fatal[0])
    return 0


def _worker_loader(model: str, args: argparse.Namespace) -> Any:
    """The same model for each Ray worker, as picklable data (the loader above is a closure)."""
    from pipeline.cluster.loading import TrackerSpec

    return TrackerSpec(model, device=args.device, options={"batch_streams": args.batch_streams})


def main(argv: list[str] | None = None) -> int:
    """Run ``serve`` alone (``python -m pipeline.cli.serve serve ...``), as the CLI would."""
    from pipeline.cli.main import main as cli_main

    return cli_main(argv, verbs=[register])


if __name__ == "__main__":
    sys.exit(main())
