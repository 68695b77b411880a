"""Reading contacts for the API and exports: lookup by number, filtered pages, timelines, last activity."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from engine.models import Contact, Enrollment, Event, Message, ScheduledSend
from engine.phones import to_e164

logger = logging.getLogger(__name__)

MAX_PAGE_SIZE = 200
TIMELINE_LIMIT = 500  # most recent events returned with a contact


def find_contact(session: Session, raw_phone: str, region: str) -> Contact | None:
    """Return the contact for a number in any common format; raises InvalidPhoneNumber for a bad one."""
    return session.scalar(select(Contact).where(Contact.phone == to_e164(raw_phone, region)))


def contacts_query(status: str | None = None, owner: str | None = None, sequence: str | None = None) -> Select[tuple[Contact]]:
    """Contacts filtered by status, owner and sequence (ever enrolled in it), oldest first."""
    query = select(Contact)
    if status:
        query = query.where(Contact.status == status)
    if owner:
        query = query.where(Contact.owner == owner)
    if sequence:
        query = query.where(Contact.id.in_(select(Enrollment.contact_id).where(Enrollment.sequence_name == sequence)))
    return query.order_by(Contact.id)


def page_of_contacts(session: Session, query: Select[tuple[Contact]], page: int, per_page: int) -> tuple[list[Contact], int]:
    """Return one page (counting from 1) and the total number of matching contacts."""
    total = int(session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0)
    rows = session.scalars(query.offset((page - 1) * per_page).limit(per_page)).all()
    return list(rows), total


def last_activity(session: Session, contact_ids: Iterable[int]) -> dict[int, datetime]:
    """Time of each contact's latest timeline event."""
    ids = list(contact_ids)
    if not ids:
        return {}
    rows = session.execute(select(Event.contact_id, func.max(Event.created_at)).where(Event.contact_id.in_(ids)).group_by(Event.contact_id))
    return {contact_id: moment for contact_id, moment in rows if moment is not None}


def contact_summary(contact: Contact, activity: datetime | None = None) -> dict[str, Any]:
    return {
        "id": contact.id,
        **contact.standard_fields(),
        "source": contact.source,
        "status": contact.status,
        "owner": contact.owner,
        "score": contact.score,
        "opted_out": contact.opted_out,
        "opted_out_at": _iso(contact.opted_out_at),
        "created_at": _iso(contact.created_at),
        "last_activity_at": _iso(activity),
    }


def contact_detail(session: Session, contact: Contact) -> dict[str, Any]:
    """Return the contact with its fields, score reasons, enrollments and timeline (newest events last)."""
    enrollments = session.scalars(select(Enrollment).where(Enrollment.contact_id == contact.id).order_by(Enrollment.id)).all()
    events = list(session.scalars(
        select(Event).where(Event.contact_id == contact.id).order_by(Event.id.desc()).limit(TIMELINE_LIMIT)
    ).all())[::-1]
    message_ids = {event.data.get("message_id") for event in events if event.data.get("message_id") is not None}
    messages = {message.id: message for message in session.scalars(select(Message).where(Message.id.in_(message_ids)))} if message_ids else {}
    timeline = []
    for event in events:
        entry: dict[str, Any] = {"at": _iso(event.created_at), "kind": event.kind, "actor": event.actor, "data": event.data}
        message = messages.get(event.data.get("message_id"))  # type: ignore[arg-type]
        if message is not None:
            entry["text"] = message.body
        timeline.append(entry)
    return {
        **contact_summary(contact, events[-1].created_at if events else None),
        "fields": contact.fields or {},
        "time_zone": contact.time_zone,
        "assigned_at": _iso(contact.assigned_at),
        "score_reasons": contact.score_reasons or [],
        "enrollments": [
            {"id": e.id, "sequence": e.sequence_name, "state": e.state, "active": e.active, "keyword": e.keyword,
             "enrolled_at": _iso(e.enrolled_at), "ended_at": _iso(e.ended_at)}
            for e in enrollments
        ],
        "pending_sends": [
            {"id": s.id, "kind": s.kind, "step": s.step_id, "due_at": _iso(s.due_at), "actor": s.actor}
            for s in session.scalars(select(ScheduledSend).where(ScheduledSend.contact_id == contact.id,
                                                                 ScheduledSend.status == "pending").order_by(ScheduledSend.due_at))
        ],
        "timeline": timeline,
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
