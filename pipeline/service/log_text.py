"""Make request data safe to put in a log line: control characters are shown escaped.

A request path arrives percent-decoded, so ``GET /x%0a2026-01-01 INFO forged`` would write a
second, forged line into the server log if printed as it is. Everything a client chose (path,
method, stream source, sink, error messages quoting them) goes through ``printable`` before it
reaches a logger.
"""

from __future__ import annotations

from itertools import chain


def _escaped(char: str) -> str:
    return char.encode("unicode_escape").decode("ascii")


_COMMON_ESCAPES = {
    code: _escaped(chr(code))
    for code in chain(
        range(0x20),  # C0 controls: newline, carriage return, escape, NUL, ...
        range(0x7F, 0xA0),  # DEL and the C1 controls
        range(0x200B, 0x2010),  # zero-width characters, direction marks
        range(0x2028, 0x202F),  # line and paragraph separators, bidi embeddings and overrides
        range(0x2060, 0x2070),  # word joiner, invisible operators, bidi isolates
        (0xFEFF,),  # zero-width no-break space
    )
}
"""The non-printable characters a forged line would use, escaped by one ``str.translate``."""


def printable(text: object) -> str:
    """``str(text)`` with each non-printable character (newline, CR, ESC, NUL, U+2028) escaped.

    Linear in the length of the text: one ``str.translate`` for the usual suspects, a per-character
    pass only if something rarer is left. A printable string comes back unchanged.

    Examples:
        >>> printable("/x\\n2026 INFO forged")
        '/x\\\\n2026 INFO forged'
    """
    value = str(text)
    if value.isprintable():
        return value
    value = value.translate(_COMMON_ESCAPES)
    if value.isprintable():
        return value
    return "".join(char if char.isprintable() else _escaped(char) for char in value)


def has_control_characters(text: str) -> bool:
    """Whether ``text`` holds a character that is not printable (a space is printable)."""
    return not text.isprintable()
