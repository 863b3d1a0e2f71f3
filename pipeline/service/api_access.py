"""What a stream created over the API may open: its source and sinks, checked before it starts.

The API must not reach the host: a key holder could otherwise write anywhere the server user can
(``jsonl:/etc/...``), read any file as a source, and make the server connect to internal
addresses. So, for streams created over the API (and their stored copies restarted at boot):

================================  ===========================================================
field                             rule
================================  ===========================================================
``jsonl:NAME``, ``video:NAME``    a new file under the output root (``api_paths.OutputRoot``)
file source (path, ``file://``)   a readable file under the media root (``api_paths.MediaRoot``)
URL source, ``webhook:``, ``udp:``  public addresses only, unless ``allow_private_network``
                                  (``network_policy``)
camera index, ``testpattern``     allowed
================================  ===========================================================

Streams of the operator's ``serve --config`` file keep full paths and any address, as the CLI
does: the operator is the host's user already.

Two steps, because they run at different times: ``check`` (pure; may wait on DNS, so the manager
calls it before taking its lock) and ``open`` (creates the sink files, once the stream is sure to
get a slot; ``StreamTargets.discard`` removes them again if the start fails).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from pipeline.errors import ConfigError
from pipeline.service.api_errors import InvalidStreamError
from pipeline.service.api_paths import NAME_RULE, MediaRoot, OutputRoot, relative_parts
from pipeline.service.network_policy import check_public_host, check_public_url
from pipeline.service.settings import ServiceSettings
from pipeline.sources.live import LIVE_SCHEMES
from pipeline.sources.testpattern import TESTPATTERN
from sinks.errors import SinkConfigError
from sinks.mp4 import check_video_file_name

OUTPUT_SINK_KINDS = ("jsonl", "video")

# The same reading of a reference as ``pipeline.sources.reference.make_source``: a camera index,
# a V4L2 device or the test pattern opens no file and no URL; ``scheme://`` is a URL (``file://``
# a file); anything else is a file path.
_SCHEME = re.compile(r"^(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*)://")
_V4L2_DEVICE = re.compile(r"^/dev/video\d+$")

NO_MEDIA_ROOT = (
    "file sources cannot be given over the API on this server: start it with --media-root DIR "
    "and name files relative to it"
)
NO_OUTPUT_ROOT = (
    "jsonl: and video: sinks cannot be given over the API on this server: start it with "
    "--output-dir DIR (or a --state-dir) and name files relative to it"
)


@dataclass(frozen=True)
class OutputFile:
    """A ``jsonl:`` or ``video:`` sink of an API stream, before its file is created."""

    kind: str
    name: str


@dataclass(frozen=True)
class CheckedTargets:
    """A stream's source and sinks once ``ApiAccess.check`` passed them.

    Attributes:
        source: the reference the pipeline opens (a media-root name resolved to its path).
        sinks: sink specs opened as they are, or output files still to create.
    """

    source: str
    sinks: tuple[str | OutputFile, ...]


@dataclass
class StreamTargets:
    """What the pipeline opens: the source reference, the sink specs, and the files made for them.

    Attributes:
        created: sink files this start created (not those a restarted stream reopened).
    """

    source: str
    sinks: list[str] = field(default_factory=list)
    created: list[Path] = field(default_factory=list)

    def discard(self) -> None:
        """Remove the files this start created: a stream that did not start leaves nothing."""
        for path in self.created:
            path.unlink(missing_ok=True)
        self.created.clear()


@dataclass(frozen=True)
class ApiAccess:
    """The roots and network policy of one server (see the module docstring).

    Attributes:
        output_root: where API ``jsonl:``/``video:`` sinks write; None refuses them.
        media_root: where API file sources are read; None refuses them.
        allow_private_network: API URLs may reach loopback, private, link-local... addresses.
    """

    output_root: OutputRoot | None = None
    media_root: MediaRoot | None = None
    allow_private_network: bool = False

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> ApiAccess:
        """Prepare the roots ``settings`` name (the output root is created 0700 if missing).

        Raises:
            ConfigError: a root cannot be used (names ``--output-dir`` or ``--media-root``).
        """
        output_dir = settings.api_output_dir
        return cls(
            output_root=OutputRoot.prepare(output_dir) if output_dir is not None else None,
            media_root=(
                MediaRoot.prepare(settings.media_root) if settings.media_root is not None else None
            ),
            allow_private_network=settings.allow_private_network,
        )

    def check(self, source: str, sinks: Sequence[str], *, from_api: bool) -> CheckedTargets:
        """Check a stream's source and sinks; may wait on DNS (call it off the event loop).

        Args:
            from_api: the stream was created over the API (the rules apply); False for the
                operator's config streams, which are passed through as they are.

        Raises:
            InvalidStreamError: a field breaks a rule (422 naming ``source`` or ``sinks``).
        """
        if not from_api:
            return CheckedTargets(source, tuple(sinks))
        try:
            return CheckedTargets(self._source(source), tuple(self._sink(spec) for spec in sinks))
        except ConfigError as error:
            raise InvalidStreamError(error.field or "sinks", str(error)) from None

    def open(self, checked: CheckedTargets, *, reopen: bool) -> StreamTargets:
        """Create the output files of ``checked`` (``reopen``: a restarted stream's may exist).

        Raises:
            InvalidStreamError: a file cannot be created (422 naming ``sinks``); the files this
                call created are removed again.
        """
        targets = StreamTargets(checked.source)
        try:
            for sink in checked.sinks:
                if isinstance(sink, str):
                    targets.sinks.append(sink)
                    continue
                assert self.output_root is not None  # check() refuses output files without it
                path, created = self.output_root.create_file(sink.name, reopen=reopen)
                if created:
                    targets.created.append(path)
                targets.sinks.append(f"{sink.kind}:{path}")
        except ConfigError as error:
            targets.discard()
            raise InvalidStreamError("sinks", str(error)) from None
        except BaseException:
            targets.discard()
            raise
        return targets

    def _source(self, source: str) -> str:
        text = source.strip()
        if text.isdigit() or _V4L2_DEVICE.match(text) or text.partition("?")[0] == TESTPATTERN:
            return text
        match = _SCHEME.match(text)
        if match is not None and match["scheme"].lower() != "file":
            if match["scheme"].lower() in LIVE_SCHEMES and not self.allow_private_network:
                _check_url(text, what="the source URL's host", field="source")
            return text  # other schemes open nothing: make_source refuses them by name
        if self.media_root is None:
            raise ConfigError(NO_MEDIA_ROOT, field="source")
        name = unquote(urlsplit(text).path) if match is not None else text
        return str(self.media_root.resolve(name))

    def _sink(self, spec: str) -> str | OutputFile:
        kind, _, argument = spec.strip().partition(":")
        kind = kind.lower()
        if kind in OUTPUT_SINK_KINDS and argument:
            if self.output_root is None:
                raise ConfigError(NO_OUTPUT_ROOT, field="sinks")
            if relative_parts(argument) is None:
                raise ConfigError(
                    f"a {kind}: sink must name a file as {NAME_RULE} of the output root",
                    field="sinks",
                )
            if kind == "video":  # before any file is created for it
                try:
                    check_video_file_name(argument)
                except SinkConfigError as error:
                    raise ConfigError(str(error), field="sinks") from None
            return OutputFile(kind, argument)
        if self.allow_private_network or not argument:
            return spec
        if kind == "webhook":
            _check_url(argument, what="the webhook URL's host", field="sinks")
        elif kind == "udp":
            host = argument.rpartition(":")[0].removeprefix("[").removesuffix("]")
            if host:  # else parse_sink_spec refuses the spec with its own message
                check_public_host(host, what="the udp sink's host", field="sinks")
        return spec


def _check_url(url: str, *, what: str, field: str) -> None:
    """``check_public_url``, refusing first an authority with a backslash.

    URL parsers disagree on ``http://127.0.0.1\\@example.com``; the one that checks and the one
    that connects must see the same host, so such URLs are refused outright.
    """
    if "\\" in url.partition("://")[2].split("/", 1)[0]:
        raise ConfigError(f"{what} is malformed (a backslash in the host part)", field=field)
    check_public_url(url, what=what, field=field)
