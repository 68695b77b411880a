"""The funnel report per sequence: how many leads were enrolled, reached each step, replied, qualified,
converted, opted out or were undeliverable, the delivery rate, and the time to a person's first response.
"""

from __future__ import annotations

import logging
import statistics
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, select, true
from sqlalchemy.orm import Session

from engine.library import SequenceLibrary
from engine.machine import EndReason
from engine.models import Contact, Direction, Enrollment, Event, Message, ScheduledSend

logger = logging.getLogger(__name__)

DELIVERED_STATUSES = frozenset({"delivered", "read"})
FAILED_STATUSES = frozenset({"failed", "undelivered"})
PERSON_ACTOR_PREFIX = "rep:"  # sends written by a person carry the actor rep:<name>


@dataclass
class SequenceFunnel:
    sequence: str
    enrolled: int = 0
    steps: dict[str, int] = field(default_factory=dict)  # step id -> enrollments that were sent it, in file order
    replied: int = 0
    qualified: int = 0  # reached qualified (or converted) after enrolling
    converted: int = 0
    opted_out: int = 0
    undeliverable: int = 0
    messages_sent: int = 0  # outbound texts the carrier accepted
    delivered: int = 0
    delivery_failed: int = 0  # undelivered or failed
    delivery_rate: float | None = None  # delivered / texts with a final status; None before any has one
    median_first_response_seconds: float | None = None  # first inbound text to first text by a person
    responded: int = 0  # leads a person responded to; the median is over these
    awaiting_response: int = 0  # leads who texted in and got no response from a person yet


@dataclass
class FunnelReport:
    since: datetime | None
    sequences: list[SequenceFunnel]

    def as_dict(self) -> dict[str, Any]:
        return {"since": self.since.isoformat() if self.since else None, "sequences": [asdict(funnel) for funnel in self.sequences]}


def funnel_report(session: Session, library: SequenceLibrary, since: datetime | None = None, sequence: str | None = None) -> FunnelReport:
    """Build the funnel over enrollments that started at or after `since`, for one sequence or all."""
    conditions = []
    if since is not None:
        conditions.append(Enrollment.enrolled_at >= since)
    if sequence is not None:
        conditions.append(Enrollment.sequence_name == sequence)
    scope = and_(true(), *conditions)
    enrollments = session.scalars(select(Enrollment).where(scope).order_by(Enrollment.id)).all()
    by_sequence: dict[str, list[Enrollment]] = defaultdict(list)
    for enrollment in enrollments:
        by_sequence[enrollment.sequence_name].append(enrollment)

    outbound = session.execute(
        select(Message.enrollment_id, Message.status, ScheduledSend.step_id)
        .join(Enrollment, Message.enrollment_id == Enrollment.id)
        .outerjoin(ScheduledSend, Message.send_id == ScheduledSend.id)
        .where(scope, Message.direction == Direction.OUTBOUND.value)
    ).all()
    inbound_counts: dict[int, int] = defaultdict(int)
    for (enrollment_id,) in session.execute(
        select(Message.enrollment_id).join(Enrollment, Message.enrollment_id == Enrollment.id)
        .where(scope, Message.direction == Direction.INBOUND.value)
    ):
        inbound_counts[enrollment_id] += 1
    contacts = {contact.id: contact for contact in session.scalars(
        select(Contact).where(Contact.id.in_(select(Enrollment.contact_id).where(scope))))}
    status_changes = _status_changes(session, scope)
    first_inbound, person_replies = _conversation_times(session, scope)

    funnels = []
    names = [sequence] if sequence is not None else sorted(by_sequence)
    for name in names:
        funnel = SequenceFunnel(sequence=name)
        definition = library.get(name)
        funnel.steps = {step.id: 0 for step in definition.steps} if definition is not None else {}
        members = by_sequence.get(name, [])
        member_ids = {enrollment.id for enrollment in members}
        reached: dict[str, set[int]] = defaultdict(set)
        failed_enrollments: set[int] = set()
        for enrollment_id, status, step_id in outbound:
            if enrollment_id not in member_ids:
                continue
            funnel.messages_sent += 1
            if step_id is not None:
                reached[step_id].add(enrollment_id)
            if status in DELIVERED_STATUSES:
                funnel.delivered += 1
            elif status in FAILED_STATUSES:
                funnel.delivery_failed += 1
                failed_enrollments.add(enrollment_id)
        for step_id, ids in reached.items():
            funnel.steps[step_id] = len(ids)
        known = funnel.delivered + funnel.delivery_failed
        funnel.delivery_rate = funnel.delivered / known if known else None

        response_times = []
        seen_contacts: set[int] = set()
        for enrollment in members:
            contact = contacts[enrollment.contact_id]
            funnel.enrolled += 1
            # The keyword text that started the enrollment is linked to it but is no reply.
            replies = inbound_counts.get(enrollment.id, 0) - (1 if enrollment.keyword else 0)
            funnel.replied += replies > 0 or enrollment.state == EndReason.REPLIED.value
            reached_statuses = {status for status, at in status_changes.get(contact.id, []) if at >= enrollment.enrolled_at}
            converted = "converted" in reached_statuses or enrollment.state == EndReason.CONVERTED.value
            funnel.converted += converted
            funnel.qualified += converted or "qualified" in reached_statuses
            funnel.opted_out += enrollment.state == EndReason.OPTED_OUT.value or (
                contact.opted_out_at is not None and contact.opted_out_at >= enrollment.enrolled_at)
            funnel.undeliverable += enrollment.state == EndReason.UNDELIVERABLE.value or enrollment.id in failed_enrollments
            if contact.id in seen_contacts or contact.id not in first_inbound:
                continue
            seen_contacts.add(contact.id)
            response = next((at for at in person_replies.get(contact.id, []) if at >= first_inbound[contact.id]), None)
            if response is None:
                funnel.awaiting_response += 1
            else:
                response_times.append((response - first_inbound[contact.id]).total_seconds())
        funnel.responded = len(response_times)
        funnel.median_first_response_seconds = statistics.median(response_times) if response_times else None
        funnels.append(funnel)
    return FunnelReport(since=since, sequences=funnels)


