"""Capturing leads from web forms, CRMs and imports: validate the input, upsert the contact, record consent, enroll.

The API and the CSV importer share `parse_lead` and `capture_lead`, so both accept and reject the same things.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.compliance import record_consent
from engine.contacts import find_or_create_contact
from engine.lead_status import UnknownStatus, parse_status
from engine.library import SequenceLibrary
from engine.lifecycle import change_status, qualify_by_score, start_sequence
from engine.models import CaptureConsent, ConsentAction, Contact, DoubleOptIn, Enrollment, ScheduledSend
from engine.optin import request_double_opt_in, requires_double_opt_in
from engine.phones import InvalidPhoneNumber, to_e164
from engine.routing import lead_facts
from engine.routing_rules import Routing
from engine.scoring import rescore_fields, score_event
from engine.timeline import record_event

logger = logging.getLogger(__name__)

STANDARD_FIELDS = {"first_name": 100, "last_name": 100, "email": 254, "company": 200}  # name: maximum characters
TOP_LEVEL_KEYS = {"phone", *STANDARD_FIELDS, "source", "consent", "sequence", "status", "tags", "fields"}
# Custom field names must work as template placeholders, and must not hide a standard one.
CUSTOM_FIELD_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
RESERVED_FIELD_NAMES = TOP_LEVEL_KEYS | {"owner", "owner_name", "score", "keyword", "tag", "opted_out"}
TOKEN_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,39}$")  # consent methods and sources: web_form, crm, import
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_TEXT_CHARS = 500  # per custom field value
# A consent time this far ahead of our clock is a client clock off by a little, not a future consent.
CONSENT_CLOCK_SKEW = timedelta(minutes=5)


class LeadInputError(ValueError):
    """Lead data that cannot be used; `field` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class Consent:
    method: str  # web_form, paper_form, crm, ...
    given_at: datetime  # aware
    proof: dict[str, Any]  # free-form: page URL, form text, IP address, ...


@dataclass(frozen=True)
class LeadInput:
    phone: str  # E.164
    consent: Consent
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    company: str | None = None
    source: str | None = None
    sequence: str | None = None
    status: str | None = None
    tags: tuple[str, ...] = ()
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class CaptureResult:
    contact: Contact
    created: bool
    changed: list[str]  # fields that changed on an existing contact
    sequence: str | None = None  # the sequence the lead is meant for, if any
    enrollment: Enrollment | None = None
    opt_in_requested: bool = False
    not_enrolled: str | None = None  # why the lead was not enrolled in `sequence`
    sends: list[ScheduledSend] = field(default_factory=list)  # to enqueue once the transaction commits


def parse_lead(data: Mapping[str, Any], region: str, now: datetime) -> LeadInput:
    """Validate one lead as the API receives it (JSON object), raising LeadInputError naming the first bad field."""
    unknown = sorted(set(data) - TOP_LEVEL_KEYS)
    if unknown:
        raise LeadInputError(unknown[0], f"unknown field: use {', '.join(sorted(TOP_LEVEL_KEYS))}, and put custom fields under `fields`")

    raw_phone = data.get("phone")
    if not isinstance(raw_phone, (str, int)) or str(raw_phone).strip() == "":
        raise LeadInputError("phone", "is missing: give the lead's mobile number, such as +12125550123")
    try:
        phone = to_e164(str(raw_phone), region)
    except InvalidPhoneNumber as error:
        raise LeadInputError("phone", str(error)) from None

    standard = {name: _text(data, name, limit) for name, limit in STANDARD_FIELDS.items()}
    if standard["email"] is not None:
        standard["email"] = standard["email"].lower()
        if not EMAIL_PATTERN.match(standard["email"]):
            raise LeadInputError("email", f"{standard['email']!r} is not an email address")

    source = _token(data, "source")
    sequence = _text(data, "sequence", 100)
    status = None
    if data.get("status") not in (None, ""):
        try:
            status = parse_status(data["status"]).value
        except UnknownStatus as error:
            raise LeadInputError("status", str(error)) from None

    return LeadInput(
        phone=phone,
        consent=parse_consent(data.get("consent"), now),
        source=source,
        sequence=sequence,
        status=status,
        tags=_tags(data.get("tags")),
        fields=_custom_fields(data.get("fields")),
        **standard,
    )


def _text(data: Mapping[str, Any], name: str, limit: int) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise LeadInputError(name, "must be text")
    text = str(value).strip()
    if len(text) > limit:
        raise LeadInputError(name, f"has {len(text)} characters; the most allowed is {limit}")
    return text or None


def _token(data: Mapping[str, Any], name: str) -> str | None:
    value = _text(data, name, 40)
    if value is not None and not TOKEN_PATTERN.match(value.lower()):
        raise LeadInputError(name, f"{value!r} is invalid: use lower-case letters, digits, '_', '.' or '-', such as web_form")
    return value.lower() if value is not None else None


