"""Capturing a batch of leads at once: new numbers go in with one insert per table, the rest through capture_lead.

The set-based path stores what capture_lead stores for a new contact (the contact, its consent, the
opt-in record, the timeline events, the score, the enrollment and its first send), so the import
gives the same result either way. A lead goes through capture_lead instead when its number exists
already. So does a new lead whose capture does more than that, because it sets a status, names an
unknown sequence, reaches the score that assigns an owner, or enters a sequence with double opt-in
or a lead status.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, String, Table, any_, bindparam, insert, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from engine.enrollment import recipient_for
from engine.lead_status import InvalidStatusMove, LeadStatus
from engine.leads import CaptureResult, LeadInput, LeadInputError, apply_lead_fields, capture_lead, capture_opt_in_source
from engine.library import SequenceLibrary
from engine.machine import machine_for
from engine.models import (
    CaptureConsent,
    ConsentAction,
    ConsentRecord,
    Contact,
    Enrollment,
    Event,
    ScheduledSend,
    SendKind,
    SendStatus,
)
from engine.optin import requires_double_opt_in
from engine.routing import contact_facts
from engine.routing_rules import Routing
from engine.schedule import due_time
from engine.scoring import score_new_lead
from engine.sequences import Sequence

logger = logging.getLogger(__name__)


class NewSend(NamedTuple):
    """A send stored by a capture, to put on the RQ queue once its transaction commits."""

    id: int
    due_at: datetime


@dataclass
class CaptureOutcome:
    """The result of capturing one lead of a file, for the import report."""

    line: int  # line number in the file
    created: bool = False
    changed: bool = False  # an existing contact's fields changed
    enrolled: bool = False
    opt_in_requested: bool = False  # a confirmation text was scheduled
    not_enrolled: str | None = None  # why the lead was not enrolled, unless a confirmation text was scheduled
    sends: list[NewSend] = field(default_factory=list)
    rejected: tuple[str, str] | None = None  # (field, reason): nothing was stored for the lead

    @classmethod
    def from_result(cls, line: int, result: CaptureResult) -> CaptureOutcome:
        requested = result.opt_in_requested and bool(result.sends)
        return cls(line, created=result.created, changed=bool(result.changed), enrolled=result.enrollment is not None,
                   opt_in_requested=requested, not_enrolled=None if requested else result.not_enrolled,
                   sends=[NewSend(send.id, send.due_at) for send in result.sends])


@dataclass
class _NewLead:
    """A lead for a number not stored yet, worked out in memory before the batch's inserts."""

    line: int
    lead: LeadInput
    contact: Contact  # transient: never added to the session, its columns go into the contacts insert
    score_changes: list[dict[str, Any]]  # score.changed event data
    sequence: Sequence | None = None  # the sequence to enroll it in
    missing_sequence: str | None = None  # a sequence routing names that does not exist
    due_at: datetime | None = None  # the first send's due time


def capture_leads(
    session: Session, leads: list[tuple[int, LeadInput]], now: datetime, actor: str, library: SequenceLibrary, routing: Routing,
) -> list[CaptureOutcome]:
    """Capture validated leads with distinct numbers in the caller's transaction, in order, as imports do (`enroll_once`).

    Looks up every number in one query. Consecutive leads for new numbers are inserted together,
    and every other lead goes through capture_lead in its own savepoint at its place in the order,
    so round-robin assignment hands out reps in file order. A database error propagates, because
    a failed set-based insert leaves no way to tell which lead caused it.
    """
    existing = _existing_numbers(session, [lead.phone for _line, lead in leads])
    outcomes: list[CaptureOutcome] = []
    pending: list[_NewLead] = []
    for line, lead in leads:
        planned = None if lead.phone in existing else _plan_new_lead(line, lead, now, library, routing)
        if planned is not None:
            pending.append(planned)
            continue
        outcomes.extend(_insert_new_leads(session, pending, now, actor))
        pending = []
        outcomes.append(capture_one(session, line, lead, now, actor, library, routing))
    outcomes.extend(_insert_new_leads(session, pending, now, actor))
    return outcomes


