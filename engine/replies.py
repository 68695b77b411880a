"""Replies to sequences: a reply word runs its step's actions, and any other reply stops or leaves live sequences.

A reply applies to the last text the contact received, as RapidPro and TextUs users expect. If that
text was a step whose `replies` list the word, its actions run, even when the enrollment already ran
to its end (completed, converted or lost). Otherwise each live enrollment follows its sequence's
`on_reply`: `stop` ends it as `replied` so a person takes over, and `continue` leaves it running.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.enrollment import cancel_pending_sends, end_enrollment, live_enrollment, schedule_step
from engine.keywords import KeywordIndex, KeywordRule
from engine.lead_status import InvalidStatusMove
from engine.library import SequenceLibrary
from engine.lifecycle import assign_by_action, change_status
from engine.machine import ANSWERABLE_END_STATES, EndReason, machine_for
from engine.models import Contact, Direction, Enrollment, Message, ScheduledSend, SendKind
from engine.outbound import template_fields
from engine.sequences import ReplyAction, Sequence, Step
from engine.templates import TemplateError, render
from engine.timeline import record_event

logger = logging.getLogger(__name__)


@dataclass
class ReplyOutcome:
    reply: str | None = None  # text sent back at once in the webhook response (TwiML)
    sends: list[ScheduledSend] = field(default_factory=list)  # to enqueue once the transaction commits


def match_reply_word(sequence: Sequence, step: Step, body: str) -> tuple[str, ReplyAction] | None:
    """Return the reply word of `step` that `body` matches (normalised like keywords, by the sequence's `match`) and its actions."""
    if not step.replies:
        return None
    index = KeywordIndex(KeywordRule(keyword=word, sequence_name=sequence.name, match=sequence.match) for word in step.replies)
    rule = index.match(body)
    return (rule.keyword, step.replies[rule.keyword]) if rule is not None else None


def handle_reply(session: Session, contact: Contact, record: Message, library: SequenceLibrary, now: datetime) -> ReplyOutcome:
    """Act on an inbound text that is no keyword, in the caller's transaction."""
    outcome = ReplyOutcome()
    answered = _last_step_received(session, contact.id)
    if answered is not None:
        enrollment, step_id = answered
        sequence = library.get(enrollment.sequence_name)
        step = sequence.step(step_id) if sequence is not None else None
        answerable = enrollment.ended_at is None or enrollment.state in ANSWERABLE_END_STATES
        matched = match_reply_word(sequence, step, record.body) if sequence is not None and step is not None and answerable else None
        if matched is not None:
            assert sequence is not None
            word, action = matched
            record.enrollment_id = enrollment.id
            logger.info("inbound %s from contact %s is reply word %s to step %s of enrollment %s", record.sid, contact.id, word, step_id, enrollment.id)
            record_event(session, contact.id, "reply.matched", "contact", enrollment_id=enrollment.id, step=step_id, word=word)
            _run_actions(session, contact, enrollment, sequence, action, now, outcome, library)
            return outcome

    live = session.scalars(select(Enrollment).where(Enrollment.contact_id == contact.id, Enrollment.ended_at.is_(None))).all()
    if not live:
        logger.info("inbound %s from contact %s is conversation; no sequence is live", record.sid, contact.id)
        return outcome
    for enrollment in live:
        record.enrollment_id = enrollment.id
        sequence = library.get(enrollment.sequence_name)
        if sequence is not None and sequence.on_reply == "continue":
            logger.info("inbound %s: enrollment %s goes on (on_reply: continue)", record.sid, enrollment.id)
            continue
        end_enrollment(session, enrollment, sequence, EndReason.REPLIED, now, actor="contact")
    return outcome


def _last_step_received(session: Session, contact_id: int) -> tuple[Enrollment, str] | None:
    """Return the enrollment and step of the last text sent to the contact, or None when that text was no step."""
    row = session.execute(
        select(Message.enrollment_id, ScheduledSend.kind, ScheduledSend.step_id)
        .join(ScheduledSend, ScheduledSend.id == Message.send_id)
        .where(Message.contact_id == contact_id, Message.direction == Direction.OUTBOUND.value)
        .order_by(Message.id.desc())
        .limit(1)
    ).first()
    if row is None or row.kind != SendKind.STEP.value or row.enrollment_id is None or row.step_id is None:
        return None
    return session.get_one(Enrollment, row.enrollment_id), row.step_id


def _run_actions(
    session: Session, contact: Contact, enrollment: Enrollment, sequence: Sequence, action: ReplyAction, now: datetime,
    outcome: ReplyOutcome, library: SequenceLibrary,
) -> None:
    if action.next is not None:
        send = jump_to_step(session, enrollment, contact, sequence, action.next, now)
        if send is not None:
            outcome.sends.append(send)
    if action.end is not None:
        _end_by_reply(session, enrollment, sequence, EndReason(action.end), now)

    # Status and owner come after the jumps and ends, so a status that ends sequences (converted, lost) ends them too.
    if action.status is not None:
        try:
            change_status(session, contact, action.status, now, "contact", library)
        except InvalidStatusMove as error:
            logger.warning("contact %s: reply word of enrollment %s keeps status %s: %s", contact.id, enrollment.id, contact.status, error)
    if action.assign:
        record_event(session, contact.id, "lead.assignment_requested", "contact", enrollment_id=enrollment.id)
        assign_by_action(session, contact, now, "contact")

    # The reply text is rendered last, so {owner_name} names the rep the actions above assigned.
    if action.reply is not None:
        try:
            outcome.reply = render(action.reply, template_fields(contact, enrollment))
        except TemplateError as error:
            logger.error("enrollment %s: reply text of sequence %s cannot be rendered: %s", enrollment.id, sequence.name, error)


def jump_to_step(
    session: Session, enrollment: Enrollment, contact: Contact, sequence: Sequence, step_id: str, now: datetime
) -> ScheduledSend | None:
    """Move the enrollment to `step_id` and schedule it from `now`, reopening an enrollment that ran to its end."""
    machine = machine_for(sequence)
    step = sequence.step(step_id)
    assert step is not None, f"the loader checks that {step_id!r} is a step of {sequence.name!r}"
    reopening = enrollment.ended_at is not None
    if reopening and live_enrollment(session, contact.id, sequence.name) is not None:
        logger.info("enrollment %s not reopened: contact %s has a newer live enrollment in %s", enrollment.id, contact.id, sequence.name)
        return None
    if not machine.has_state(enrollment.state):
        end_enrollment(session, enrollment, sequence, EndReason.SEQUENCE_CHANGED, now, actor="engine")
        return None

    cancel_pending_sends(session, ScheduledSend.enrollment_id == enrollment.id, f"reply moved the enrollment to step {step_id}")
    previous = enrollment.state
    machine.go_to(enrollment, step_id)
    if reopening:
        enrollment.ended_at = None
    record_event(session, contact.id, "enrollment.jumped", "contact", enrollment_id=enrollment.id, from_state=previous, step=step_id)
    logger.info("enrollment %s jumped from %s to step %s", enrollment.id, previous, step_id)
    return schedule_step(session, enrollment, contact, sequence, step, previous_send=now)


def _end_by_reply(session: Session, enrollment: Enrollment, sequence: Sequence, reason: EndReason, now: datetime) -> None:
    if enrollment.ended_at is None:
        end_enrollment(session, enrollment, sequence, reason, now, actor="contact")
        return
    if enrollment.state == reason.value:
        return
    # The enrollment already ran to its end; the reply changes why (completed -> converted).
    previous = enrollment.state
    machine_for(sequence).end(enrollment, reason)
    record_event(session, enrollment.contact_id, "enrollment.ended", "contact", enrollment_id=enrollment.id, reason=reason.value, previous=previous)
    logger.info("enrollment %s end reason %s -> %s by a reply word", enrollment.id, previous, reason.value)
