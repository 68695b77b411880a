"""Assigning a lead to an owner: a named rep, or a pool's next rep by round robin or least load.

A pool's rotation lives in the database (`round_robin_cursors`): each assignment bumps the pool's
counter with one atomic UPDATE ... RETURNING, which also makes concurrent assignments in the same
pool wait for each other until commit. So rotation is fair across processes and survives restarts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from engine.lead_status import LeadStatus
from engine.models import Contact, RepNotification, RoundRobinCursor
from engine.phones import mask
from engine.routing import lead_facts
from engine.routing_rules import LEAST_LOADED, Pool, Rep, Routing
from engine.timeline import record_event

logger = logging.getLogger(__name__)

# Leads in these statuses no longer count against a rep's capacity or load.
CLOSED_STATUSES = (LeadStatus.CONVERTED.value, LeadStatus.LOST.value)
# Session.info key listing notification ids created in the current transaction, for enqueueing after commit.
PENDING_NOTIFICATIONS = "smsdrip.pending_notifications"


class UnknownRep(ValueError):
    """A rep name that routing.yaml does not list."""


@dataclass
class Assignment:
    rep: str
    rule: str | None  # routing rule that chose the rep; None when a person named the rep
    pool: str | None = None
    position: int | None = None  # the pool's counter value this assignment took
    notifications: list[RepNotification] = field(default_factory=list)


def assign_lead(
    session: Session, contact: Contact, routing: Routing, now: datetime, actor: str, trigger: str, rep_name: str | None = None
) -> Assignment | None:
    """Give the lead an owner and notify them; None when it already has one or no rule finds an available rep.

    `rep_name` assigns to that rep directly, even when the lead has an owner. Without it, the first
    matching routing rule whose rep or pool has an active rep with room decides.
    """
    if rep_name is not None:
        rep = routing.reps.get(rep_name)
        if rep is None:
            known = ", ".join(routing.reps) or "none (routing.yaml lists no reps)"
            raise UnknownRep(f"{rep_name!r} is not a rep: use one of {known}")
        return _assign(session, contact, rep, Assignment(rep=rep.name, rule=None), routing, now, actor, trigger)

    if contact.owner is not None:
        return None
    facts = lead_facts(session, contact)
    for rule in routing.rules_for_assignment(facts):
        if rule.rep is not None:
            rep = routing.reps[rule.rep]
            if _has_room(session, rep):
                return _assign(session, contact, rep, Assignment(rep=rep.name, rule=rule.name), routing, now, actor, trigger)
            logger.info("contact %s: rule %s names rep %s, who is inactive or full; trying the next rule", contact.id, rule.name, rep.name)
            continue
        assert rule.pool is not None
        picked = _pick_from_pool(session, routing, routing.pools[rule.pool])
        if picked is not None:
            rep, position = picked
            assignment = Assignment(rep=rep.name, rule=rule.name, pool=rule.pool, position=position)
            return _assign(session, contact, rep, assignment, routing, now, actor, trigger)
        logger.info("contact %s: pool %s has no active rep with room; trying the next rule", contact.id, rule.pool)
    record_event(session, contact.id, "assignment.skipped", actor, trigger=trigger, reason="no matching rule with an available rep")
    logger.warning("contact %s not assigned (%s): no routing rule matched with an available rep", contact.id, trigger)
    return None


def open_leads(session: Session, rep: str) -> int:
    """Count the rep's leads that are neither converted nor lost."""
    return int(session.scalar(
        select(func.count(Contact.id)).where(Contact.owner == rep, Contact.status.not_in(CLOSED_STATUSES))
    ) or 0)


def _has_room(session: Session, rep: Rep) -> bool:
    return rep.active and (rep.capacity is None or open_leads(session, rep.name) < rep.capacity)


