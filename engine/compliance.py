"""Opt-out, opt-in and HELP: the carrier rules for what a contact texts, and the consent records that prove them.

A contact who opted out is sent nothing but the answer to HELP. The check sits in the worker at send
time (see engine.outbound), so sends scheduled before the opt-out never go out.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.config import Settings, get_settings
from engine.enrollment import cancel_pending_sends, end_enrollment
from engine.keywords import normalise
from engine.library import SequenceLibrary
from engine.machine import EndReason
from engine.models import ConsentAction, ConsentRecord, Contact, Direction, Enrollment, Message, ScheduledSend
from engine.reserved_words import HELP_WORDS, OPT_IN_WHEN_OPTED_OUT, OPT_IN_WORDS, OPT_OUT_IN_SENTENCE_WORDS, OPT_OUT_WORDS
from engine.timeline import record_event

logger = logging.getLogger(__name__)

# A message of at most this many words that contains an in-sentence opt-out word withdraws consent
# ("please stop texting me"). Longer messages are conversation a person should read.
MAX_SENTENCE_WORDS = 6


class ComplianceIntent(str, enum.Enum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"


@dataclass(frozen=True)
class ComplianceMatch:
    intent: ComplianceIntent
    word: str  # the normalised reserved word that matched, such as STOP or OPT OUT


def classify(body: str, opted_out: bool) -> ComplianceMatch | None:
    """Return what a text means under the carrier rules, or None when it is no opt-out, opt-in or help request.

    The whole normalised body must equal a reserved word, except that STOP, UNSUBSCRIBE, REVOKE and
    OPT OUT also count inside a short message. YES opts in only a contact who is opted out.
    """
    text = normalise(body)
    if text in OPT_OUT_WORDS:
        return ComplianceMatch(ComplianceIntent.OPT_OUT, text)
    if text in OPT_IN_WORDS or (opted_out and text in OPT_IN_WHEN_OPTED_OUT):
        return ComplianceMatch(ComplianceIntent.OPT_IN, text)
    if text in HELP_WORDS:
        return ComplianceMatch(ComplianceIntent.HELP, text)

    words = text.split()
    if len(words) <= MAX_SENTENCE_WORDS:
        # Pad with spaces so "OPT OUT" matches as whole words and "STOPPED" does not match STOP.
        padded = f" {text} "
        for word in sorted(OPT_OUT_IN_SENTENCE_WORDS):
            if f" {word} " in padded:
                return ComplianceMatch(ComplianceIntent.OPT_OUT, word)
    return None


def opt_out_confirmation(settings: Settings) -> str:
    return f"{settings.brand_name}: You are unsubscribed and will receive no more messages from us. Reply START to resubscribe."


def opt_in_confirmation(settings: Settings) -> str:
    return (
        f"{settings.brand_name}: You are resubscribed and will receive messages again. "
        "Msg & data rates may apply. Reply HELP for help, STOP to opt out."
    )


def help_answer(settings: Settings) -> str:
    if settings.help_text:
        return settings.help_text
    return f"{settings.brand_name}: For help, {settings.help_contact}. Msg & data rates may apply. Reply STOP to opt out."


def send_blocker(contact: Contact) -> str | None:
    """Return why nothing may be sent to the contact ("opted out", "undeliverable"), or None when texts may go."""
    if contact.opted_out:
        return "opted out"
    if contact.undeliverable:
        return "undeliverable"
    return None


def record_consent(
    session: Session, contact_id: int, action: ConsentAction, method: str, now: datetime,
    keyword: str | None = None, message_sid: str | None = None, source: str | None = None,
) -> ConsentRecord:
    """Add a consent record in the caller's transaction."""
    record = ConsentRecord(
        contact_id=contact_id, action=action.value, method=method, keyword=keyword, message_sid=message_sid, source=source,
        created_at=now,
    )
    session.add(record)
    return record


def stop_all_texts(session: Session, contact_id: int, library: SequenceLibrary, reason: EndReason, now: datetime, actor: str) -> int:
    """End every live enrollment of the contact with `reason` and cancel all its pending sends; returns how many were cancelled."""
    live = session.scalars(select(Enrollment).where(Enrollment.contact_id == contact_id, Enrollment.ended_at.is_(None))).all()
    cancelled = 0
    for enrollment in live:
        cancelled += end_enrollment(session, enrollment, library.get(enrollment.sequence_name), reason, now, actor=actor)
    # Manual and broadcast sends belong to no enrollment.
    cancelled += cancel_pending_sends(session, ScheduledSend.contact_id == contact_id, f"contact {reason.value}")
    return cancelled


