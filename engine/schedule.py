"""Send-time arithmetic: pure functions shared by the engine and `simulate`, so the preview is what happens."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from engine.sequences import Sequence, Step


@dataclass(frozen=True)
class Recipient:
    """The person a text goes to, as far as scheduling needs."""

    phone: str  # E.164
    time_zone: str | None = None  # IANA name from the contact record; None: derive from the number


def due_time(sequence: Sequence, step: Step, previous_send: datetime, recipient: Recipient) -> datetime:
    """Return when `step` is due, measured from the previous step's send (or from enrollment for the first)."""
    if previous_send.tzinfo is None:
        raise ValueError("previous_send must be timezone-aware")
    return previous_send + step.after
