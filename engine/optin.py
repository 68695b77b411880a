"""Double opt-in for captured leads: ask them to reply YES, and enroll them only once they do.

A sequence turns it on with `double_opt_in: true`. A lead captured by the API or an import for such a
sequence gets one confirmation text; no step of the sequence is scheduled until a YES arrives.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine.compliance import record_consent
from engine.keywords import normalise
from engine.library import SequenceLibrary
from engine.lifecycle import start_sequence
from engine.models import ConsentAction, Contact, DoubleOptIn, Message, ScheduledSend, SendKind, SendStatus
from engine.send_times import window_due_at
from engine.sequences import Sequence
from engine.timeline import record_event

logger = logging.getLogger(__name__)

CONFIRM_WORDS = frozenset({"YES", "Y"})
CONFIRMATION_TEXT = "Reply YES to confirm you want texts from us. Msg & data rates may apply. Reply STOP to opt out."


def requires_double_opt_in(sequence: Sequence) -> bool:
    """Return whether the sequence file sets `double_opt_in: true`."""
    return sequence.double_opt_in


def request_double_opt_in(session: Session, contact: Contact, sequence: Sequence, now: datetime, actor: str) -> ScheduledSend | None:
    """Schedule the confirmation text for `sequence`; None when a request is already open."""
    open_request = session.scalar(select(DoubleOptIn).where(
        DoubleOptIn.contact_id == contact.id, DoubleOptIn.sequence_name == sequence.name, DoubleOptIn.confirmed_at.is_(None)
    ))
    if open_request is not None:
        logger.info("contact %s already has double opt-in request %s for %s", contact.id, open_request.id, sequence.name)
        return None
    send = ScheduledSend(kind=SendKind.MANUAL.value, contact_id=contact.id, body=CONFIRMATION_TEXT, actor="engine",
                         due_at=window_due_at(contact, now), status=SendStatus.PENDING.value)
    try:
        # The partial unique index turns a concurrent second request into an IntegrityError.
        with session.begin_nested():
            session.add(send)
            session.flush()
            request = DoubleOptIn(contact_id=contact.id, sequence_name=sequence.name, send_id=send.id, requested_at=now)
            session.add(request)
            session.flush()
    except IntegrityError:
        logger.info("contact %s: a concurrent request asked for double opt-in to %s first", contact.id, sequence.name)
        return None
    record_event(session, contact.id, "opt_in.requested", actor, sequence=sequence.name, send_id=send.id)
    logger.info("contact %s asked to confirm %s (request %s, send %s)", contact.id, sequence.name, request.id, send.id)
    return send


def confirm_double_opt_in(
    session: Session, contact: Contact, message: Message, library: SequenceLibrary, now: datetime
) -> list[ScheduledSend] | None:
    """Enroll the contact in every sequence waiting for its YES; None when `message` confirms nothing."""
    if contact.opted_out or normalise(message.body) not in CONFIRM_WORDS:
        return None
    waiting = session.scalars(
        select(DoubleOptIn).where(DoubleOptIn.contact_id == contact.id, DoubleOptIn.confirmed_at.is_(None)).order_by(DoubleOptIn.id)
    ).all()
    if not waiting:
        return None

    record_consent(session, contact.id, ConsentAction.OPT_IN, "sms", now, keyword=normalise(message.body), message_sid=message.sid,
                   source="double opt-in")
    sends = []
    for request in waiting:
        request.confirmed_at = now
        record_event(session, contact.id, "opt_in.confirmed", "contact", sequence=request.sequence_name, message_id=message.id)
        sequence = library.get(request.sequence_name)
        if sequence is None:
            logger.warning("contact %s confirmed %s, which is no longer a sequence; not enrolled", contact.id, request.sequence_name)
            continue
        started = start_sequence(session, contact, sequence, None, now, "contact", library)
        if started is not None:
            enrollment, send = started
            request.enrollment_id = enrollment.id
            sends.append(send)
        logger.info("contact %s confirmed double opt-in %s for %s", contact.id, request.id, request.sequence_name)
    return sends
