"""Lead scores: points from routing.yaml's scoring rules, each rule counted at most once per lead.

Event rules (`on: replied`, `keyword`, `captured`) count the first time their event happens while
their conditions hold. Field rules (only `when:`) follow the lead's current fields: they count while
the fields match and drop out when they stop matching. The reasons are stored on the contact.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from engine.models import Contact
from engine.routing import contact_facts, lead_facts
from engine.routing_rules import Routing, ScoreRule, conditions_match
from engine.timeline import record_event

logger = logging.getLogger(__name__)


def score_event(
    session: Session, contact: Contact, routing: Routing, event: str, now: datetime, actor: str, keyword: str | None = None,
    enrolled: set[str] | None = None,
) -> int:
    """Count the event rules that `event` (with `keyword` for keyword events) triggers; returns the change in score.

    `enrolled` gives the sequences the lead was ever enrolled in when the caller knows them (see lead_facts).
    """
    candidates = _event_candidates(contact, routing, event, keyword)
    if not candidates:
        return 0
    facts = lead_facts(session, contact, enrolled=enrolled)
    return _apply(session, contact, _event_matches(candidates, facts, keyword), [], now, actor)


def rescore_fields(session: Session, contact: Contact, routing: Routing, now: datetime, actor: str, enrolled: set[str] | None = None) -> int:
    """Bring field rules in line with the lead's current fields; returns the change in score (`enrolled`: see lead_facts)."""
    if not any(rule.event is None for rule in routing.score_rules):
        return 0
    added, removed = _field_changes(contact, routing, lead_facts(session, contact, enrolled=enrolled))
    return _apply(session, contact, added, removed, now, actor)


def score_new_lead(contact: Contact, routing: Routing, now: datetime) -> list[dict[str, Any]]:
    """Score a lead created now and never enrolled as capture_lead does (`captured` rules, then field rules), without a session.

    Updates the contact's score and reasons, and returns the data of each score.changed event to record.
    """
    changes = []
    candidates = _event_candidates(contact, routing, "captured", None)
    if candidates:
        changes.append(apply_score(contact, _event_matches(candidates, contact_facts(contact, set()), None), [], now))
    if any(rule.event is None for rule in routing.score_rules):
        added, removed = _field_changes(contact, routing, contact_facts(contact, set()))
        changes.append(apply_score(contact, added, removed, now))
    return [change for change in changes if change is not None]


def _event_candidates(contact: Contact, routing: Routing, event: str, keyword: str | None) -> list[ScoreRule]:
    counted = {reason["rule"] for reason in contact.score_reasons or []}
    return [
        rule for rule in routing.score_rules
        if rule.event == event and rule.name not in counted and (rule.keyword is None or rule.keyword == keyword)
    ]


def _event_matches(candidates: list[ScoreRule], facts: dict[str, Any], keyword: str | None) -> list[tuple[ScoreRule, str]]:
    return [(rule, _event_reason(rule, keyword)) for rule in candidates if conditions_match(rule.conditions, facts)]


def _field_changes(contact: Contact, routing: Routing, facts: dict[str, Any]) -> tuple[list[tuple[ScoreRule, str]], list[str]]:
    """Return the field rules that now match and were not counted, and the counted ones that no longer match."""
    counted = {reason["rule"] for reason in contact.score_reasons or []}
    added, removed = [], []
    for rule in routing.score_rules:
        if rule.event is not None:
            continue
        matches = conditions_match(rule.conditions, facts)
        if matches and rule.name not in counted:
            added.append((rule, " and ".join(str(condition) for condition in rule.conditions)))
        elif not matches and rule.name in counted:
            removed.append(rule.name)
    return added, removed


def _event_reason(rule: ScoreRule, keyword: str | None) -> str:
    reason = f"texted keyword {keyword}" if rule.event == "keyword" else str(rule.event)
    if rule.conditions:
        reason += " while " + " and ".join(str(condition) for condition in rule.conditions)
    return reason


def _apply(
    session: Session, contact: Contact, added: list[tuple[ScoreRule, str]], removed: list[str], now: datetime, actor: str
) -> int:
    before = contact.score or 0
    change = apply_score(contact, added, removed, now)
    if change is None:
        return 0
    record_event(session, contact.id, "score.changed", actor, **change)
    logger.info("contact %s score %d -> %d (added %s, removed %s)", contact.id, before, contact.score, change["added"], removed)
    return int(change["change"])


def apply_score(contact: Contact, added: list[tuple[ScoreRule, str]], removed: list[str], now: datetime) -> dict[str, Any] | None:
    """Add and remove score reasons on the contact; returns the score.changed event data, or None when nothing changed."""
    if not added and not removed:
        return None
    reasons: list[dict[str, Any]] = [reason for reason in contact.score_reasons or [] if reason["rule"] not in removed]
    reasons.extend({"rule": rule.name, "points": rule.points, "reason": text, "at": now.isoformat()} for rule, text in added)
    before = contact.score or 0
    # A new list, because SQLAlchemy does not see changes made inside a JSON value.
    contact.score_reasons = reasons
    contact.score = sum(int(reason["points"]) for reason in reasons)
    return {"score": contact.score, "change": contact.score - before, "added": [rule.name for rule, _text in added], "removed": removed}