def _tags(raw: Any) -> tuple[str, ...]:
    if raw in (None, ""):
        return ()
    if not isinstance(raw, list) or not all(isinstance(tag, str) and tag.strip() for tag in raw):
        raise LeadInputError("tags", "must be a list of non-empty texts, such as [\"webinar\", \"vip\"]")
    return tuple(dict.fromkeys(tag.strip().lower() for tag in raw))


def _custom_fields(raw: Any) -> dict[str, Any]:
    if raw in (None, ""):
        return {}
    if not isinstance(raw, Mapping):
        raise LeadInputError("fields", "must be an object of field names to values, such as {\"company_size\": 50}")
    fields: dict[str, Any] = {}
    for name, value in raw.items():
        where = f"fields.{name}"
        if not CUSTOM_FIELD_PATTERN.match(str(name)) or name in RESERVED_FIELD_NAMES:
            raise LeadInputError(where, "is not a valid custom field name: use lower-case letters, digits and '_', "
                                        "starting with a letter, and none of the standard field names")
        if value is None or value == "":
            continue
        if isinstance(value, (dict, list)):
            raise LeadInputError(where, "must be a text, number or true/false, not a list or object")
        if isinstance(value, str):
            value = value.strip()
            if len(value) > MAX_TEXT_CHARS:
                raise LeadInputError(where, f"has {len(value)} characters; the most allowed is {MAX_TEXT_CHARS}")
        fields[str(name)] = value
    return fields


def parse_consent(raw: Any, now: datetime) -> Consent:
    """Validate `{"method": ..., "at": ISO 8601 time, ...proof}`; consent is required for every lead."""
    if raw in (None, "", {}):
        raise LeadInputError("consent", 'is missing: give {"method": "web_form", "at": "2025-01-31T14:05:00Z"}, '
                                        "because smsdrip texts no one without recorded consent")
    if not isinstance(raw, Mapping):
        raise LeadInputError("consent", 'must be an object such as {"method": "web_form", "at": "2025-01-31T14:05:00Z"}')
    method = raw.get("method")
    if not isinstance(method, str) or not TOKEN_PATTERN.match(method.strip().lower()):
        raise LeadInputError("consent.method", "is missing or invalid: say how consent was given, such as web_form")
    at = raw.get("at")
    if not isinstance(at, str) or not at.strip():
        raise LeadInputError("consent.at", "is missing: give when consent was given as ISO 8601, such as 2025-01-31T14:05:00Z")
    try:
        given_at = datetime.fromisoformat(at.strip())
    except ValueError:
        raise LeadInputError("consent.at", f"{at!r} is not an ISO 8601 time: use a form such as 2025-01-31T14:05:00Z") from None
    if given_at.tzinfo is None:
        raise LeadInputError("consent.at", f"{at!r} has no time zone: add Z for UTC or an offset such as -05:00")
    if given_at > now + CONSENT_CLOCK_SKEW:
        raise LeadInputError("consent.at", f"{at!r} is in the future: give the time the person consented")
    proof = {str(key): value for key, value in raw.items() if key not in ("method", "at")}
    return Consent(method=method.strip().lower(), given_at=given_at, proof=proof)


def capture_lead(
    session: Session, lead: LeadInput, now: datetime, actor: str, library: SequenceLibrary, routing: Routing,
    enroll_once: bool = False,
) -> CaptureResult:
    """Create or update the contact, record consent, score it, and start its sequence.

    The sequence is `lead.sequence`, else the first routing rule that matches and names one. With
    `enroll_once` (imports), a lead that was ever enrolled in that sequence is not enrolled again,
    so re-running an import changes nothing. Raises LeadInputError for an unknown sequence and
    InvalidStatusMove for a status the lead cannot move to.
    """
    if lead.sequence is not None and library.get(lead.sequence) is None:
        raise LeadInputError("sequence", f"{lead.sequence!r} is not a sequence: use one of {', '.join(sorted(library.sequences)) or 'none'}")

    contact, created = find_or_create_contact(session, lead.phone, source=lead.source or "api")
    changed = [] if created else _changed_fields(contact, lead)
    apply_lead_fields(contact, lead)
    if contact.source is None:
        contact.source = lead.source
    consent_new = record_capture_consent(session, contact, lead.consent, actor, new_contact=created)
    if created or changed or consent_new:
        record_event(session, contact.id, "lead.captured", actor, source=lead.source, created=created, changed=changed)
    result = CaptureResult(contact=contact, created=created, changed=changed)

    if lead.status is not None:
        change_status(session, contact, lead.status, now, actor, library, routing)
    if created:
        score_event(session, contact, routing, "captured", now, actor)
    # A contact created here was never enrolled: its facts need no query (a query per lead in an import).
    enrolled: set[str] | None = set() if created else None
    rescore_fields(session, contact, routing, now, actor, enrolled=enrolled)

    result.sequence = lead.sequence
    if result.sequence is None:
        rule = routing.rule_for_sequence(lead_facts(session, contact, enrolled=enrolled))
        result.sequence = rule.sequence if rule is not None else None
    if result.sequence is not None:
        _start_sequence(session, result, now, actor, library, enroll_once)

    qualify_by_score(session, contact, routing, now, actor, library)
    return result


