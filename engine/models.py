"""Database tables: contacts, enrollments, scheduled sends, messages and timeline events."""

from __future__ import annotations

import enum
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text, TypeDecorator, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps stored as naive UTC and returned as aware UTC, the same on SQLite and PostgreSQL."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given: pass an aware datetime")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=timezone.utc)


class Base(DeclarativeBase):
    pass


class SendStatus(str, enum.Enum):
    PENDING = "pending"  # waiting for its due time
    CLAIMED = "claimed"  # a worker took it and is calling the carrier
    SENT = "sent"  # the carrier accepted it; see the message for delivery
    CANCELLED = "cancelled"  # the enrollment moved on, ended or the contact opted out
    FAILED = "failed"  # the carrier rejected it for good
    STUCK = "stuck"  # claimed by a worker that died before recording the outcome: a person decides


class Direction(str, enum.Enum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class Contact(Base):
    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    phone: Mapped[str] = mapped_column(String(20), unique=True)  # E.164
    first_name: Mapped[str | None] = mapped_column(String(100))
    last_name: Mapped[str | None] = mapped_column(String(100))
    email: Mapped[str | None] = mapped_column(String(254))
    company: Mapped[str | None] = mapped_column(String(200))
    time_zone: Mapped[str | None] = mapped_column(String(64))  # IANA name; None: derive from the number
    fields: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # custom fields from forms and imports
    status: Mapped[str] = mapped_column(String(20), default="new")  # lead status, see engine.lead_status
    source: Mapped[str | None] = mapped_column(String(100))  # how the lead first came in: sms, web_form, import, ...
    owner: Mapped[str | None] = mapped_column(String(100), index=True)  # rep name from routing.yaml
    assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    score: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # sum of score_reasons points
    # One entry per scoring rule that counted: {"rule", "points", "reason", "at"}; see engine.scoring.
    score_reasons: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list, server_default=text("'[]'"))
    opted_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    opt_out_source: Mapped[str | None] = mapped_column(String(100))  # "sms:STOP", "carrier:21610", "api:<source>"
    opted_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # latest opt-in; see consent_records for all
    opt_in_source: Mapped[str | None] = mapped_column(String(100))  # "sms:DEMO", "sms:START", "api:<source>"
    # Consecutive failed deliveries with a carrier code that points at the number; a delivery resets it.
    delivery_failures: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    undeliverable_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    enrollments: Mapped[list[Enrollment]] = relationship(back_populates="contact")

    @property
    def opted_out(self) -> bool:
        return self.opted_out_at is not None

    @property
    def undeliverable(self) -> bool:
        return self.undeliverable_at is not None

    def standard_fields(self) -> dict[str, str | None]:
        """Return the standard fields by name, as templates, routing rules and API payloads use them."""
        return {
            "first_name": self.first_name,
            "last_name": self.last_name,
            "email": self.email,
            "company": self.company,
            "phone": self.phone,
        }


