"""Why a stream's HF session is replaced: the reseed rule of DESIGN.md, by name.

A fresh HF session (new inference state, concepts registered once) is created only when the
session does not exist yet (first frame, or after it was closed: idle expiry, LRU, an inference
error, the caller closing it), the ``epoch`` changed (reconnect, restart, failover), ``frame_id``
went backwards, the normalised class list changed, or the caller reset it. Nothing else resets a
session: no periodic reseed. ``StreamSession`` applies the rule on every frame; this module only
names the reasons.
"""

from __future__ import annotations

from enum import StrEnum


class ReseedReason(StrEnum):
    """Why a frame starts a fresh HF session; the value is what logs and docs say."""

    NEW_SESSION = "new session"
    EPOCH_CHANGED = "epoch changed"
    FRAME_ID_WENT_BACKWARDS = "frame_id went backwards"
    CLASS_NAMES_CHANGED = "class names changed"
    RESET_BY_CALLER = "reset by caller"


RESEED_TRIGGERS: tuple[str, ...] = tuple(reason.value for reason in ReseedReason)
"""Every reseed reason's text, in the order of the rule (kept for code that reads the rule)."""