def _changed_fields(contact: Contact, lead: LeadInput) -> list[str]:
    changed = [name for name in STANDARD_FIELDS if getattr(lead, name) is not None and getattr(lead, name) != getattr(contact, name)]
    fields = contact.fields or {}
    changed.extend(f"fields.{name}" for name, value in lead.fields.items() if fields.get(name) != value)
    if set(lead.tags) - set(fields.get("tags") or []):
        changed.append("tags")
    return changed


def apply_lead_fields(contact: Contact, lead: LeadInput) -> None:
    """Overwrite the fields the lead gives; fields it leaves out keep their values, and tags add up."""
    for name in STANDARD_FIELDS:
        value = getattr(lead, name)
        if value is not None:
            setattr(contact, name, value)
    fields = dict(contact.fields or {})
    fields.update(lead.fields)
    if lead.tags:
        fields["tags"] = list(dict.fromkeys([*(fields.get("tags") or []), *lead.tags]))
    # A new dict, because SQLAlchemy does not see changes made inside a JSON value.
    contact.fields = fields


def record_capture_consent(session: Session, contact: Contact, consent: Consent, actor: str, new_contact: bool = False) -> bool:
    """Store the consent unless the same method and time are stored already; returns whether it was new.

    `new_contact`: the contact was created in this transaction, so it has no consent stored yet.
    """
    if not new_contact:
        existing = session.scalar(select(CaptureConsent.id).where(
            CaptureConsent.contact_id == contact.id, CaptureConsent.method == consent.method, CaptureConsent.given_at == consent.given_at
        ))
        if existing is not None:
            return False
    record = CaptureConsent(contact_id=contact.id, method=consent.method, given_at=consent.given_at, proof=consent.proof,
                            recorded_by=actor)
    session.add(record)
    session.flush()
    record_event(session, contact.id, "consent.recorded", actor, consent_id=record.id, method=consent.method,
                 given_at=consent.given_at.isoformat())
    # The contact's consent history lists every opt-in; an opted-out contact stays opted out until they text START.
    channel, source = capture_opt_in_source(consent, actor)
    record_consent(session, contact.id, ConsentAction.OPT_IN, channel, consent.given_at, source=source)
    return True


def capture_opt_in_source(consent: Consent, actor: str) -> tuple[str, str]:
    """Return the method and source of the consent record that a captured consent adds to the contact's history."""
    return ("import" if actor == "import" else "api"), f"{actor}: {consent.method}"[:200]


def _start_sequence(session: Session, result: CaptureResult, now: datetime, actor: str, library: SequenceLibrary, enroll_once: bool) -> None:
    contact = result.contact
    assert result.sequence is not None
    sequence = library.get(result.sequence)
    if sequence is None:
        # Only a routing rule can name a missing sequence here; `smsdrip check` reports it too.
        logger.warning("contact %s: routing names sequence %s, which does not exist; not enrolled", contact.id, result.sequence)
        result.not_enrolled = f"sequence {result.sequence!r} does not exist"
        return
    if contact.opted_out:
        result.not_enrolled = "the contact opted out; they must text START to receive texts again"
        return
    if enroll_once and not result.created and _ever_started(session, contact.id, sequence.name):
        result.not_enrolled = "already enrolled in this sequence before"
        return
    if requires_double_opt_in(sequence):
        send = request_double_opt_in(session, contact, sequence, now, actor)
        result.opt_in_requested = True
        if send is None:
            result.not_enrolled = "waiting for the lead to reply YES to an earlier request"
        else:
            result.sends.append(send)
            result.not_enrolled = "waiting for the lead to reply YES"
        return
    started = start_sequence(session, contact, sequence, None, now, actor, library, new_contact=result.created)
    if started is None:
        result.not_enrolled = "already in this sequence"
        return
    result.enrollment, send = started
    result.sends.append(send)


def _ever_started(session: Session, contact_id: int, sequence_name: str) -> bool:
    enrolled = session.scalar(select(Enrollment.id).where(Enrollment.contact_id == contact_id, Enrollment.sequence_name == sequence_name).limit(1))
    asked = session.scalar(select(DoubleOptIn.id).where(DoubleOptIn.contact_id == contact_id, DoubleOptIn.sequence_name == sequence_name).limit(1))
    return enrolled is not None or asked is not None
