"""When an engine-initiated text outside a sequence (a broadcast, a double opt-in request) may go out."""

from __future__ import annotations

from datetime import datetime

from engine.enrollment import recipient_for
from engine.models import Contact
from engine.schedule import quiet_hours_due


def window_due_at(contact: Contact, now: datetime) -> datetime:
    """Return `now` if it is inside the contact's quiet hours, else when they next open (the rule steps follow)."""
    return quiet_hours_due(now, recipient_for(contact))
