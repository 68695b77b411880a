"""Broadcast segments: `status=nurturing,tag=webinar` selects the contacts a broadcast goes to.

A segment is a comma-separated list of conditions that must all hold. Each is `field=value`
(`|` separates alternatives: `status=engaged|nurturing`), `field!=value`, or a numeric comparison
such as `score>=30`. Fields are those routing conditions use: status, owner, source, sequence,
tag, score, and any standard or custom contact field. Opted-out contacts are never selected.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.lead_status import STATUS_NAMES
from engine.models import Contact, Enrollment
from engine.routing import contact_facts
from engine.routing_rules import Condition, conditions_match, parse_condition

logger = logging.getLogger(__name__)

TERM_PATTERN = re.compile(r"^\s*([a-z][a-z0-9_]*)\s*(>=|<=|!=|=|>|<)\s*(.*?)\s*$")


class SegmentError(ValueError):
    """A segment that cannot be parsed; the message names the term and the fix."""


@dataclass(frozen=True)
class Segment:
    text: str
    conditions: tuple[Condition, ...]


@dataclass
class Audience:
    contacts: list[Contact]  # match the segment and may be texted
    opted_out: int  # match the segment but opted out, so left out


def parse_segment(text: str) -> Segment:
    """Parse `status=nurturing,tag=webinar`, raising SegmentError on the first bad term."""
    terms = [term for term in text.split(",") if term.strip()]
    if not terms:
        raise SegmentError("the segment is empty: give conditions such as status=nurturing,tag=webinar")
    conditions = []
    for term in terms:
        match = TERM_PATTERN.match(term)
        if match is None:
            raise SegmentError(f"{term.strip()!r} is not a condition: write field=value, field!=value or score>=30")
        field, operator, value = match.groups()
        if value == "":
            raise SegmentError(f"{term.strip()!r} has no value: write it as {field}{operator}something")
        raw: object = f"{operator}{value}"
        if operator == "=":
            raw = value.split("|") if "|" in value else value
        try:
            condition = parse_condition(field, raw)
        except ValueError as error:
            raise SegmentError(f"{term.strip()!r}: {error}") from None
        if field == "status":
            values = condition.value if isinstance(condition.value, tuple) else (condition.value,)
            unknown = [str(v) for v in values if v not in STATUS_NAMES]
            if unknown:
                raise SegmentError(f"{', '.join(unknown)} is not a lead status: use one of {', '.join(STATUS_NAMES)}")
        conditions.append(condition)
    return Segment(text=text.strip(), conditions=tuple(conditions))


def select_audience(session: Session, segment: Segment) -> Audience:
    """Load the contacts matching the segment, leaving out those who opted out."""
    contacts = session.scalars(select(Contact).order_by(Contact.id)).all()
    sequences: dict[int, set[str]] = defaultdict(set)
    for contact_id, sequence_name in session.execute(select(Enrollment.contact_id, Enrollment.sequence_name)):
        sequences[contact_id].add(sequence_name)
    matching = [contact for contact in contacts if conditions_match(segment.conditions, contact_facts(contact, sequences[contact.id]))]
    reachable = [contact for contact in matching if not contact.opted_out]
    logger.info("segment %r matches %d contacts, %d of them opted out", segment.text, len(matching), len(matching) - len(reachable))
    return Audience(contacts=reachable, opted_out=len(matching) - len(reachable))
