"""The periodic sweep on real Redis and both databases: it enqueues each due row once and replaces dead jobs."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from rq.job import Job

from engine.db import session_scope
from engine.models import Contact, ScheduledSend, SendKind, SendStatus
from workers.jobs import enqueue_due_sends
from workers.queue import get_queue, send_job_id


def _pending_send(due_at: datetime) -> int:
    with session_scope() as session:
        contact = Contact(phone="+15550100001", fields={})
        session.add(contact)
        session.flush()
        send = ScheduledSend(kind=SendKind.MANUAL.value, contact_id=contact.id, body="Your call is at 3 pm.", due_at=due_at,
                             status=SendStatus.PENDING.value)
        session.add(send)
        session.flush()
        return send.id


def test_sweep_skips_row_already_queued(smsdrip_env):
    send_id = _pending_send(datetime.now(timezone.utc) - timedelta(seconds=5))

    assert enqueue_due_sends() == 1
    assert enqueue_due_sends() == 0
    assert get_queue().job_ids == [send_job_id(send_id)]


def test_sweep_replaces_finished_job_of_pending_row(smsdrip_env):
    send_id = _pending_send(datetime.now(timezone.utc) - timedelta(seconds=5))
    assert enqueue_due_sends() == 1
    queue = get_queue()
    job = Job.fetch(send_job_id(send_id), connection=queue.connection)
    # As if a worker ran the job but the row stayed pending (for example the worker lost its database).
    queue.remove(job)
    job.set_status("finished")

    assert enqueue_due_sends() == 1
    assert get_queue().job_ids == [send_job_id(send_id)]
