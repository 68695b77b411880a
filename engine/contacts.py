"""Contacts (leads): looked up and created by E.164 number."""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine.models import Contact
from engine.timeline import record_event

logger = logging.getLogger(__name__)


def find_or_create_contact(session: Session, phone: str, source: str) -> tuple[Contact, bool]:
    """Return the contact for an E.164 number, creating it if new; the bool says whether it was created.

    Two requests for a new number can race; the unique index on phone lets one insert win and
    the other reads the winner's row.
    """
    contact = session.scalar(select(Contact).where(Contact.phone == phone))
    if contact is not None:
        return contact, False
    try:
        with session.begin_nested():
            contact = Contact(phone=phone, fields={})
            session.add(contact)
            session.flush()
    except IntegrityError:
        contact = session.scalars(select(Contact).where(Contact.phone == phone)).one()
        return contact, False
    record_event(session, contact.id, "contact.created", "engine", source=source)
    logger.info("contact %s created from %s", contact.id, source)
    return contact, True
