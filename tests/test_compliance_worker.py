"""Opt-outs honoured in real worker processes at send time: queued steps, carrier error 21610, sends made after an opt-out."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from rq.job import Job
from sqlalchemy import select

from engine.db import session_scope
from engine.models import ConsentRecord, Contact, Enrollment, Message, ScheduledSend
from tests.conftest import inbound_params, signed_post, wait_until
from tests.sequence_helpers import ANY_HOUR
from workers.connection import get_redis
from workers.queue import enqueue_send, send_job_id

DELAYED_WELCOME = f"""
name: demo
keywords: [DEMO]
{ANY_HOUR}steps:
  - id: welcome
    after: 3s
    text: "Welcome! Reply STOP to opt out."
  - id: tips
    after: 1d
    text: "Tips."
"""


def _send_statuses(step_id: str | None = None) -> list[str]:
    query = select(ScheduledSend.status).order_by(ScheduledSend.id)
    if step_id is not None:
        query = query.where(ScheduledSend.step_id == step_id)
    with session_scope() as session:
        return list(session.scalars(query).all())


def test_stop_while_step_queued_not_sent(client, start_worker, twilio_api, sequences_dir: Path):
    (sequences_dir / "demo.yaml").write_text(DELAYED_WELCOME)
    worker = start_worker()
    phone = "+15550400001"

    signed_post(client, "/twilio/sms", inbound_params(phone, "DEMO"))
    with session_scope() as session:
        send_id = session.scalars(select(ScheduledSend.id)).one()
    assert Job.exists(send_job_id(send_id), connection=get_redis())  # the step waits in Redis

    signed_post(client, "/twilio/sms", inbound_params(phone, "Stop."))
    # Past the due time, with the worker's scheduler running: the job ran and sent nothing.
    assert wait_until(lambda: Job.fetch(send_job_id(send_id), connection=get_redis()).get_status() == "finished", timeout=20), worker.log()
    assert twilio_api.messages == []
    assert _send_statuses() == ["cancelled"]


def test_send_after_opt_out_cancelled_in_worker(client, start_worker, twilio_api):
    """A send written after the opt-out (a rep's manual text) is stopped by the worker's own check."""
    phone = "+15550400002"
    signed_post(client, "/twilio/sms", inbound_params(phone, "STOP"))
    with session_scope() as session:
        contact = session.scalars(select(Contact).where(Contact.phone == phone)).one()
        send = ScheduledSend(kind="manual", contact_id=contact.id, body="Are you still interested?", actor="rep:sam",
                             due_at=datetime.now(timezone.utc))
        session.add(send)
        session.flush()
        send_id, due_at = send.id, send.due_at
    start_worker()
    enqueue_send(send_id, due_at)

    assert wait_until(lambda: _send_statuses() != ["pending"], timeout=20)
    with session_scope() as session:
        send = session.get_one(ScheduledSend, send_id)
    assert send.status == "cancelled"
    assert send.detail == f"contact {send.contact_id} is opted out"
    assert twilio_api.messages == []


def test_stop_during_slot_wait_not_sent(client, start_worker, twilio_api, smsdrip_env):
    """A send waiting for its send slot checks the opt-out again before calling the carrier."""
    smsdrip_env["SMSDRIP_MPS"] = "0.25"  # one send every 4 s
    first, second = "+15550400003", "+15550400004"
    signed_post(client, "/twilio/sms", inbound_params(first, "DEMO"))
    signed_post(client, "/twilio/sms", inbound_params(second, "DEMO"))
    # One worker takes the jobs in order: the first sends at once, the second waits about 4 s for its slot.
    worker = start_worker()

    assert len(twilio_api.wait_for(1, timeout=20)) == 1, worker.log()
    assert wait_until(lambda: _send_statuses("welcome") == ["sent", "claimed"], timeout=10), worker.log()
    signed_post(client, "/twilio/sms", inbound_params(second, "STOP"))

    assert wait_until(lambda: _send_statuses("welcome") == ["sent", "cancelled"], timeout=15), worker.log()
    assert [message.to for message in twilio_api.messages] == [first]


def test_carrier_21610_opts_contact_out(client, start_worker, twilio_api):
    phone = "+15550400005"
    twilio_api.fail(phone, 400, 21610, "Attempt to send to unsubscribed recipient")
    start_worker()
    signed_post(client, "/twilio/sms", inbound_params(phone, "DEMO"))

    assert wait_until(lambda: _send_statuses() == ["failed"], timeout=20)
    with session_scope() as session:
        contact = session.scalars(select(Contact).where(Contact.phone == phone)).one()
        enrollment = session.scalars(select(Enrollment)).one()
        failed = session.scalars(select(Message).where(Message.direction == "outbound")).one()
        consent = session.scalars(select(ConsentRecord).where(ConsentRecord.action == "opt_out")).one()
        pending = session.scalars(select(ScheduledSend).where(ScheduledSend.status == "pending")).all()
    assert contact.opted_out_at is not None
    assert contact.opt_out_source == "carrier:21610"
    assert enrollment.state == "opted_out"
    assert (failed.status, failed.error_code, failed.sid) == ("failed", 21610, None)
    assert (consent.method, consent.source) == ("carrier", "21610")
    assert pending == []  # the enrollment did not move on to its next step
    assert twilio_api.messages == []


def test_carrier_21610_cancels_other_sends(client, start_worker, twilio_api):
    phone = "+15550400006"
    signed_post(client, "/twilio/sms", inbound_params(phone, "hello"))
    now = datetime.now(timezone.utc)
    with session_scope() as session:
        contact = session.scalars(select(Contact).where(Contact.phone == phone)).one()
        first = ScheduledSend(kind="manual", contact_id=contact.id, body="First", due_at=now)
        later = ScheduledSend(kind="broadcast", contact_id=contact.id, body="Sale!", due_at=now + timedelta(hours=1))
        session.add_all([first, later])
        session.flush()
        first_id = first.id
    twilio_api.fail(phone, 400, 21610, "Attempt to send to unsubscribed recipient")
    start_worker()
    enqueue_send(first_id, now)

    assert wait_until(lambda: _send_statuses() == ["failed", "cancelled"], timeout=20)