class Enrollment(Base):
    """One contact's pass through one sequence; `state` is the step it waits to send, or why it ended."""

    __tablename__ = "enrollments"
    __table_args__ = (
        # At most one live enrollment per contact and sequence, even when two webhooks race.
        Index(
            "uq_enrollments_live",
            "contact_id",
            "sequence_name",
            unique=True,
            sqlite_where=text("ended_at IS NULL"),
            postgresql_where=text("ended_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    sequence_name: Mapped[str] = mapped_column(String(100), index=True)
    keyword: Mapped[str | None] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(100))
    enrolled_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    contact: Mapped[Contact] = relationship(back_populates="enrollments")

    @property
    def active(self) -> bool:
        return self.ended_at is None


class SendKind(str, enum.Enum):
    STEP = "step"  # a sequence step; its text comes from the sequence file at send time
    MANUAL = "manual"  # a person's message to the lead, with its text in `body`
    BROADCAST = "broadcast"  # one message to a segment, with its text in `body`


class ScheduledSend(Base):
    """A text due to go out: the database row is the source of truth, the RQ job only a reminder."""

    __tablename__ = "scheduled_sends"
    __table_args__ = (Index("ix_scheduled_sends_status_due", "status", "due_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), default=SendKind.STEP.value)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    enrollment_id: Mapped[int | None] = mapped_column(ForeignKey("enrollments.id"), index=True)  # step sends only
    step_id: Mapped[str | None] = mapped_column(String(100))  # step sends only
    body: Mapped[str | None] = mapped_column(Text)  # manual and broadcast sends; steps render at send time
    actor: Mapped[str] = mapped_column(String(100), default="engine")  # who the text is from, for the timeline
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(20), default=SendStatus.PENDING.value)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(200))  # RQ worker name
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    detail: Mapped[str | None] = mapped_column(Text)  # why it was cancelled, failed or flagged
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Message(Base):
    """Every text in or out, with the carrier's MessageSid and delivery status."""

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    direction: Mapped[str] = mapped_column(String(10))
    sid: Mapped[str | None] = mapped_column(String(64), unique=True)  # MessageSid; unique makes webhooks idempotent
    from_number: Mapped[str] = mapped_column(String(20))
    to_number: Mapped[str] = mapped_column(String(20))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str | None] = mapped_column(String(20))  # Twilio MessageStatus for outbound texts
    error_code: Mapped[int | None] = mapped_column(Integer)
    enrollment_id: Mapped[int | None] = mapped_column(ForeignKey("enrollments.id"), index=True)
    send_id: Mapped[int | None] = mapped_column(ForeignKey("scheduled_sends.id"), unique=True)
    reply_text: Mapped[str | None] = mapped_column(Text)  # TwiML reply text sent for an inbound webhook, repeated to duplicates
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class EarlyStatus(Base):
    """A status callback that arrived before the worker recorded its message; applied when the message is recorded.

    The carrier can call back within milliseconds of accepting a text, before the worker's commit.
    Rows that never match (texts sent outside smsdrip) are purged by the periodic sweep.
    """

    __tablename__ = "early_statuses"

    id: Mapped[int] = mapped_column(primary_key=True)
    sid: Mapped[str] = mapped_column(String(64), index=True)  # MessageSid
    status: Mapped[str] = mapped_column(String(40))
    error_code: Mapped[int | None] = mapped_column(Integer)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class ConsentAction(str, enum.Enum):
    OPT_IN = "opt_in"
    OPT_OUT = "opt_out"


class ConsentRecord(Base):
    """One opt-in or opt-out of a contact: how, when and through what, kept as proof of consent."""

    __tablename__ = "consent_records"

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    action: Mapped[str] = mapped_column(String(10))  # ConsentAction
    method: Mapped[str] = mapped_column(String(20))  # "sms" (a text from the contact), "api", "carrier"
    keyword: Mapped[str | None] = mapped_column(String(100))  # normalised word texted: DEMO, STOP, START...
    message_sid: Mapped[str | None] = mapped_column(String(64))  # inbound MessageSid, or the failed send's for carrier
    source: Mapped[str | None] = mapped_column(String(200))  # API caller's source ("web form"), or carrier error code
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Event(Base):
    """An entry on a contact's timeline."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    kind: Mapped[str] = mapped_column(String(40))  # message.in, message.out, enrollment.started, ...
    actor: Mapped[str] = mapped_column(String(100))  # "contact", "engine", "carrier", "rep:<name>", "api"
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class ApiKey(Base):
    """A key for the HTTP API; only its SHA-256 hash is stored, the key itself is shown once at creation."""

    __tablename__ = "api_keys"
    __table_args__ = (
        # A name is free again once its key is revoked.
        Index("uq_api_keys_live_name", "name", unique=True, sqlite_where=text("revoked_at IS NULL"),
              postgresql_where=text("revoked_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))  # first characters of the key, to tell keys apart in listings
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)  # SHA-256 hex of the whole key
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CaptureConsent(Base):
    """Proof of consent given when a lead was captured by a web form, a CRM or an import."""

    __tablename__ = "capture_consents"
    __table_args__ = (Index("uq_capture_consents", "contact_id", "method", "given_at", unique=True),)

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    method: Mapped[str] = mapped_column(String(40))  # web_form, paper_form, crm, ...
    given_at: Mapped[datetime] = mapped_column(UTCDateTime)  # when the person consented, not when we stored it
    proof: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # free-form: page URL, form text, IP, ...
    recorded_by: Mapped[str] = mapped_column(String(100))  # actor, such as "api:website" or "import"
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DoubleOptIn(Base):
    """A confirmation text sent before enrolling a captured lead in a sequence with double opt-in."""

    __tablename__ = "double_opt_ins"
    __table_args__ = (
        Index("uq_double_opt_ins_open", "contact_id", "sequence_name", unique=True,
              sqlite_where=text("confirmed_at IS NULL"), postgresql_where=text("confirmed_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    sequence_name: Mapped[str] = mapped_column(String(100))
    send_id: Mapped[int | None] = mapped_column(ForeignKey("scheduled_sends.id"))  # the confirmation request
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    enrollment_id: Mapped[int | None] = mapped_column(ForeignKey("enrollments.id"))  # started by the confirmation


class RoundRobinCursor(Base):
    """How many leads a rep pool has handed out; the next rep is chosen from this count."""

    __tablename__ = "round_robin_cursors"

    pool: Mapped[str] = mapped_column(String(100), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, default=0)  # assignments so far; updated atomically


class NotificationStatus(str, enum.Enum):
    PENDING = "pending"  # waiting for a worker, or for a retry
    CLAIMED = "claimed"  # a worker is delivering it
    SENT = "sent"
    FAILED = "failed"  # every attempt failed; `detail` contains the last error


class RepNotification(Base):
    """A message telling a rep about a lead assigned to them, by text or webhook."""

    __tablename__ = "rep_notifications"
    __table_args__ = (Index("ix_rep_notifications_status", "status", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    rep: Mapped[str] = mapped_column(String(100))
    channel: Mapped[str] = mapped_column(String(20))  # "text" or "webhook"
    target: Mapped[str] = mapped_column(String(500))  # E.164 number or URL
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # {"text": ...} or the webhook JSON body
    status: Mapped[str] = mapped_column(String(20), default=NotificationStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    detail: Mapped[str | None] = mapped_column(Text)  # MessageSid, HTTP status or the last error
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # start of the latest attempt
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Broadcast(Base):
    """One message to a segment of contacts; its sends carry the actor `broadcast:<id>`."""

    __tablename__ = "broadcasts"

    id: Mapped[int] = mapped_column(primary_key=True)
    segment: Mapped[str] = mapped_column(String(500))  # as given, such as "status=nurturing,tag=webinar"
    text: Mapped[str] = mapped_column(Text)  # template, rendered per contact into each send's body
    recipients: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
