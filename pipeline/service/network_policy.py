"""Which network addresses a stream created over the API may reach: public ones only, by default.

A caller of the API could otherwise make the server connect, from inside the operator's network,
to what only the server can reach: ``webhook:http://user:pw@127.0.0.1:8080/admin`` posts every
frame (with those credentials) to a local admin port, ``rtsp://10.0.0.7/`` reads a camera on the
site's LAN. So a webhook or UDP sink and a URL source given over the API must name a host whose
every address (DNS may answer several) is public; ``serve --allow-private-network`` lifts the rule
for sites whose cameras and receivers live on the LAN.

Refused (``internal_address_kind``): loopback, private (RFC 1918, IPv6 ULA), link-local, CGNAT
(100.64.0.0/10), multicast, unspecified, and every other range IANA marks as not global; an IPv6
address that carries an IPv4 one (``::ffff:a.b.c.d``, 6to4 ``2002::/16``, NAT64 ``64:ff9b::/96``)
is judged by that IPv4 address too.

Limit: the check runs each time the stream starts (created, restarted, at boot); the sink or
source resolves the name again whenever it connects or reconnects. A name whose DNS answer
changes in between (DNS rebinding), an HTTP redirect a source follows, or the segment URLs of an
HLS playlist are not checked again: where that matters, give IP addresses, or filter egress with
a firewall.

Examples:
    >>> internal_address_kind(ipaddress.ip_address("10.1.2.3"))
    'private'
    >>> internal_address_kind(ipaddress.ip_address("::ffff:127.0.0.1"))
    'loopback'
    >>> internal_address_kind(ipaddress.ip_address("8.8.8.8")) is None
    True
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from pipeline.errors import ConfigError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALLOW_FLAG = "--allow-private-network"

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def internal_address_kind(address: IPAddress) -> str | None:
    """What makes ``address`` one the API may not reach (``"loopback"``, ...), or None if public."""
    if isinstance(address, ipaddress.IPv6Address):
        for embedded in _embedded_ipv4(address):
            kind = internal_address_kind(embedded)
            if kind is not None:
                return kind
    checks: tuple[tuple[bool, str], ...] = (
        (address.is_unspecified, "unspecified"),
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link-local"),
        (address.is_multicast, "multicast"),
        (address in _CGNAT, "CGNAT"),
        (address.is_private, "private"),
        (not address.is_global, "non-public"),
    )
    return next((kind for refused, kind in checks if refused), None)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address stands for (mapped, 6to4, NAT64), if any."""
    embedded = [address.ipv4_mapped, address.sixtofour]
    if address in _NAT64:
        embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return [ipv4 for ipv4 in embedded if ipv4 is not None]


def resolve(host: str) -> list[IPAddress]:
    """Every address ``host`` stands for: itself if it is an IP literal, else all DNS answers.

    Blocking (DNS); the manager calls it from the threadpool, never on the event loop.

    Raises:
        OSError: the name does not resolve.
    """
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        answers = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except UnicodeError as error:  # a label IDNA cannot encode
        raise OSError(str(error)) from None
    return [ipaddress.ip_address(str(answer[4][0]).partition("%")[0]) for answer in answers]


def check_public_host(host: str, *, what: str, field: str) -> None:
    """Refuse ``host`` unless every address it resolves to is public.

    Args:
        host: a name or IP literal (no brackets).
        what: how the message names the thing ("the webhook URL's host").
        field: the request field at fault, for the 422.

    Raises:
        ConfigError: the host does not resolve, or one of its addresses is internal; the message
            names neither the host nor the address (the caller's input is never echoed).
    """
    try:
        addresses = resolve(host)
    except OSError:
        raise ConfigError(
            f"{what} does not resolve, so it cannot be checked against the private-network "
            f"policy: give a resolvable name or an IP address (or start the server with "
            f"{ALLOW_FLAG})",
            field=field,
        ) from None
    for address in addresses:
        kind = internal_address_kind(address)
        if kind is not None:
            raise ConfigError(
                f"{what} is or resolves to a {kind} address, which streams created over the API "
                f"may not reach: start the server with {ALLOW_FLAG} to allow it",
                field=field,
            )


def check_public_url(url: str, *, what: str, field: str) -> None:
    """``check_public_host`` for the host of ``url`` (``scheme://[user:pw@]host[:port]/...``).

    Raises:
        ConfigError: the URL has no host, or ``check_public_host`` refuses it.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - a URL with a bad port is malformed, whatever its host
    except ValueError:
        host = None
    if not host:
        raise ConfigError(f"{what} is missing or malformed", field=field)
    check_public_host(host, what=what, field=field)
