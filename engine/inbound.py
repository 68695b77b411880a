"""Deciding what an inbound text means: a keyword, a reply to a sequence, or conversation."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine.compliance import answer_compliance_text, opt_in
from engine.contacts import find_or_create_contact
from engine.delivery import clear_undeliverable
from engine.library import SequenceLibrary
from engine.lifecycle import note_keyword, note_reply, start_sequence
from engine.models import Direction, Message, ScheduledSend
from engine.optin import confirm_double_opt_in
from engine.phones import mask
from engine.replies import handle_reply
from engine.timeline import record_event

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class InboundMessage:
    sid: str  # MessageSid
    from_number: str  # E.164, the prospect
    to_number: str  # E.164, our number
    body: str


@dataclass
class InboundOutcome:
    reply: str | None = None  # text to answer inline (TwiML <Message>), None for an empty response
    sends: list[ScheduledSend] = field(default_factory=list)  # to enqueue once the transaction commits
    duplicate: bool = False  # the MessageSid was handled before; nothing new happened
    contact_id: int | None = None


def handle_inbound(session: Session, message: InboundMessage, library: SequenceLibrary, now: datetime) -> InboundOutcome:
    """Record an inbound text and act on it, all in the caller's transaction.

    A MessageSid seen before returns the stored answer and changes nothing, so carrier retries and
    duplicate posts have their effects once.
    """
    previous = _find_inbound(session, message.sid)
    if previous is not None:
        logger.info("inbound %s is a duplicate; answering as before", message.sid)
        return InboundOutcome(reply=previous.reply_text, duplicate=True, contact_id=previous.contact_id)

    contact, created = find_or_create_contact(session, message.from_number, source="sms")
    record = Message(
        contact_id=contact.id,
        direction=Direction.INBOUND.value,
        sid=message.sid,
        from_number=message.from_number,
        to_number=message.to_number,
        body=message.body,
        status="received",
    )
    try:
        # A concurrent post of the same MessageSid loses on the unique index and answers as the winner did.
        with session.begin_nested():
            session.add(record)
            session.flush()
    except IntegrityError:
        previous = _find_inbound(session, message.sid)
        assert previous is not None
        return InboundOutcome(reply=previous.reply_text, duplicate=True, contact_id=previous.contact_id)
    record_event(session, contact.id, "message.in", "contact", message_id=record.id, sid=message.sid)
    outcome = InboundOutcome(contact_id=contact.id)
    clear_undeliverable(session, contact, now)

    # Opt-out, opt-in and HELP come before keywords and replies, whatever the sequences say.
    answer = answer_compliance_text(session, contact, record, library, now)
    if answer is not None:
        logger.info("inbound %s from contact %s (%s) is %s", message.sid, contact.id, mask(message.from_number), answer.intent.value)
        outcome.reply = record.reply_text = answer.reply
        return outcome
    if contact.opted_out:
        logger.info("inbound %s from opted-out contact %s: no keyword or reply handling until they opt in", message.sid, contact.id)
        return outcome

    rule = library.keywords.match(message.body, message.to_number)
    if rule is not None:
        sequence = library.get(rule.sequence_name)
        assert sequence is not None
        started = start_sequence(session, contact, sequence, rule.keyword, now, "contact", library, new_contact=created)
        if started is not None:
            enrollment, send = started
            record.enrollment_id = enrollment.id
            outcome.sends.append(send)
        # Texting a keyword is the contact's consent to that sequence's texts.
        opt_in(session, contact, now, method="sms", actor="contact", keyword=rule.keyword, message_sid=message.sid)
        logger.info("inbound %s from contact %s (%s) matched keyword %s", message.sid, contact.id, mask(message.from_number), rule.keyword)
        # A contact created by this text is in no sequence but the one it just started.
        enrolled: set[str] | None = None
        if created:
            enrolled = {sequence.name} if started is not None else set()
        note_keyword(session, contact, rule.keyword, now, library, enrolled=enrolled)
    elif (confirmed := confirm_double_opt_in(session, contact, record, library, now)) is not None:
        outcome.sends.extend(confirmed)
    else:
        replied = handle_reply(session, contact, record, library, now)
        outcome.reply = replied.reply
        outcome.sends.extend(replied.sends)
        note_reply(session, contact, message.body, now, library)

    record.reply_text = outcome.reply
    return outcome


def _find_inbound(session: Session, sid: str) -> Message | None:
    return session.scalar(select(Message).where(Message.sid == sid, Message.direction == Direction.INBOUND.value))
