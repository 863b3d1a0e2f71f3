"""Why a stream's HF session is replaced: the reseed rule of DESIGN.md, by name.

A fresh HF session (new inference state, concepts registered once) is created only when the
session does not exist yet (first frame, or after it was closed: idle expiry, LRU, an inference
error, the caller closing it), the ``epoch`` changed (reconnect, restart, failover), ``frame_id``
went backwards, or the caller reset it. Nothing else resets a session: no periodic reseed.

A class change is not a reseed. The port keeps its concepts as separate prompts, runs the
detector once per prompt and matches detections only to tracks of the same prompt, so
``StreamSession`` registers added concepts on the running session and drops removed ones with
their tracks (``Sam3VideoTracker.add_prompts`` / ``remove_prompts``); every other track keeps its
memory and its id. No class change needs a reseed: the one trap, the port numbering a new prompt
``len(prompts)`` (an id still in use after a removal), is avoided by ``add_prompts`` choosing the
id itself. ``StreamSession`` applies the rule on every frame; this module only names the reasons.
"""

from __future__ import annotations

from enum import StrEnum


class ReseedReason(StrEnum):
    """Why a frame starts a fresh HF session; the value is what logs and docs say."""

    NEW_SESSION = "new session"
    EPOCH_CHANGED = "epoch changed"
    FRAME_ID_WENT_BACKWARDS = "frame_id went backwards"
    RESET_BY_CALLER = "reset by caller"


RESEED_TRIGGERS: tuple[str, ...] = tuple(reason.value for reason in ReseedReason)
"""Every reseed reason's text, in the order of the rule (kept for code that reads the rule)."""
