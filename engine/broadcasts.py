"""Broadcasts: one text to a segment, as one scheduled send per contact on the usual outbound path."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from engine.audiences import Audience, Segment, select_audience
from engine.models import Broadcast, Contact, ScheduledSend, SendKind, SendStatus
from engine.outbound import template_fields
from engine.send_times import window_due_at
from engine.templates import TemplateError, render
from engine.timeline import record_event

logger = logging.getLogger(__name__)

MAX_TEXT_CHARS = 1600  # Twilio's limit for one message body


@dataclass
class BroadcastPlan:
    segment: Segment
    text: str
    audience: Audience
    bodies: dict[int, str] = field(default_factory=dict)  # contact id -> rendered text
    problems: list[str] = field(default_factory=list)  # why the broadcast cannot go out as written

    @property
    def recipients(self) -> list[Contact]:
        return self.audience.contacts


def plan_broadcast(session: Session, segment: Segment, text: str) -> BroadcastPlan:
    """Select the audience and render the text for each contact, listing every problem instead of sending."""
    plan = BroadcastPlan(segment=segment, text=text, audience=select_audience(session, segment))
    if not text.strip():
        plan.problems.append("the text is empty: give the message to send")
        return plan
    failures: Counter[str] = Counter()
    for contact in plan.recipients:
        try:
            body = render(text, template_fields(contact, None))
        except TemplateError as error:
            failures[str(error)] += 1
            continue
        if len(body) > MAX_TEXT_CHARS:
            failures[f"the text has more than {MAX_TEXT_CHARS} characters once filled in: shorten it"] += 1
            continue
        plan.bodies[contact.id] = body
    plan.problems.extend(f"{message} ({count} of {len(plan.recipients)} contacts)" for message, count in failures.items())
    return plan


def create_broadcast(session: Session, plan: BroadcastPlan, actor: str, now: datetime) -> tuple[Broadcast, list[ScheduledSend]]:
    """Write the broadcast and one pending send per recipient, each due when its send window opens."""
    if plan.problems:
        raise ValueError("a broadcast plan with problems cannot be sent: " + "; ".join(plan.problems))
    broadcast = Broadcast(segment=plan.segment.text, text=plan.text, recipients=len(plan.recipients), created_by=actor, created_at=now)
    session.add(broadcast)
    session.flush()
    sender = f"broadcast:{broadcast.id}"
    sends = []
    for contact in plan.recipients:
        send = ScheduledSend(kind=SendKind.BROADCAST.value, contact_id=contact.id, body=plan.bodies[contact.id], actor=sender,
                             due_at=window_due_at(contact, now), status=SendStatus.PENDING.value)
        session.add(send)
        sends.append(send)
    session.flush()
    for contact, send in zip(plan.recipients, sends):
        record_event(session, contact.id, "broadcast.scheduled", actor, broadcast_id=broadcast.id, send_id=send.id)
    logger.info("broadcast %s to segment %r: %d sends scheduled by %s", broadcast.id, plan.segment.text, len(sends), actor)
    return broadcast, sends
