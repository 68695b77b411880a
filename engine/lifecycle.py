"""Lead changes: status moves and their effects, replies, keywords and score thresholds.

Every status change goes through engine.lead_status, so an invalid move raises InvalidStatusMove
wherever it comes from (API, sequences, replies). Effects: `converted` and `lost` end every live
enrollment with that reason, and `qualified` assigns an owner.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.assignment import Assignment, assign_lead
from engine.config import get_settings
from engine.enrollment import end_enrollment, enroll
from engine.keywords import normalise
from engine.lead_status import InvalidStatusMove, LeadStatus, allowed_moves, move, parse_status
from engine.library import SequenceLibrary
from engine.machine import EndReason
from engine.models import Contact, Enrollment, ScheduledSend
from engine.reserved_words import RESERVED_REPLY_WORDS
from engine.routing import get_routing
from engine.routing_rules import Routing
from engine.scoring import score_event
from engine.sequences import Sequence
from engine.timeline import record_event

logger = logging.getLogger(__name__)

ENDING_STATUSES = {LeadStatus.CONVERTED: EndReason.CONVERTED, LeadStatus.LOST: EndReason.LOST}


def current_routing() -> Routing:
    """Return the routing of SMSDRIP_ROUTING (or ./routing.yaml), reloaded when the file changes."""
    return get_routing(get_settings().routing_file)


def change_status(
    session: Session, contact: Contact, status: LeadStatus | str, now: datetime, actor: str,
    library: SequenceLibrary, routing: Routing | None = None,
) -> bool:
    """Move the lead to `status` and apply its effects; False when it already had that status.

    Raises UnknownStatus for a value that is no status and InvalidStatusMove for a move the machine forbids.
    """
    requested = status if isinstance(status, LeadStatus) else parse_status(status)
    previous = contact.status
    if not move(contact, requested):
        return False
    record_event(session, contact.id, "status.changed", actor, previous=previous, status=contact.status)
    logger.info("contact %s status %s -> %s by %s", contact.id, previous, contact.status, actor)

    if requested in ENDING_STATUSES:
        end_live_enrollments(session, contact.id, library, ENDING_STATUSES[requested], now, actor)
    if requested is LeadStatus.QUALIFIED:
        assign_lead(session, contact, routing or current_routing(), now, actor, trigger="qualified")
    return True


def start_sequence(
    session: Session, contact: Contact, sequence: Sequence, keyword: str | None, now: datetime, actor: str,
    library: SequenceLibrary, new_contact: bool = False,
) -> tuple[Enrollment, ScheduledSend] | None:
    """Enroll the contact and apply the sequence's `lead.status`; None when nothing started (see engine.enrollment.enroll)."""
    started = enroll(session, contact, sequence, keyword, now, actor=actor, new_contact=new_contact)
    if started is not None and sequence.lead_status is not None:
        try:
            change_status(session, contact, sequence.lead_status, now, actor, library)
        except InvalidStatusMove as error:
            # The enrollment goes ahead, and the status stays as it was.
            logger.warning("contact %s enrolled in %s keeps status %s: %s", contact.id, sequence.name, contact.status, error)
    return started


def end_live_enrollments(session: Session, contact_id: int, library: SequenceLibrary, reason: EndReason, now: datetime, actor: str) -> int:
    """End every live enrollment of the contact with `reason`; returns how many ended."""
    live = session.scalars(select(Enrollment).where(Enrollment.contact_id == contact_id, Enrollment.ended_at.is_(None))).all()
    for enrollment in live:
        end_enrollment(session, enrollment, library.get(enrollment.sequence_name), reason, now, actor=actor)
    return len(live)


def note_contacted(session: Session, contact: Contact, now: datetime, actor: str, library: SequenceLibrary) -> None:
    """Move a `new` lead to `contacted` once something was texted to it."""
    if contact.status == LeadStatus.NEW.value:
        change_status(session, contact, LeadStatus.CONTACTED, now, actor, library)


def note_reply(session: Session, contact: Contact, body: str, now: datetime, library: SequenceLibrary) -> None:
    """Act on an inbound text that is neither a keyword nor a carrier word: the lead is engaged and scores."""
    if contact.opted_out or normalise(body) in RESERVED_REPLY_WORDS:
        return
    routing = current_routing()
    if contact.status in (LeadStatus.NEW.value, LeadStatus.CONTACTED.value):
        change_status(session, contact, LeadStatus.ENGAGED, now, "contact", library, routing)
    score_event(session, contact, routing, "replied", now, "contact")
    qualify_by_score(session, contact, routing, now, "contact", library)


def note_keyword(
    session: Session, contact: Contact, keyword: str, now: datetime, library: SequenceLibrary, enrolled: set[str] | None = None
) -> None:
    """Score a keyword the lead texted (`enrolled`: the lead's sequences when the caller knows them, see lead_facts)."""
    routing = current_routing()
    score_event(session, contact, routing, "keyword", now, "contact", keyword=keyword, enrolled=enrolled)
    qualify_by_score(session, contact, routing, now, "contact", library)


def qualify_by_score(session: Session, contact: Contact, routing: Routing, now: datetime, actor: str, library: SequenceLibrary) -> None:
    """Qualify (and so assign) a lead whose score reached routing's `assign_at`; assign it directly if it cannot be qualified."""
    threshold = routing.assign_at_score
    if threshold is None or contact.score < threshold or contact.owner is not None:
        return
    if LeadStatus.QUALIFIED.value in allowed_moves(contact.status):
        change_status(session, contact, LeadStatus.QUALIFIED, now, actor, library, routing)
    else:
        assign_lead(session, contact, routing, now, actor, trigger="score")


def assign_by_action(session: Session, contact: Contact, now: datetime, actor: str, routing: Routing | None = None) -> Assignment | None:
    """Assign an owner because a sequence's reply action sets `assign: true`; None when already owned or no rep is free."""
    return assign_lead(session, contact, routing or current_routing(), now, actor, trigger="reply_action")
