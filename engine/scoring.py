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
from engine.routing import lead_facts
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
    counted = {reason["rule"] for reason in contact.score_reasons or []}
    candidates = [
        rule for rule in routing.score_rules
        if rule.event == event and rule.name not in counted and (rule.keyword is None or rule.keyword == keyword)
    ]
    if not candidates:
        return 0
    facts = lead_facts(session, contact, enrolled=enrolled)
    added = [(rule, _event_reason(rule, keyword)) for rule in candidates if conditions_match(rule.conditions, facts)]
    return _apply(session, contact, added, [], now, actor)


def rescore_fields(session: Session, contact: Contact, routing: Routing, now: datetime, actor: str, enrolled: set[str] | None = None) -> int:
    """Bring field rules in line with the lead's current fields; returns the change in score (`enrolled`: see lead_facts)."""
    field_rules = [rule for rule in routing.score_rules if rule.event is None]
    if not field_rules:
        return 0
    counted = {reason["rule"] for reason in contact.score_reasons or []}
    facts = lead_facts(session, contact, enrolled=enrolled)
    added, removed = [], []
    for rule in field_rules:
        matches = conditions_match(rule.conditions, facts)
        if matches and rule.name not in counted:
            added.append((rule, " and ".join(str(condition) for condition in rule.conditions)))
        elif not matches and rule.name in counted:
            removed.append(rule.name)
    return _apply(session, contact, added, removed, now, actor)


def _event_reason(rule: ScoreRule, keyword: str | None) -> str:
    reason = f"texted keyword {keyword}" if rule.event == "keyword" else str(rule.event)
    if rule.conditions:
        reason += " while " + " and ".join(str(condition) for condition in rule.conditions)
    return reason


def _apply(
    session: Session, contact: Contact, added: list[tuple[ScoreRule, str]], removed: list[str], now: datetime, actor: str
) -> int:
    if not added and not removed:
        return 0
    reasons: list[dict[str, Any]] = [reason for reason in contact.score_reasons or [] if reason["rule"] not in removed]
    reasons.extend({"rule": rule.name, "points": rule.points, "reason": text, "at": now.isoformat()} for rule, text in added)
    before = contact.score or 0
    # A new list, because SQLAlchemy does not see changes made inside a JSON value.
    contact.score_reasons = reasons
    contact.score = sum(int(reason["points"]) for reason in reasons)
    delta = contact.score - before
    record_event(session, contact.id, "score.changed", actor, score=contact.score, change=delta,
                 added=[rule.name for rule, _text in added], removed=removed)
    logger.info("contact %s score %d -> %d (added %s, removed %s)", contact.id, before, contact.score,
                [rule.name for rule, _text in added], removed)
    return delta
