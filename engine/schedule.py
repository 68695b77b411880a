"""Send-time arithmetic: pure functions shared by the engine and `simulate`, so the preview is what happens."""

from __future__ import annotations

from datetime import datetime

from engine.sequences import Step


def due_time(step: Step, previous_send: datetime) -> datetime:
    """Return when `step` is due, measured from the previous step's send (or from enrollment for the first)."""
    if previous_send.tzinfo is None:
        raise ValueError("previous_send must be timezone-aware")
    return previous_send + step.after
