"""Credential redaction for anything that may carry a video URL: log lines, status payloads, errors.

Camera URLs routinely embed passwords (``rtsp://admin:hunter2@10.0.0.7/stream``) and FFmpeg echoes
the URL it failed on inside its error messages, so every string that leaves a source goes through
``redact`` first. The rule lives here, in one place:

- ``scheme://user:password@host`` keeps the user name and hides the password: ``user:***@``. The
  password runs to the last ``@`` of the URL, so unencoded spaces, ``/ ? #`` and ``@`` in it are
  hidden too (a URL ends at the quote that opened it, else at a line break or the next
  ``scheme://``);
- ``scheme://token@host`` (no colon) hides the whole user part, because cameras and CDNs put API
  keys there: ``***@``;
- secret-looking query parameters (``password``, ``token``, ``api_key``, ``sig``, ...) keep their
  name and lose their value: ``?token=***``;
- a ``webhook:URL`` sink spec keeps its scheme, host and port and loses its user part, path and
  query (``webhook:https://hooks.example/***``): webhook paths are bearer secrets (Slack,
  Discord). This is exactly the name the webhook sink gives itself.

When text is ambiguous the rule hides too much, never too little: in
``rtsp://cam:554/s failed, mail admin@example.com`` everything from ``554`` to the ``@`` is hidden.

The webhook sink (``sinks`` never imports ``pipeline``) does not scrub text: it knows its URL
exactly, refuses one whose ``@`` placement is ambiguous, and names itself from the URL's parts
(``sinks.webhook.webhook_display_url``). Nothing is shared because nothing is repeated: this
module scrubs free text; the sink formats one parsed URL.

Examples:
    >>> redact("cannot open rtsp://admin:hunter2@10.0.0.7:554/live?token=abc&ch=1")
    'cannot open rtsp://admin:***@10.0.0.7:554/live?token=***&ch=1'
    >>> redact("cannot open 'rtsp://admin:pa ss/w?rd@10.0.0.7/live'")
    "cannot open 'rtsp://admin:***@10.0.0.7/live'"
"""

from __future__ import annotations

import logging
import re

REDACTED = "***"

# Bounded, so a long run like "a.a.a.a..." costs linear time, not quadratic.
_SCHEME = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.\-]{0,31}://")
_QUOTES = {"'": "'", '"': '"', "`": "`", "<": ">", "(": ")", "[": "]"}
# Characters that end a URL's authority; a user:password may still hold them (unencoded).
_AUTHORITY_END = re.compile(r"[/?#\s]")
# What may follow the '@' that ends the userinfo: the start of a host name or an IPv6 literal.
_HOST_START = re.compile(r"[A-Za-z0-9\[]")
_SECRET_QUERY = re.compile(
    r"(?P<key>[?&;](?:password|passwd|pwd|pass|secret|token|access_token|auth|authorization|"
    r"api[_-]?key|apikey|key|sig|signature|x-amz-signature|credential)=)(?P<value>[^&#\s'\"]*)",
    re.IGNORECASE,
)
_WEBHOOK_SPEC = re.compile(
    r"(?P<scheme>\bwebhook:[a-zA-Z][a-zA-Z0-9+.\-]*://)(?:[^/?#\s'\"@]*@)?"
    r"(?P<host>[^/?#\s'\"@]*)(?P<rest>[/?#][^\s'\"]*)?"
)


def _url_ends(text: str, start: int, scheme_start: int) -> tuple[int, int]:
    """Where the URL beginning at ``start`` may end: at its closing quote, and at the line's end.

    Both stop at the next URL, so redacting a text costs time linear in its length. The quote is
    tried first; a password holding that very quote is still found by the line's end.
    """
    following = _SCHEME.search(text, start)
    line_end = following.start() if following is not None else len(text)
    for stop in ("\n", "\r"):
        found = text.find(stop, start, line_end)
        if found != -1:
            line_end = found
    opener = text[scheme_start - 1] if scheme_start > 0 else ""
    quoted_end = text.find(_QUOTES[opener], start, line_end) if opener in _QUOTES else -1
    return (quoted_end if quoted_end != -1 else line_end), line_end


def _userinfo_end(url_rest: str) -> int:
    """The index of the '@' that ends the userinfo in ``url_rest`` (text after ``://``), or -1.

    The last '@' of the authority wins (its host may be empty: ``user:pw@:554``), so an '@' in a
    password stays hidden; past the authority, the last '@' followed by a host. A userinfo that
    holds ``/ ? #`` or whitespace counts only in ``user:password`` form (a colon before the first
    of them): ``cam.local/users/@me`` is a path, ``admin:pa/ss@cam`` a password.
    """
    odd = _AUTHORITY_END.search(url_rest)
    first_odd = odd.start() if odd is not None else len(url_rest)
    password_form = ":" in url_rest[:first_odd]
    at = len(url_rest)
    while (at := url_rest.rfind("@", 0, at)) > 0:
        if at < first_odd:
            return at  # inside the authority: what follows is the host, even an empty one
        if password_form and _HOST_START.match(url_rest, at + 1):
            return at
    return -1


def _hide_userinfo(text: str) -> str:
    pieces: list[str] = []
    done = 0
    for scheme in _SCHEME.finditer(text):
        if scheme.start() < done:
            continue  # inside a userinfo already hidden
        start = scheme.end()
        quoted_end, line_end = _url_ends(text, start, scheme.start())
        rest = text[start:quoted_end]
        at = _userinfo_end(rest)
        if at < 0 and quoted_end < line_end:
            rest = text[start:line_end]
            at = _userinfo_end(rest)
        if at < 0:
            continue
        user, colon, _password = rest[:at].partition(":")
        hidden = f"{user}:{REDACTED}" if colon and user else REDACTED
        pieces.append(text[done:start] + hidden)
        done = start + at
    pieces.append(text[done:])
    return "".join(pieces)


def _hide_webhook_secrets(match: re.Match[str]) -> str:
    rest = match["rest"] or ""
    return f"{match['scheme']}{match['host']}{rest if rest in ('', '/') else '/' + REDACTED}"


def redact(text: object) -> str:
    """Return ``str(text)`` with URL credentials, secret query values and webhook paths hidden."""
    result = _hide_userinfo(str(text))
    result = _SECRET_QUERY.sub(lambda m: f"{m['key']}{REDACTED}", result)
    return _WEBHOOK_SPEC.sub(_hide_webhook_secrets, result)


class RedactingFilter(logging.Filter):
    """A logging filter that redacts the fully formatted message (and exception text) of a record.

    Attach it to handlers (``handler.addFilter(RedactingFilter())``): handler filters see records
    from every logger, including libraries that log a URL we never formatted ourselves.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def install_log_redaction(logger: logging.Logger | None = None) -> None:
    """Add a ``RedactingFilter`` to every handler of ``logger`` (the root logger by default)."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