def opt_out(
    session: Session, contact: Contact, library: SequenceLibrary, now: datetime, method: str, actor: str,
    keyword: str | None = None, message_sid: str | None = None, source: str | None = None,
) -> bool:
    """Mark the contact opted out, end its sequences and cancel its pending sends; returns False if it already was.

    A repeated opt-out still ends anything started since (an API enrollment), but leaves the first
    opt-out's time and source and adds no consent record.
    """
    already = contact.opted_out
    if not already:
        contact.opted_out_at = now
        contact.opt_out_source = _source(method, keyword, source)
        record_consent(session, contact.id, ConsentAction.OPT_OUT, method, now, keyword=keyword, message_sid=message_sid, source=source)
        record_event(session, contact.id, "contact.opted_out", actor, source=contact.opt_out_source, sid=message_sid)
    cancelled = stop_all_texts(session, contact.id, library, EndReason.OPTED_OUT, now, actor)
    logger.info(
        "contact %s %s (%s); %d pending sends cancelled",
        contact.id, "was already opted out" if already else "opted out", _source(method, keyword, source), cancelled,
    )
    return not already


def opt_in(
    session: Session, contact: Contact, now: datetime, method: str, actor: str,
    keyword: str | None = None, message_sid: str | None = None, source: str | None = None,
) -> bool:
    """Record an opt-in (START, a keyword, an API call); returns whether the contact was opted out before.

    No sequence restarts by itself: the contact texts a keyword again, or a person enrolls it.
    """
    was_opted_out = contact.opted_out
    contact.opted_out_at = None
    contact.opted_in_at = now
    contact.opt_in_source = _source(method, keyword, source)
    record_consent(session, contact.id, ConsentAction.OPT_IN, method, now, keyword=keyword, message_sid=message_sid, source=source)
    if was_opted_out:
        record_event(session, contact.id, "contact.opted_in", actor, source=contact.opt_in_source, sid=message_sid)
        logger.info("contact %s opted in again (%s)", contact.id, contact.opt_in_source)
    return was_opted_out


def _source(method: str, keyword: str | None, source: str | None) -> str:
    return f"{method}:{keyword or source or '?'}"[:100]


@dataclass(frozen=True)
class ComplianceAnswer:
    intent: ComplianceIntent
    reply: str | None  # inline answer; None when the carrier confirms (SMSDRIP_OPT_OUT_REPLIES=carrier) or nothing is due


def answer_compliance_text(
    session: Session, contact: Contact, inbound: Message, library: SequenceLibrary, now: datetime, settings: Settings | None = None
) -> ComplianceAnswer | None:
    """Act on an opt-out, opt-in or help text; returns None for any other text, which goes on to keyword matching."""
    match = classify(inbound.body, contact.opted_out)
    if match is None:
        return None
    settings = settings or get_settings()
    engine_confirms = settings.opt_out_replies == "engine"

    reply: str | None = None
    if match.intent is ComplianceIntent.OPT_OUT:
        changed = opt_out(session, contact, library, now, method="sms", actor="contact", keyword=match.word, message_sid=inbound.sid)
        # One confirmation per opt-out: a repeated STOP from an opted-out contact gets no answer.
        if changed and engine_confirms:
            reply = opt_out_confirmation(settings)
    elif match.intent is ComplianceIntent.OPT_IN:
        opt_in(session, contact, now, method="sms", actor="contact", keyword=match.word, message_sid=inbound.sid)
        if engine_confirms:
            reply = opt_in_confirmation(settings)
    else:
        # HELP is answered at any hour and to opted-out contacts too, in both reply modes.
        reply = help_answer(settings)
        logger.info("inbound %s from contact %s asked for help", inbound.sid, contact.id)

    if reply is not None:
        record_inline_reply(session, contact.id, inbound, reply)
    return ComplianceAnswer(match.intent, reply)


def record_inline_reply(session: Session, contact_id: int, inbound: Message, reply: str) -> Message:
    """Put an answer sent inline as TwiML on the contact's timeline; the carrier gives it no MessageSid we learn."""
    message = Message(
        contact_id=contact_id,
        direction=Direction.OUTBOUND.value,
        sid=None,
        from_number=inbound.to_number,
        to_number=inbound.from_number,
        body=reply,
        status=None,
    )
    session.add(message)
    session.flush()
    record_event(session, contact_id, "message.out", "engine", message_id=message.id, in_reply_to=inbound.sid, via="twiml")
    return message