def capture_one(
    session: Session, line: int, lead: LeadInput, now: datetime, actor: str, library: SequenceLibrary, routing: Routing,
    reject_database_errors: bool = False,
) -> CaptureOutcome:
    """Capture one lead through capture_lead in a savepoint, so a lead that fails half-way leaves nothing behind.

    With `reject_database_errors`, a database error rejects the lead instead of propagating.
    """
    try:
        with session.begin_nested():
            result = capture_lead(session, lead, now, actor, library, routing, enroll_once=True)
    except LeadInputError as error:
        return CaptureOutcome(line, rejected=(error.field, error.message))
    except InvalidStatusMove as error:
        return CaptureOutcome(line, rejected=("status", str(error)))
    except DBAPIError as error:
        if not reject_database_errors:
            raise
        # The driver's message can quote the row's values, so the log names only the error's type.
        logger.warning("import line %d rejected by the database: %s", line, type(error.orig).__name__)
        first_line = str(error.orig).strip().splitlines()[0] if str(error.orig).strip() else type(error.orig).__name__
        return CaptureOutcome(line, rejected=("row", f"the database rejected it: {first_line}"))
    return CaptureOutcome.from_result(line, result)


def _existing_numbers(session: Session, phones: list[str]) -> set[str]:
    if not phones:
        return set()
    if session.get_bind().dialect.name == "postgresql":
        # One array parameter, so the statement text is the same for every batch size.
        condition = Contact.phone == any_(bindparam("phones", phones, type_=postgresql.ARRAY(String)))
    else:
        condition = Contact.phone.in_(phones)
    return set(session.scalars(select(Contact.phone).where(condition)).all())


def _plan_new_lead(line: int, lead: LeadInput, now: datetime, library: SequenceLibrary, routing: Routing) -> _NewLead | None:
    """Work out a new lead's contact, score and enrollment; None when it needs capture_lead (see the module docstring)."""
    if lead.status is not None or (lead.sequence is not None and library.get(lead.sequence) is None):
        return None
    contact = Contact(phone=lead.phone, fields={}, status=LeadStatus.NEW.value, source=lead.source, score=0, score_reasons=[],
                      owner=None, time_zone=None)
    apply_lead_fields(contact, lead)
    planned = _NewLead(line, lead, contact, score_new_lead(contact, routing, now))
    threshold = routing.assign_at_score
    if threshold is not None and contact.score >= threshold:
        return None

    name = lead.sequence
    if name is None:
        rule = routing.rule_for_sequence(contact_facts(contact, set()))
        name = rule.sequence if rule is not None else None
    if name is None:
        return planned
    sequence = library.get(name)
    if sequence is None:
        planned.missing_sequence = name
        return planned
    if requires_double_opt_in(sequence) or sequence.lead_status is not None:
        return None
    planned.sequence = sequence
    planned.due_at = due_time(sequence, sequence.first_step, now, recipient_for(contact))
    return planned