def _status_changes(session: Session, scope: Any) -> dict[int, list[tuple[str, datetime]]]:
    """Return each in-scope contact's status changes as (new status, time)."""
    changes: dict[int, list[tuple[str, datetime]]] = defaultdict(list)
    for contact_id, data, at in session.execute(
        select(Event.contact_id, Event.data, Event.created_at)
        .where(Event.kind == "status.changed", Event.contact_id.in_(select(Enrollment.contact_id).where(scope)))
    ):
        changes[contact_id].append((str(data.get("status")), at))
    return changes


def _conversation_times(session: Session, scope: Any) -> tuple[dict[int, datetime], dict[int, list[datetime]]]:
    """Return each in-scope contact's first inbound text time, and the times of texts people sent them, in order."""
    in_scope = select(Enrollment.contact_id).where(scope)
    first_inbound: dict[int, datetime] = {}
    for contact_id, at in session.execute(
        select(Message.contact_id, Message.created_at)
        .where(Message.direction == Direction.INBOUND.value, Message.contact_id.in_(in_scope))
        .order_by(Message.created_at)
    ):
        first_inbound.setdefault(contact_id, at)
    person_replies: dict[int, list[datetime]] = defaultdict(list)
    for contact_id, at in session.execute(
        select(Message.contact_id, Message.created_at)
        .join(ScheduledSend, Message.send_id == ScheduledSend.id)
        .where(Message.direction == Direction.OUTBOUND.value, ScheduledSend.actor.startswith(PERSON_ACTOR_PREFIX),
               Message.contact_id.in_(in_scope))
        .order_by(Message.created_at)
    ):
        person_replies[contact_id].append(at)
    return first_inbound, person_replies


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def format_report(report: FunnelReport) -> str:
    """Render the report as aligned text, one block per sequence."""
    lines = [f"Funnel {'since ' + report.since.date().isoformat() if report.since else 'over all time'}"]
    if not report.sequences:
        lines.append("no enrollments in this period")
    for funnel in report.sequences:
        lines.append("")
        lines.append(funnel.sequence)
        rows: list[tuple[str, str]] = [("enrolled", f"{funnel.enrolled:>5}")]
        rows.extend((f"step {step}", _count(count, funnel.enrolled)) for step, count in funnel.steps.items())
        rows += [
            ("replied", _count(funnel.replied, funnel.enrolled)),
            ("qualified", _count(funnel.qualified, funnel.enrolled)),
            ("converted", _count(funnel.converted, funnel.enrolled)),
            ("opted out", _count(funnel.opted_out, funnel.enrolled)),
            ("undeliverable", _count(funnel.undeliverable, funnel.enrolled)),
        ]
        pending = funnel.messages_sent - funnel.delivered - funnel.delivery_failed
        rate = f"{funnel.delivery_rate:.1%}" if funnel.delivery_rate is not None else "n/a"
        rows.append(("delivery rate", f"{rate} ({funnel.delivered} delivered, {funnel.delivery_failed} failed, "
                                      f"{pending} without a final status, of {funnel.messages_sent} sent)"))
        rows.append(("first response by a person", f"median {format_duration(funnel.median_first_response_seconds)} "
                                                   f"over {funnel.responded} {'lead' if funnel.responded == 1 else 'leads'} "
                                                   f"({funnel.awaiting_response} still waiting for a person's first response)"))
        width = max(len(label) for label, _ in rows)
        lines.extend(f"  {label:<{width}}  {value}" for label, value in rows)
    return "\n".join(lines)


def _count(count: int, total: int) -> str:
    return f"{count:>5}  ({count / total:.0%})" if total else f"{count:>5}"
