"""Lead status set by the engine: a sequence's `lead.status` on enrollment, and new -> contacted on the first text."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import select

from engine.db import session_scope
from engine.models import Contact, Enrollment, Event
from tests.sequence_helpers import send_due, text_in, use_sequences

T0 = datetime(2026, 3, 4, 15, 0, tzinfo=timezone.utc)  # Wednesday 10:00 in New York

NURTURE = """\
name: nurture
keywords: [GROW]
lead: {status: nurturing}
steps:
  - id: welcome
    after: 0
    text: Welcome to the nurture track.
"""

PLAIN = """\
name: plain
keywords: [PLAIN]
steps:
  - id: welcome
    after: 0
    text: Hello.
"""


def _status_events() -> list[tuple[str, str, str]]:
    with session_scope() as session:
        events = session.scalars(select(Event).where(Event.kind == "status.changed").order_by(Event.id)).all()
        return [(event.data["previous"], event.data["status"], event.actor) for event in events]


def _status() -> str:
    with session_scope() as session:
        return session.scalars(select(Contact.status)).one()


def test_lead_status_set_on_enrollment(smsdrip_env, sequences_dir: Path):
    use_sequences(sequences_dir, nurture=NURTURE)
    text_in("grow", T0)
    assert _status() == "nurturing"
    assert _status_events() == [("new", "nurturing", "contact")]


def test_first_text_marks_contacted(smsdrip_env, sequences_dir: Path):
    use_sequences(sequences_dir, plain=PLAIN)
    text_in("plain", T0)
    assert _status() == "new"
    assert send_due(T0) == ["Hello."]
    assert _status() == "contacted"


def test_lead_status_invalid_move_still_enrolls(smsdrip_env, sequences_dir: Path):
    use_sequences(sequences_dir, nurture=NURTURE)
    with session_scope() as session:
        session.add(Contact(phone="+12125550123", status="converted"))
    text_in("grow", T0, from_number="+12125550123")
    assert _status() == "converted"
    with session_scope() as session:
        assert session.scalars(select(Enrollment.sequence_name)).all() == ["nurture"]
