"""``video_identifier`` names that are unique in the process, claimed by pipelines while they run.

Why unique: the tracker keys its sessions and its never-reused ``tracker_id`` counters on the
identifier. Two live pipelines feeding the same identifier would reseed each other's session on
every frame (their epochs and frame ids disagree) and interleave their ids.

The rule, in one place: an identifier the caller *gives* must be free, else ``ConfigError``; one
*derived* from the reference (credentials redacted) gets ``#2``, ``#3``... appended when the plain
form is taken (the same camera opened twice). Pipelines release their names when they end, and
a name that comes back continues its ids above the old ones (the registry remembers them).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

from pipeline.errors import ConfigError
from pipeline.redact import redact
from pipeline.sources import VideoReference, describe

_claimed: set[str] = set()
_lock = threading.Lock()


def claim_identifiers(
    references: Sequence[VideoReference], requested: Sequence[str | None] | None = None
) -> list[str]:
    """Reserve one identifier per reference, in order; see the module docstring for the rule.

    Raises:
        ConfigError: (``field="video_identifiers"``) a requested identifier is empty, repeated,
            or used elsewhere in the process; or the number of identifiers does not match the
            number of references.
    """
    if requested is None:
        requested = [None] * len(references)
    if len(requested) != len(references):
        raise ConfigError(
            f"{len(requested)} video identifiers for {len(references)} sources: give one per "
            "source (None to derive it from the reference)",
            field="video_identifiers",
        )
    given = [None if name is None else redact(name).strip() for name in requested]
    with _lock:
        taken = set(_claimed)
        for name in given:
            if name is None:
                continue
            if not name:
                raise ConfigError("a video_identifier must not be empty", field="video_identifiers")
            if name in taken:
                raise ConfigError(
                    f"video_identifier {name!r} is already used by another source in this "
                    "process: give each source its own",
                    field="video_identifiers",
                )
            taken.add(name)
        result = []
        for reference, name in zip(references, given, strict=True):
            if name is None:
                name = _free_variant(describe(reference), taken)
                taken.add(name)
            result.append(name)
        _claimed.update(result)
    return result


def release_identifiers(names: Iterable[str]) -> None:
    """Give names back (idempotent); called when a pipeline ends or fails to start."""
    with _lock:
        _claimed.difference_update(names)


def _free_variant(base: str, taken: set[str]) -> str:
    name, suffix = base, 2
    while name in taken:
        name, suffix = f"{base}#{suffix}", suffix + 1
    return name
