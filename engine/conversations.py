"""A rep replying to a lead: the text goes through the same scheduled-send path as every other text."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.orm import Session

from engine.assignment import UnknownRep
from engine.library import SequenceLibrary
from engine.lifecycle import end_live_enrollments, note_contacted
from engine.machine import EndReason
from engine.models import Contact, ScheduledSend, SendKind, SendStatus
from engine.routing_rules import Routing

logger = logging.getLogger(__name__)

MAX_TEXT_CHARS = 1600  # Twilio's limit for one message body


class ContactOptedOut(RuntimeError):
    """The contact opted out, so nothing may be texted to them."""


class InvalidMessage(ValueError):
    """A rep message that is empty, too long, or from an unknown rep; `field` names what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


def send_rep_message(
    session: Session, contact: Contact, text: str, rep: str, now: datetime, library: SequenceLibrary, routing: Routing
) -> ScheduledSend:
    """Schedule a rep's text to the lead for now and stop the lead's sequences, as a reply from the lead would.

    The send carries the actor `rep:<name>`, so the timeline and reports tell it from automated texts.
    It goes out at once, because a rep replying to a lead holds a conversation, not a campaign, so
    the send window does not apply. The worker checks opt-out again just before sending.
    """
    if not text or not text.strip():
        raise InvalidMessage("text", "is missing: give the message to send")
    if len(text) > MAX_TEXT_CHARS:
        raise InvalidMessage("text", f"has {len(text)} characters; the most one message can carry is {MAX_TEXT_CHARS}")
    if not rep or not rep.strip():
        raise InvalidMessage("rep", "is missing: give the name of the rep who writes")
    if routing.reps and rep not in routing.reps:
        raise InvalidMessage("rep", str(UnknownRep(f"{rep!r} is not a rep: use one of {', '.join(routing.reps)}")))
    if contact.opted_out:
        raise ContactOptedOut(f"contact {contact.id} opted out; they must text START before anyone can text them")

    actor = f"rep:{rep}"
    send = ScheduledSend(kind=SendKind.MANUAL.value, contact_id=contact.id, body=text, actor=actor, due_at=now,
                         status=SendStatus.PENDING.value)
    session.add(send)
    session.flush()
    ended = end_live_enrollments(session, contact.id, library, EndReason.REPLIED, now, actor)
    note_contacted(session, contact, now, actor, library)
    logger.info("send %s: rep %s replies to contact %s (%d sequences stopped)", send.id, rep, contact.id, ended)
    return send
