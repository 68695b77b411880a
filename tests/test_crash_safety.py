"""Never twice, never lost: workers killed mid-send, Redis flushed, two workers on one row, the enqueue horizon."""

from __future__ import annotations

import logging
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import redis
from rq import Queue
from rq.job import Job
from sqlalchemy import select

from engine.db import session_scope
from engine.models import Contact, Event, Message, ScheduledSend
from tests.conftest import inbound_params, signed_post, wait_until
from tests.sequence_helpers import TWO_QUICK_STEPS
from workers.jobs import CLAIM_TIMEOUT, enqueue_due_sends, flag_stuck_claims, send_scheduled
from workers.queue import ENQUEUE_HORIZON, get_queue, send_job_id


def _sends() -> list[ScheduledSend]:
    with session_scope() as session:
        return list(session.scalars(select(ScheduledSend).order_by(ScheduledSend.id)).all())


def _welcome() -> ScheduledSend:
    with session_scope() as session:
        return session.scalars(select(ScheduledSend).where(ScheduledSend.step_id == "welcome")).one()


def _outbound_count() -> int:
    with session_scope() as session:
        return len(session.scalars(select(Message).where(Message.direction == "outbound")).all())


def _kill_mid_send(client, start_worker, twilio_api, stage: str):  # type: ignore[no-untyped-def]
    """Hold the carrier call at `stage`, SIGKILL the worker and its work horse there, then let the carrier go on."""
    twilio_api.hold(stage)
    worker = start_worker()
    signed_post(client, "/twilio/sms", inbound_params("+15550700001", "DEMO"))
    assert twilio_api.wait_held(1, timeout=20), worker.log()
    assert _welcome().status == "claimed"
    worker.kill_hard()
    twilio_api.release()
    return worker


def _flag_and_restart(start_worker, caplog) -> None:  # type: ignore[no-untyped-def]
    """Run the checks a live system runs after the claim timeout, with a fresh worker, and give it time to act."""
    later = datetime.now(timezone.utc) + CLAIM_TIMEOUT + timedelta(seconds=1)
    with caplog.at_level(logging.WARNING, logger="workers.jobs"):
        assert flag_stuck_claims(later) == 1
    start_worker()
    enqueue_due_sends()
    time.sleep(3)


def test_kill_between_claim_and_send(client, start_worker, twilio_api, caplog):
    _kill_mid_send(client, start_worker, twilio_api, "before_accept")
    assert wait_until(lambda: twilio_api.state.dropped == 1, timeout=20)
    assert twilio_api.messages == []

    _flag_and_restart(start_worker, caplog)
    welcome = _welcome()
    assert welcome.status == "stuck"  # flagged for a person, not sent late by itself
    assert "with no outcome" in (welcome.detail or "")
    assert f"send {welcome.id} (enrollment {welcome.enrollment_id}) flagged stuck" in caplog.text
    assert twilio_api.messages == []
    with session_scope() as session:
        stuck_events = session.scalars(select(Event).where(Event.kind == "send.stuck")).all()
    assert len(stuck_events) == 1


def test_kill_between_send_and_commit(client, start_worker, twilio_api, caplog):
    _kill_mid_send(client, start_worker, twilio_api, "after_accept")
    assert len(twilio_api.messages) == 1  # the carrier took the text; the worker never recorded it
    assert _outbound_count() == 0

    _flag_and_restart(start_worker, caplog)
    assert _welcome().status == "stuck"
    assert len(twilio_api.messages) == 1  # never sent a second time


def test_job_run_twice_sends_once(client, twilio_api):
    signed_post(client, "/twilio/sms", inbound_params("+15550700002", "DEMO"))
    send_id = _welcome().id
    assert send_scheduled(send_id) == "sent"
    assert send_scheduled(send_id) == "skipped"
    assert len(twilio_api.messages) == 1


