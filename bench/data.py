"""Bulk rows for benchmark set-up: contacts, enrollments and scheduled sends, inserted without the engine."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

from sqlalchemy import insert

from engine.db import session_scope
from engine.models import Contact, Enrollment, ScheduledSend, SendKind, SendStatus

CHUNK = 5000  # rows per INSERT batch, to bound memory at 10^6 rows


def phone_number(index: int) -> str:
    """A distinct, valid-looking US number in the 555 range for contact `index` (below 10^7)."""
    return f"+1555{index:07d}"


def insert_contacts(first_index: int, count: int, now: datetime) -> list[int]:
    """Insert `count` contacts with numbers from phone_number(first_index); returns their ids in order."""
    ids: list[int] = []
    for start in range(first_index, first_index + count, CHUNK):
        stop = min(start + CHUNK, first_index + count)
        rows = [{"phone": phone_number(i), "fields": {}, "status": "new", "created_at": now, "updated_at": now} for i in range(start, stop)]
        with session_scope() as session:
            ids.extend(session.scalars(insert(Contact).returning(Contact.id, sort_by_parameter_order=True), rows))
    return ids


def insert_step_sends(contact_ids: Sequence[int], due_times: Sequence[datetime], now: datetime) -> list[int]:
    """Enroll each contact in the bench sequence at its first step with a pending send; returns the send ids."""
    send_ids: list[int] = []
    for start in range(0, len(contact_ids), CHUNK):
        chunk = list(zip(contact_ids[start:start + CHUNK], due_times[start:start + CHUNK]))
        with session_scope() as session:
            enrollment_ids = list(session.scalars(
                insert(Enrollment).returning(Enrollment.id, sort_by_parameter_order=True),
                [{"contact_id": contact_id, "sequence_name": "bench", "keyword": "DEMO", "state": "welcome", "enrolled_at": now}
                 for contact_id, _ in chunk],
            ))
            send_ids.extend(session.scalars(
                insert(ScheduledSend).returning(ScheduledSend.id, sort_by_parameter_order=True),
                [{"kind": SendKind.STEP.value, "contact_id": contact_id, "enrollment_id": enrollment_id, "step_id": "welcome",
                  "actor": "engine", "due_at": due, "status": SendStatus.PENDING.value, "created_at": now}
                 for (contact_id, due), enrollment_id in zip(chunk, enrollment_ids)],
            ))
    return send_ids


def insert_manual_sends(contact_id: int, due_times: Sequence[datetime], now: datetime) -> None:
    """Insert pending manual sends to one contact, due at the given times (future load for the scale benchmark)."""
    for start in range(0, len(due_times), CHUNK):
        with session_scope() as session:
            session.execute(insert(ScheduledSend), [
                {"kind": SendKind.MANUAL.value, "contact_id": contact_id, "body": "Reminder: your call is tomorrow.",
                 "actor": "engine", "due_at": due, "status": SendStatus.PENDING.value, "created_at": now}
                for due in due_times[start:start + CHUNK]
            ])


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def spread(start: datetime, count: int, rate: float) -> list[datetime]:
    """`count` times from `start`, `rate` per second apart."""
    return [start + timedelta(seconds=i / rate) for i in range(count)]
