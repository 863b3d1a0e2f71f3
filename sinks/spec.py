"""Build a sink from its one-word spec, as ``--sink`` and YAML configs give it."""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import urlsplit

from sinks.base import Sink
from sinks.errors import SinkConfigError, SinkSpecError
from sinks.webhook import check_webhook_url

logger = logging.getLogger(__name__)

SINK_SPEC_FORMS = ("screen", "video:PATH", "jsonl:PATH", "webhook:URL", "udp:HOST:PORT")


def parse_sink_spec(spec: str) -> Sink:
    """Build the sink ``spec`` names.

    Args:
        spec: ``screen``, ``video:PATH`` (annotated video at native size; PATH ends in ``.mp4``,
            ``.m4v``, ``.mov`` or ``.avi`` and can be created), ``jsonl:PATH`` (JSON lines, RLE
            masks),
            ``webhook:URL`` (``http://`` or ``https://``), or ``udp:HOST:PORT`` (IPv6 hosts in
            brackets: ``udp:[::1]:9000``).

    Returns:
        A new, open sink; the caller closes it.

    Raises:
        SinkSpecError: the spec is malformed or its file cannot be opened or created; the message
            is one line that names the spec and says what is expected.

    Examples:
        >>> parse_sink_spec("udp:127.0.0.1:9000").name
        'udp:127.0.0.1:9000'
    """
    kind, _, argument = spec.strip().partition(":")
    kind = kind.lower()
    try:
        if kind == "screen" and not argument:
            from sinks.screen import ScreenSink

            return ScreenSink()
        if kind == "video" and argument:
            from sinks.mp4 import check_video_file_name
            from sinks.video_file import VideoFileSink

            check_video_file_name(argument)  # before any path is looked at or file created
            # The constructor, not init(): native size and the source fps, as the CLI promises.
            return VideoFileSink(_checked_path(spec, argument))
        if kind == "jsonl" and argument:
            from sinks.jsonl import JsonlSink

            return JsonlSink(_checked_path(spec, argument))
        if kind == "webhook" and argument:
            from sinks.webhook import WebhookSink

            _check_url(spec, argument)
            return WebhookSink(argument)
        if kind == "udp" and argument:
            from sinks.udp import UDPSink

            host, port = _host_port(spec, argument)
            return UDPSink(host, port)
    except SinkSpecError:
        raise
    except SinkConfigError as error:
        raise SinkSpecError(f"bad sink spec {spec!r}: {error}") from error
    except OSError as error:
        raise SinkSpecError(f"bad sink spec {spec!r}: {error.strerror or error}") from error
    raise SinkSpecError(f"bad sink spec {spec!r}: expected one of {', '.join(SINK_SPEC_FORMS)}")


def _checked_path(spec: str, argument: str) -> Path:
    """The file ``argument`` names, ``~`` expanded once, here: what is checked is what is opened."""
    path = Path(argument).expanduser()
    directory = path.parent
    if not directory.is_dir():
        raise SinkSpecError(
            f"bad sink spec {spec!r}: directory {str(directory)!r} does not exist; create it first"
        )
    return path


def _check_url(spec: str, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SinkSpecError(
            f"bad sink spec {spec!r}: expected webhook:http://HOST[:PORT]/PATH or webhook:https://..."
        )
    try:
        check_webhook_url(url)
    except SinkConfigError as error:
        # The spec is not repeated: its user name or password is what could not be parsed.
        raise SinkSpecError(f"bad webhook sink spec: {error}") from None


def _host_port(spec: str, argument: str) -> tuple[str, int]:
    host, _, port = argument.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SinkSpecError(f"bad sink spec {spec!r}: expected udp:HOST:PORT with PORT in 1-65535")
    return host, int(port)