def next_position(session: Session, pool: str) -> int:
    """Bump the pool's counter and return its new value (1 for the first assignment), atomically.

    The row is created on first use with INSERT ... ON CONFLICT DO NOTHING, so two processes
    starting a new pool at once both succeed. The UPDATE keeps the row locked until the transaction ends.
    """
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(insert(RoundRobinCursor).values(pool=pool, position=0).on_conflict_do_nothing(index_elements=["pool"]))
    return int(session.execute(
        update(RoundRobinCursor)
        .where(RoundRobinCursor.pool == pool)
        .values(position=RoundRobinCursor.position + 1)
        .returning(RoundRobinCursor.position)
    ).scalar_one())


def _pick_from_pool(session: Session, routing: Routing, pool: Pool) -> tuple[Rep, int] | None:
    # The counter is bumped first for both strategies: its row lock serialises the pool's assignments,
    # so least_loaded counts loads that no concurrent assignment is about to change.
    position = next_position(session, pool.name)
    available = [routing.reps[name] for name in pool.reps if _has_room(session, routing.reps[name])]
    if not available:
        return None
    if pool.strategy == LEAST_LOADED:
        loads = {rep.name: open_leads(session, rep.name) for rep in available}
        lowest = min(loads.values())
        available = [rep for rep in available if loads[rep.name] == lowest]
    # Round robin over the reps that can take a lead now; for least_loaded this rotates among equals.
    return available[(position - 1) % len(available)], position


def _assign(
    session: Session, contact: Contact, rep: Rep, assignment: Assignment, routing: Routing, now: datetime, actor: str, trigger: str
) -> Assignment:
    previous = contact.owner
    contact.owner, contact.assigned_at = rep.name, now
    record_event(session, contact.id, "contact.assigned", actor, owner=rep.name, previous=previous, trigger=trigger,
                 rule=assignment.rule, pool=assignment.pool, position=assignment.position)
    logger.info("contact %s assigned to %s (%s, rule %s, pool %s, position %s)", contact.id, rep.name, trigger,
                assignment.rule, assignment.pool, assignment.position)
    assignment.notifications = _notify(session, contact, rep, routing, trigger, now)
    return assignment


def _notify(session: Session, contact: Contact, rep: Rep, routing: Routing, trigger: str, now: datetime) -> list[RepNotification]:
    """Create the rep's notification rows; workers.notifications delivers them once the transaction commits."""
    notifications = []
    if routing.notify_text and rep.phone:
        name = " ".join(part for part in (contact.first_name, contact.last_name) if part) or "A lead"
        company = f" ({contact.company})" if contact.company else ""
        text = f"smsdrip: {name}{company} at {contact.phone} is now yours: status {contact.status}, score {contact.score}."
        notifications.append(RepNotification(contact_id=contact.id, rep=rep.name, channel="text", target=rep.phone,
                                             payload={"text": text}))
    webhook = rep.webhook or routing.notify_webhook
    if webhook:
        notifications.append(RepNotification(contact_id=contact.id, rep=rep.name, channel="webhook", target=webhook,
                                             payload=_webhook_payload(contact, rep, trigger, now)))
    for notification in notifications:
        session.add(notification)
    session.flush()
    pending = session.info.setdefault(PENDING_NOTIFICATIONS, [])
    pending.extend(notification.id for notification in notifications)
    for notification in notifications:
        logger.info("notification %s for rep %s about contact %s by %s to %s", notification.id, rep.name, contact.id,
                    notification.channel, mask(notification.target) if notification.channel == "text" else notification.target)
    return notifications


def _webhook_payload(contact: Contact, rep: Rep, trigger: str, now: datetime) -> dict[str, Any]:
    return {
        "event": "lead.assigned",
        "assigned_at": now.isoformat(),
        "trigger": trigger,
        "rep": {"name": rep.name, "email": rep.email, "phone": rep.phone},
        "contact": {
            "id": contact.id,
            **contact.standard_fields(),
            "source": contact.source,
            "status": contact.status,
            "score": contact.score,
            "fields": contact.fields or {},
        },
    }
