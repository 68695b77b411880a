"""Decisions about one outbound text: whether it is still wanted, its rendered text, and what follows once it went."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from engine.enrollment import advance_after_send, end_enrollment
from engine.compliance import send_blocker
from engine.config import get_settings
from engine.delivery import apply_carrier_error, apply_early_statuses
from engine.library import SequenceLibrary
from engine.lifecycle import note_contacted
from engine.machine import EndReason
from engine.models import Contact, Direction, Enrollment, Message, ScheduledSend, SendKind, SendStatus
from engine.templates import TemplateError, render
from engine.timeline import record_event

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreparedSend:
    """A claimed send, checked and rendered, ready for the transport."""

    send_id: int
    contact_id: int
    enrollment_id: int | None
    to: str
    body: str


def template_fields(contact: Contact, enrollment: Enrollment | None) -> dict[str, Any]:
    """Values a template can use: the contact's standard and custom fields, its owner's name, and the keyword that enrolled it."""
    return {
        **(contact.fields or {}),
        **contact.standard_fields(),
        "owner_name": contact.owner,
        "keyword": enrollment.keyword if enrollment is not None else None,
    }


def _finish(send: ScheduledSend, status: SendStatus, detail: str, now: datetime) -> None:
    send.status, send.detail, send.finished_at = status.value, detail, now


@dataclass(frozen=True)
class LoadedSend:
    """A scheduled send with its contact and, for a step, its enrollment, as one SELECT returned them."""

    send: ScheduledSend
    contact: Contact
    enrollment: Enrollment | None


# Built once at import, because building the statement and its cache key took about half the CPU of a load.
_LOAD_SEND = (
    select(ScheduledSend, Contact, Enrollment)
    .join(Contact, Contact.id == ScheduledSend.contact_id)
    .outerjoin(Enrollment, Enrollment.id == ScheduledSend.enrollment_id)
    .where(ScheduledSend.id == bindparam("send_id"))
)


def load_send(session: Session, send_id: int) -> LoadedSend:
    """Read a scheduled send, its contact and its enrollment in one joined SELECT.

    The session's identity map keeps unmodified rows only as weak references. The LoadedSend keeps the
    three rows referenced, so later `session.get` calls in the transaction find them without SQL.
    """
    send, contact, enrollment = session.execute(_LOAD_SEND, {"send_id": send_id}).one()
    return LoadedSend(send=send, contact=contact, enrollment=enrollment)


def prepare_claimed_send(session: Session, loaded: LoadedSend, library: SequenceLibrary, now: datetime) -> PreparedSend | None:
    """Check a claimed send is still wanted and render its text; None (and the row closed) when it is not."""
    send, contact, enrollment = loaded.send, loaded.contact, loaded.enrollment

    # Checked here, in the worker, and not only when the send was scheduled: the contact may have
    # texted STOP while the job waited in Redis.
    blocker = send_blocker(contact)
    if blocker is not None:
        _finish(send, SendStatus.CANCELLED, f"contact {contact.id} is {blocker}", now)
        logger.info("send %s cancelled: contact %s is %s", send.id, contact.id, blocker)
        return None

    if send.kind == SendKind.STEP.value:
        assert enrollment is not None and send.step_id is not None
        sequence = library.get(enrollment.sequence_name)
        step = sequence.step(send.step_id) if sequence is not None else None
        if not enrollment.active or enrollment.state != send.step_id:
            _finish(send, SendStatus.CANCELLED, f"enrollment {enrollment.id} is no longer at step {send.step_id} (state {enrollment.state})", now)
            logger.info("send %s cancelled: enrollment %s moved on to %s", send.id, enrollment.id, enrollment.state)
            return None
        if step is None:
            # The enrollment waits on a step that was edited out of the file: nothing can follow it.
            _finish(send, SendStatus.CANCELLED, f"step {send.step_id} is not in sequence {enrollment.sequence_name} any more", now)
            end_enrollment(session, enrollment, sequence, EndReason.SEQUENCE_CHANGED, now, actor="engine")
            logger.warning("send %s cancelled and enrollment %s ended: step %s was removed from %s",
                           send.id, enrollment.id, send.step_id, enrollment.sequence_name)
            return None
        try:
            body = render(step.text, template_fields(contact, enrollment))
        except TemplateError as error:
            _finish(send, SendStatus.FAILED, str(error), now)
            logger.error("send %s (enrollment %s) failed: %s", send.id, enrollment.id, error)
            return None
    else:
        body = send.body or ""
    return PreparedSend(send_id=send.id, contact_id=contact.id, enrollment_id=send.enrollment_id, to=contact.phone, body=body)


def still_wanted(session: Session, prepared: PreparedSend, now: datetime) -> bool:
    """Check again, after waiting for a send slot, that the contact may be texted and a step's enrollment is still live.

    Cancels the claimed row and returns False when it is not.
    """
    loaded = load_send(session, prepared.send_id)
    send, contact, enrollment = loaded.send, loaded.contact, loaded.enrollment
    reason = None
    blocker = send_blocker(contact)
    if blocker is not None:
        reason = f"contact {contact.id} is {blocker}"
    elif send.kind == SendKind.STEP.value and enrollment is not None and (not enrollment.active or enrollment.state != send.step_id):
        reason = f"enrollment {enrollment.id} is no longer at step {send.step_id} (state {enrollment.state})"
    if reason is None:
        return True
    _finish(send, SendStatus.CANCELLED, reason, now)
    logger.info("send %s cancelled while waiting for a send slot: %s", send.id, reason)
    return False


def record_failed(
    session: Session, prepared: PreparedSend, from_number: str, http_status: int | None, code: int | None, detail: str,
    library: SequenceLibrary, now: datetime, undeliverable_after: int,
) -> ScheduledSend | None:
    """Record a send the carrier rejected for good, act on its error code, and move a step's enrollment on.

    The failed text is stored as an outbound message with the error code, on the contact's timeline.
    A step's enrollment goes on to its next step, as after a delivery failure reported later by
    callback, unless the error opted the contact out or made the number undeliverable.
    """
    loaded = load_send(session, prepared.send_id)
    send = loaded.send
    _finish(send, SendStatus.FAILED, detail, now)
    message = _store_outbound(session, prepared, None, "failed", from_number, error_code=code)
    record_event(session, prepared.contact_id, "message.failed", "carrier", message_id=message.id, send_id=send.id,
                 status=http_status, error_code=code, step=send.step_id)
    logger.error("send %s (contact %s, enrollment %s) rejected by the carrier: HTTP %s, error %s",
                 send.id, prepared.contact_id, send.enrollment_id, http_status, code)
    if code is not None:
        apply_carrier_error(session, prepared.contact_id, code, library, now, undeliverable_after, send_id=send.id)
    return _advance_step(session, loaded, library, now)


def record_sent(
    session: Session, prepared: PreparedSend, sid: str, status: str, from_number: str, library: SequenceLibrary, now: datetime
) -> ScheduledSend | None:
    """Store the outbound message and move a step's enrollment on; returns the next send to enqueue, if any."""
    loaded = load_send(session, prepared.send_id)
    send = loaded.send
    send.status, send.finished_at = SendStatus.SENT.value, now
    message = _store_outbound(session, prepared, sid, status, from_number)
    record_event(session, prepared.contact_id, "message.out", send.actor, message_id=message.id, sid=sid, send_id=send.id, step=send.step_id)
    logger.info("send %s went out as %s (contact %s, enrollment %s, step %s)", send.id, sid, prepared.contact_id, send.enrollment_id, send.step_id)
    note_contacted(session, loaded.contact, now, send.actor, library)
    apply_early_statuses(session, message, library, now, get_settings().undeliverable_after)

    return _advance_step(session, loaded, library, now)


def _store_outbound(
    session: Session, prepared: PreparedSend, sid: str | None, status: str, from_number: str, error_code: int | None = None
) -> Message:
    """Add the outbound message for a claimed send and flush it, so it has an id for the timeline."""
    message = Message(
        contact_id=prepared.contact_id,
        direction=Direction.OUTBOUND.value,
        sid=sid,
        from_number=from_number,
        to_number=prepared.to,
        body=prepared.body,
        status=status,
        error_code=error_code,
        enrollment_id=prepared.enrollment_id,
        send_id=prepared.send_id,
    )
    session.add(message)
    session.flush()
    return message


def _advance_step(session: Session, loaded: LoadedSend, library: SequenceLibrary, now: datetime) -> ScheduledSend | None:
    send, enrollment = loaded.send, loaded.enrollment
    if send.kind != SendKind.STEP.value or enrollment is None:
        return None
    sequence = library.get(enrollment.sequence_name)
    if sequence is None or not enrollment.active or enrollment.state != send.step_id:
        # A reply or opt-out ended or moved the enrollment while the text was in flight.
        return None
    return advance_after_send(session, enrollment, sequence, now)
