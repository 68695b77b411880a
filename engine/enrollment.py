"""Enrollments: starting a contact on a sequence, moving it along after each send, ending it."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine.config import get_settings
from engine.machine import TERMINAL_STATES, EndReason, machine_for
from engine.models import Contact, Enrollment, ScheduledSend, SendKind, SendStatus
from engine.schedule import Recipient, due_time
from engine.sequences import Sequence, Step
from engine.timeline import record_event

logger = logging.getLogger(__name__)


def live_enrollment(session: Session, contact_id: int, sequence_name: str) -> Enrollment | None:
    return session.scalar(
        select(Enrollment).where(
            Enrollment.contact_id == contact_id,
            Enrollment.sequence_name == sequence_name,
            Enrollment.ended_at.is_(None),
        )
    )


def enroll(
    session: Session, contact: Contact, sequence: Sequence, keyword: str | None, now: datetime, actor: str = "contact",
    new_contact: bool = False,
) -> tuple[Enrollment, ScheduledSend] | None:
    """Start `contact` on `sequence` and schedule its first step; None if it is already enrolled.

    With `re_enroll: restart`, a live enrollment in the same sequence ends as `restarted` and a new
    one starts from the first step. With `ignore` (the default) nothing happens. `new_contact` says
    the contact was created in this transaction, so it has no enrollment to look for.
    """
    current = None if new_contact else live_enrollment(session, contact.id, sequence.name)
    if current is not None and sequence.re_enroll != "restart":
        logger.info("contact %s already in sequence %s as enrollment %s; keyword ignored", contact.id, sequence.name, current.id)
        return None
    if current is not None:
        end_enrollment(session, current, sequence, EndReason.RESTARTED, now, actor=actor)
        session.flush()  # the partial unique index must see it ended before the new row goes in

    enrollment = Enrollment(
        contact_id=contact.id,
        sequence_name=sequence.name,
        keyword=keyword,
        state=machine_for(sequence).initial,
        enrolled_at=now,
    )
    if new_contact:
        # No other transaction can read a contact created in this one, so none can enroll it concurrently.
        session.add(enrollment)
        session.flush()
    else:
        try:
            # The partial unique index turns a concurrent second enrollment into an IntegrityError.
            with session.begin_nested():
                session.add(enrollment)
                session.flush()
        except IntegrityError:
            logger.info("contact %s was enrolled in %s by a concurrent request", contact.id, sequence.name)
            return None

    send = schedule_step(session, enrollment, contact, sequence, sequence.first_step, previous_send=now)
    record_event(session, contact.id, "enrollment.started", actor, enrollment_id=enrollment.id, sequence=sequence.name, keyword=keyword)
    logger.info("contact %s enrolled in %s as enrollment %s", contact.id, sequence.name, enrollment.id)
    return enrollment, send


def recipient_for(contact: Contact) -> Recipient:
    return Recipient(phone=contact.phone, time_zone=contact.time_zone, default_time_zone=get_settings().default_time_zone)


def schedule_step(
    session: Session, enrollment: Enrollment, contact: Contact, sequence: Sequence, step: Step, previous_send: datetime
) -> ScheduledSend:
    """Add the pending send for `step`, due at the time engine.schedule.due_time returns.

    `previous_send` (the moment the delay counts from: the previous send, the enrollment or the reply)
    is stored as the row's created_at, so a later edit of the file can recompute the due time.
    """
    send = ScheduledSend(
        kind=SendKind.STEP.value,
        enrollment_id=enrollment.id,
        contact_id=enrollment.contact_id,
        step_id=step.id,
        due_at=due_time(sequence, step, previous_send, recipient_for(contact)),
        status=SendStatus.PENDING.value,
        created_at=previous_send,
    )
    session.add(send)
    session.flush()
    logger.info("enrollment %s step %s scheduled as send %s at %s", enrollment.id, step.id, send.id, send.due_at.isoformat())
    return send


def advance_after_send(session: Session, enrollment: Enrollment, sequence: Sequence, sent_at: datetime) -> ScheduledSend | None:
    """Move the enrollment past the step just sent and schedule the next one; None when the sequence is done."""
    enrollment.last_sent_at = sent_at
    machine = machine_for(sequence)
    if not machine.has_state(enrollment.state):
        # The file was edited while the text was in flight and the step is gone: nothing follows it.
        end_enrollment(session, enrollment, sequence, EndReason.SEQUENCE_CHANGED, sent_at, actor="engine")
        return None
    state = machine.advance(enrollment)
    if state in TERMINAL_STATES:
        enrollment.ended_at = sent_at
        record_event(session, enrollment.contact_id, "enrollment.ended", "engine", enrollment_id=enrollment.id, reason=state)
        logger.info("enrollment %s ended: %s", enrollment.id, state)
        return None
    next_step = sequence.step(state)
    assert next_step is not None, f"state {state!r} is not a step of {sequence.name!r}"
    contact = session.get_one(Contact, enrollment.contact_id)
    return schedule_step(session, enrollment, contact, sequence, next_step, previous_send=sent_at)


def end_enrollment(
    session: Session, enrollment: Enrollment, sequence: Sequence | None, reason: EndReason, now: datetime, actor: str
) -> int:
    """End a live enrollment with `reason` and cancel its pending sends; returns how many were cancelled."""
    if sequence is not None and enrollment.state not in TERMINAL_STATES and machine_for(sequence).has_state(enrollment.state):
        machine_for(sequence).end(enrollment, reason)
    else:
        # The file (or the step) is gone, so there is no machine to ask; record the reason directly.
        enrollment.state = reason.value
    enrollment.ended_at = now
    cancelled = cancel_pending_sends(session, ScheduledSend.enrollment_id == enrollment.id, f"enrollment ended: {reason.value}")
    record_event(session, enrollment.contact_id, "enrollment.ended", actor, enrollment_id=enrollment.id, reason=reason.value)
    logger.info("enrollment %s ended: %s (%d pending sends cancelled)", enrollment.id, reason.value, cancelled)
    return cancelled


def cancel_pending_sends(session: Session, condition: object, detail: str) -> int:
    result = session.execute(
        update(ScheduledSend)
        .where(condition, ScheduledSend.status == SendStatus.PENDING.value)  # type: ignore[arg-type]
        .values(status=SendStatus.CANCELLED.value, detail=detail)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