def test_two_workers_race_one_row(client, start_worker, twilio_api, redis_client: redis.Redis):
    now = datetime.now(timezone.utc)
    signed_post(client, "/twilio/sms", inbound_params("+15550700003", "hello"))
    with session_scope() as session:
        contact_id = session.scalars(select(Contact.id)).one()
        rows = [ScheduledSend(kind="manual", contact_id=contact_id, body=f"Text {number}", due_at=now) for number in range(12)]
        session.add_all(rows)
        session.flush()
        send_ids = [row.id for row in rows]
    workers = [start_worker(), start_worker()]
    assert wait_until(lambda: all("Listening on" in worker.log() for worker in workers), timeout=20)

    # Two jobs per row, one after the other, so two idle workers take them at the same moment.
    queue = get_queue()
    jobs = []
    for send_id in send_ids:
        for copy in ("a", "b"):
            jobs.append(queue.enqueue("workers.jobs.send_scheduled", send_id, job_id=f"race-{copy}-{send_id}"))

    assert wait_until(lambda: all(job.get_status() == "finished" for job in jobs), timeout=30), workers[0].log() + workers[1].log()
    bodies = Counter(message.body for message in twilio_api.messages)
    assert bodies == Counter({f"Text {number}": 1 for number in range(12)})
    for send_id in send_ids:
        results = sorted(Job.fetch(f"race-{copy}-{send_id}", connection=redis_client).return_value() for copy in ("a", "b"))
        assert results == ["sent", "skipped"], send_id
    assert all("went out" in worker.log() for worker in workers)  # both workers took part


def test_flush_redis_while_pending_sends_all_once(client, start_worker, start_cron, twilio_api, sequences_dir: Path,
                                                   smsdrip_env, redis_client: redis.Redis):
    (sequences_dir / "demo.yaml").write_text(TWO_QUICK_STEPS)
    smsdrip_env["SMSDRIP_SWEEP_INTERVAL"] = "1"
    phones = [f"+155507010{number:02d}" for number in range(5)]
    for phone in phones:
        signed_post(client, "/twilio/sms", inbound_params(phone, "DEMO"))
    assert len(get_queue()) == 5

    redis_client.flushdb()  # Redis loses the welcome jobs before any worker ran
    worker = start_worker()
    cron = start_cron()
    assert len(twilio_api.wait_for(5, timeout=30)) >= 5, worker.log() + cron.log()

    # The tips steps now wait in Redis as scheduled jobs; lose them too.
    assert wait_until(lambda: len([s for s in _sends() if s.step_id == "tips"]) == 5, timeout=10)
    redis_client.flushdb()

    assert len(twilio_api.wait_for(10, timeout=30)) >= 10, worker.log() + cron.log()
    assert len(twilio_api.wait_for(11, timeout=4)) == 10  # nothing arrives twice
    sent = Counter((message.to, message.body) for message in twilio_api.messages)
    assert sent == Counter({(phone, body): 1 for phone in phones for body in ("Welcome!", "Tips.")})
    assert [send.status for send in _sends()] == ["sent"] * 10


def test_future_sends_stay_out_of_redis(client, twilio_api, redis_client: redis.Redis):
    signed_post(client, "/twilio/sms", inbound_params("+15550700004", "DEMO"))
    assert send_scheduled(_welcome().id) == "sent"
    tips = [send for send in _sends() if send.step_id == "tips"][0]
    assert tips.due_at - datetime.now(timezone.utc) > timedelta(hours=23)

    assert not Job.exists(send_job_id(tips.id), connection=redis_client)
    assert enqueue_due_sends() == 0
    assert not Job.exists(send_job_id(tips.id), connection=redis_client)

    # Once within the horizon of its due time, the sweep puts it in Redis as a scheduled job.
    assert enqueue_due_sends(now=tips.due_at - ENQUEUE_HORIZON + timedelta(minutes=1)) == 1
    job = Job.fetch(send_job_id(tips.id), connection=redis_client)
    assert job.get_status() == "scheduled"


def test_sweep_twice_enqueues_once(client, redis_client: redis.Redis):
    for number in range(3):
        signed_post(client, "/twilio/sms", inbound_params(f"+155507020{number:02d}", "DEMO"))
    redis_client.flushdb()
    assert enqueue_due_sends() == 3
    assert enqueue_due_sends() == 0
    assert len(Queue("smsdrip-test", connection=redis_client)) == 3