def _insert_new_leads(session: Session, leads: list[_NewLead], now: datetime, actor: str) -> list[CaptureOutcome]:
    """Insert the leads' rows with one statement per table; returns their outcomes."""
    if not leads:
        return []
    connection = session.connection()
    contact_ids = _insert_returning_ids(connection, Contact.__table__, "phone", [
        {"phone": new.contact.phone, "first_name": new.contact.first_name, "last_name": new.contact.last_name,
         "email": new.contact.email, "company": new.contact.company, "fields": new.contact.fields, "status": new.contact.status,
         "source": new.contact.source, "score": new.contact.score, "score_reasons": new.contact.score_reasons}
        for new in leads
    ])
    ids = [contact_ids[new.contact.phone] for new in leads]
    consent_ids = _insert_returning_ids(connection, CaptureConsent.__table__, "contact_id", [
        {"contact_id": contact_id, "method": new.lead.consent.method, "given_at": new.lead.consent.given_at,
         "proof": new.lead.consent.proof, "recorded_by": actor}
        for new, contact_id in zip(leads, ids)
    ])
    connection.execute(insert(ConsentRecord.__table__), [_opt_in_record(new.lead, contact_id, actor) for new, contact_id in zip(leads, ids)])

    enrolled = [(new, new.sequence, contact_id) for new, contact_id in zip(leads, ids) if new.sequence is not None]
    enrollment_ids = _insert_returning_ids(connection, Enrollment.__table__, "contact_id", [
        {"contact_id": contact_id, "sequence_name": sequence.name, "keyword": None, "state": machine_for(sequence).initial,
         "enrolled_at": now}
        for _new, sequence, contact_id in enrolled
    ])
    send_ids = _insert_returning_ids(connection, ScheduledSend.__table__, "enrollment_id", [
        {"kind": SendKind.STEP.value, "enrollment_id": enrollment_ids[contact_id], "contact_id": contact_id,
         "step_id": sequence.first_step.id, "due_at": new.due_at, "status": SendStatus.PENDING.value, "created_at": now}
        for new, sequence, contact_id in enrolled
    ])

    events: list[dict[str, Any]] = []
    outcomes = []
    for new, contact_id in zip(leads, ids):
        enrollment_id = enrollment_ids.get(contact_id)
        events.extend(_timeline(new, contact_id, consent_ids[contact_id], enrollment_id, actor))
        outcome = CaptureOutcome(new.line, created=True)
        if enrollment_id is not None and new.due_at is not None:
            outcome.enrolled, outcome.sends = True, [NewSend(send_ids[enrollment_id], new.due_at)]
        elif new.missing_sequence is not None:
            logger.warning("contact %s: routing names sequence %s, which does not exist; not enrolled", contact_id, new.missing_sequence)
            outcome.not_enrolled = f"sequence {new.missing_sequence!r} does not exist"
        outcomes.append(outcome)
    connection.execute(insert(Event.__table__), events)
    logger.info("contacts %s to %s created from %s in one batch of %d, %d enrolled", ids[0], ids[-1],
                leads[0].lead.source or "api", len(leads), len(enrolled))
    return outcomes


def _opt_in_record(lead: LeadInput, contact_id: int, actor: str) -> dict[str, Any]:
    method, source = capture_opt_in_source(lead.consent, actor)
    return {"contact_id": contact_id, "action": ConsentAction.OPT_IN.value, "method": method, "keyword": None, "message_sid": None,
            "source": source, "created_at": lead.consent.given_at}


def _timeline(new: _NewLead, contact_id: int, consent_id: int, enrollment_id: int | None, actor: str) -> Iterable[dict[str, Any]]:
    """Yield the lead's timeline events in the order capture_lead records them."""
    lead = new.lead
    yield _event(contact_id, "contact.created", "engine", source=lead.source or "api")
    yield _event(contact_id, "consent.recorded", actor, consent_id=consent_id, method=lead.consent.method,
                 given_at=lead.consent.given_at.isoformat())
    yield _event(contact_id, "lead.captured", actor, source=lead.source, created=True, changed=[])
    for change in new.score_changes:
        yield _event(contact_id, "score.changed", actor, **change)
    if enrollment_id is not None and new.sequence is not None:
        yield _event(contact_id, "enrollment.started", actor, enrollment_id=enrollment_id, sequence=new.sequence.name, keyword=None)


def _event(contact_id: int, kind: str, actor: str, **data: Any) -> dict[str, Any]:
    return {"contact_id": contact_id, "kind": kind, "actor": actor, "data": data}


def _insert_returning_ids(connection: Connection, table: Table, key: str, rows: list[dict[str, Any]]) -> dict[Any, int]:
    """Insert the rows and return their ids by the value of `key`, unique among the rows.

    One statement where the dialect returns ids from an executemany. Ids are matched by `key` and not
    by position, because asking SQLAlchemy to keep the rows' order adds a sentinel column to the statement.
    """
    if not rows:
        return {}
    if connection.dialect.insert_executemany_returning:
        result = connection.execute(insert(table).returning(table.c[key], table.c.id), rows)
        return {value: row_id for value, row_id in result}
    return {row[key]: int(connection.execute(insert(table), row).inserted_primary_key[0]) for row in rows}
