"""Helpers for tests that run sequences on a real database: write sequence files, text in, send what is due."""

from __future__ import annotations

import os
import uuid
from datetime import datetime
from pathlib import Path

from sqlalchemy import select

from engine.db import session_scope
from engine.inbound import InboundMessage, InboundOutcome, handle_inbound
from engine.library import SequenceLibrary, get_library
from engine.models import Message, ScheduledSend, SendStatus
from engine.outbound import load_send, prepare_claimed_send, record_sent
from tests.conftest import OUR_NUMBER

PROSPECT = "+12125550123"  # New York
# Sequence-file lines that open the send window all day, for tests whose steps come due in seconds or minutes at any hour.
ANY_HOUR = 'allow_outside_quiet_hours: true\nsend_window: {start: "00:00", end: "00:00"}\n'
# A welcome at once and tips 2 s later, at any hour: for tests that run real workers and RQ's scheduler.
TWO_QUICK_STEPS = f"""
name: demo
keywords: [DEMO]
{ANY_HOUR}steps:
  - id: welcome
    after: 0
    text: "Welcome!"
  - id: tips
    after: 2s
    text: "Tips."
"""


def use_sequences(folder: Path, **files: str) -> None:
    """Replace the sequence files in `folder` with `files` (name without .yaml -> text)."""
    for path in folder.glob("*.y*ml"):
        path.unlink()
    for name, text in files.items():
        (folder / f"{name}.yaml").write_text(text)


def library() -> SequenceLibrary:
    return get_library(Path(os.environ["SMSDRIP_SEQUENCES"]).resolve())


def text_in(body: str, now: datetime, from_number: str = PROSPECT) -> InboundOutcome:
    """Handle an inbound text as the webhook does, at a chosen time."""
    message = InboundMessage(sid="SM" + uuid.uuid4().hex, from_number=from_number, to_number=OUR_NUMBER, body=body)
    with session_scope() as session:
        return handle_inbound(session, message, library(), now)


def send_due(now: datetime) -> list[str]:
    """Claim, render and record every pending send due by `now`, as a worker does, without calling a carrier; returns the bodies."""
    bodies: list[str] = []
    with session_scope() as session:
        due = session.scalars(
            select(ScheduledSend).where(ScheduledSend.status == SendStatus.PENDING.value, ScheduledSend.due_at <= now).order_by(ScheduledSend.due_at)
        ).all()
        for send in due:
            send.status, send.claimed_at, send.claimed_by = SendStatus.CLAIMED.value, now, "test"
            prepared = prepare_claimed_send(session, load_send(session, send.id), library(), now)
            if prepared is None:
                continue
            record_sent(session, prepared, "SM" + uuid.uuid4().hex, "queued", OUR_NUMBER, library(), now)
            bodies.append(prepared.body)
    return bodies


def pending_sends() -> list[tuple[str | None, datetime]]:
    with session_scope() as session:
        rows = session.execute(
            select(ScheduledSend.step_id, ScheduledSend.due_at).where(ScheduledSend.status == SendStatus.PENDING.value).order_by(ScheduledSend.id)
        ).all()
    return [(step_id, due_at) for step_id, due_at in rows]


def outbound_bodies() -> list[str]:
    with session_scope() as session:
        return list(session.scalars(select(Message.body).where(Message.direction == "outbound").order_by(Message.id)).all())
