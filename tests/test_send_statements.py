"""SQL cost of one send: the statements and transactions of workers.jobs.send_scheduled, counted with engine events."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import select

from engine.db import count_statements, get_engine, session_scope
from engine.models import Contact, Enrollment, Event, Message, ScheduledSend
from tests.sequence_helpers import ANY_HOUR, text_in, use_sequences
from workers.jobs import send_scheduled

DEMO = "name: demo\nkeywords: [DEMO]\n" + ANY_HOUR + """steps:
  - id: welcome
    after: 0
    text: "Welcome, {first_name|friend}!"
  - id: tips
    after: 1d
    text: "Tips."
"""

# One step send to a new lead. Transaction 1: claim (UPDATE), load send, contact and enrollment (SELECT).
# Transaction 2: load again (SELECT), insert the message, mark the send sent, delete early statuses,
# move the lead to contacted, insert the timeline events, schedule the next step, move the enrollment on.
# SQLite adds a BEGIN IMMEDIATE per transaction (engine.db). It also inserts the two events one at a
# time, because SQLite cannot return generated ids in the order of the rows, so SQLAlchemy does not
# batch the INSERT there. PostgreSQL inserts both in one statement and takes an advisory lock on the
# MessageSid (engine.delivery) with a SELECT.
EXPECTED_STATEMENTS = {
    "sqlite": Counter({"BEGIN": 2, "SELECT": 2, "INSERT": 4, "UPDATE": 4, "DELETE": 1}),
    "postgresql": Counter({"SELECT": 3, "INSERT": 3, "UPDATE": 4, "DELETE": 1}),
}


def test_step_send_statement_count(smsdrip_env, sequences_dir: Path, twilio_api):
    use_sequences(sequences_dir, demo=DEMO)
    outcome = text_in("DEMO", datetime.now(timezone.utc))
    send_id = outcome.sends[0].id
    engine = get_engine()

    with count_statements(engine) as count:
        assert send_scheduled(send_id) == "sent"

    assert count.statements == EXPECTED_STATEMENTS[engine.dialect.name]
    assert count.commits == 2
    # The counted statements did the whole send.
    assert [message.body for message in twilio_api.messages] == ["Welcome, friend!"]
    with session_scope() as session:
        assert session.scalars(select(ScheduledSend.status).order_by(ScheduledSend.id)).all() == ["sent", "pending"]
        assert session.scalars(select(Message.status).where(Message.send_id == send_id)).one() == "queued"
        assert session.scalars(select(Contact.status)).one() == "contacted"
        assert session.scalars(select(Enrollment.state)).one() == "tips"
        kinds = session.scalars(select(Event.kind).where(Event.kind.in_(["message.out", "status.changed"]))).all()
        assert sorted(kinds) == ["message.out", "status.changed"]
