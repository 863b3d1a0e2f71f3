"""Credential redaction for anything that may carry a video URL: log lines, status payloads, errors.

Camera URLs routinely embed passwords (``rtsp://admin:hunter2@10.0.0.7/stream``) and FFmpeg echoes
the URL it failed on inside its error messages, so every string that leaves a source goes through
``redact`` first. The rule lives here, in one place:

- ``scheme://user:password@host`` keeps the user name and hides the password: ``user:***@``;
- ``scheme://token@host`` (no colon) hides the whole user part, because cameras and CDNs put API
  keys there: ``***@``;
- secret-looking query parameters (``password``, ``token``, ``api_key``, ``sig``, ...) keep their
  name and lose their value: ``?token=***``.

Examples:
    >>> redact("cannot open rtsp://admin:hunter2@10.0.0.7:554/live?token=abc&ch=1")
    'cannot open rtsp://admin:***@10.0.0.7:554/live?token=***&ch=1'
"""

from __future__ import annotations

import logging
import re

REDACTED = "***"

# The password runs greedily to the last '@' before the path, so an unencoded '@' inside it is
# still hidden completely.
_USERINFO = re.compile(
    r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<userinfo>[^/\s@?#]*(?:@[^/\s@?#]*)*)@"
)
_SECRET_QUERY = re.compile(
    r"(?P<key>[?&;](?:password|passwd|pwd|pass|secret|token|access_token|auth|authorization|"
    r"api[_-]?key|apikey|key|sig|signature|x-amz-signature|credential)=)(?P<value>[^&#\s'\"]*)",
    re.IGNORECASE,
)


def _hide_userinfo(match: re.Match[str]) -> str:
    userinfo = match["userinfo"]
    user, colon, _password = userinfo.partition(":")
    hidden = f"{user}:{REDACTED}" if colon else REDACTED
    return f"{match['scheme']}{hidden}@"


def redact(text: object) -> str:
    """Return ``str(text)`` with URL credentials and secret query values replaced by ``***``."""
    result = _USERINFO.sub(_hide_userinfo, str(text))
    return _SECRET_QUERY.sub(lambda m: f"{m['key']}{REDACTED}", result)


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
