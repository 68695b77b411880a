"""Timeline events: what happened to a contact, when, and who did it."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from engine.models import Event


def record_event(session: Session, contact_id: int, kind: str, actor: str, **data: Any) -> Event:
    """Add an event to the contact's timeline in the caller's transaction."""
    event = Event(contact_id=contact_id, kind=kind, actor=actor, data=data)
    session.add(event)
    return event
