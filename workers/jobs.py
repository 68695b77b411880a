"""RQ jobs: sending one due step, and the periodic sweep that keeps Redis in step with the database."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from rq import get_current_job
from sqlalchemy import select, update
from twilio.base.exceptions import TwilioRestException

from engine.config import get_settings
from engine.db import session_scope
from engine.library import get_library
from engine.models import ScheduledSend, SendStatus
from engine.outbound import PreparedSend, prepare_claimed_send, record_sent
from engine.phones import mask
from engine.timeline import record_event
from workers.queue import ENQUEUE_HORIZON, enqueue_send, sends_with_live_jobs
from workers.transports import get_transport

logger = logging.getLogger(__name__)

# A job may start a little before the row's due time (clock skew between hosts); later rows wait.
EARLY_GRACE = timedelta(seconds=2)
# A claim older than this with no outcome means the worker died mid-send; see flag_stuck_claims.
CLAIM_TIMEOUT = timedelta(minutes=5)
SWEEP_BATCH = 5000


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _worker_name() -> str:
    job = get_current_job()
    return (job.worker_name if job is not None else None) or "inline"


def send_scheduled(send_id: int) -> str:
    """Send one scheduled text if it is still due and wanted; returns what happened, for the job result."""
    prepared = _claim_and_prepare(send_id, _utcnow())
    if prepared is None:
        return "skipped"

    try:
        result = get_transport(get_settings()).send(prepared.to, prepared.body)
    except TwilioRestException as error:
        _record_rejection(prepared, error)
        return "failed"

    library = get_library(get_settings().sequences_dir)
    with session_scope() as session:
        next_send = record_sent(session, prepared, result.sid, result.status, result.from_number, library, _utcnow())
    if next_send is not None:
        enqueue_send(next_send.id, next_send.due_at)
    return "sent"


def _claim_and_prepare(send_id: int, now: datetime) -> PreparedSend | None:
    """Claim the row with a conditional update, then check it is still wanted and render its text.

    Only one worker's update can move the row from pending to claimed, so a job run twice, or two
    workers on one row, send once.
    """
    with session_scope() as session:
        claimed = session.execute(
            update(ScheduledSend)
            .where(
                ScheduledSend.id == send_id,
                ScheduledSend.status == SendStatus.PENDING.value,
                ScheduledSend.due_at <= now + EARLY_GRACE,
            )
            .values(status=SendStatus.CLAIMED.value, claimed_at=now, claimed_by=_worker_name())
        ).rowcount
        if claimed != 1:
            logger.info("send %s is not pending or not yet due; skipped", send_id)
            return None
        send = session.get_one(ScheduledSend, send_id)
        prepared = prepare_claimed_send(session, send, get_library(get_settings().sequences_dir), now)
    if prepared is not None:
        logger.info("send %s claimed for contact %s (%s)", send_id, prepared.contact_id, mask(prepared.to))
    return prepared


def _record_rejection(prepared: PreparedSend, error: TwilioRestException) -> None:
    now = _utcnow()
    with session_scope() as session:
        send = session.get_one(ScheduledSend, prepared.send_id)
        send.status, send.finished_at = SendStatus.FAILED.value, now
        send.detail = f"HTTP {error.status}, Twilio error {error.code}: {error.msg}"
        record_event(session, prepared.contact_id, "message.failed", "carrier", send_id=send.id, status=error.status, code=error.code)
    logger.error("send %s rejected by the carrier: HTTP %s, error %s", prepared.send_id, error.status, error.code)


def enqueue_due_sends() -> int:
    """Periodic sweep: enqueue pending sends due within the horizon, and flag claims that never finished.

    Redis may lose jobs in a flush or a restart without persistence, but the rows are the truth. Job ids
    derived from the rows make this safe to run often and from several schedulers.
    """
    now = _utcnow()
    flag_stuck_claims(now)
    with session_scope() as session:
        rows = session.execute(
            select(ScheduledSend.id, ScheduledSend.due_at)
            .where(ScheduledSend.status == SendStatus.PENDING.value, ScheduledSend.due_at <= now + ENQUEUE_HORIZON)
            .order_by(ScheduledSend.due_at)
            .limit(SWEEP_BATCH)
        ).all()
    queued = sends_with_live_jobs([send_id for send_id, _due_at in rows])
    enqueued = sum(enqueue_send(send_id, due_at, now=now) for send_id, due_at in rows if send_id not in queued)
    if enqueued:
        logger.info("sweep enqueued %d of %d pending sends due by %s", enqueued, len(rows), (now + ENQUEUE_HORIZON).isoformat())
    return enqueued


def flag_stuck_claims(now: datetime) -> int:
    """Mark sends claimed long ago without an outcome as stuck, for a person to check.

    The worker may have died after the carrier accepted the text, so resending could text twice.
    A late text that a person chose to send is better than a duplicate.
    """
    with session_scope() as session:
        stuck = session.scalars(
            select(ScheduledSend).where(
                ScheduledSend.status == SendStatus.CLAIMED.value, ScheduledSend.claimed_at < now - CLAIM_TIMEOUT
            )
        ).all()
        for send in stuck:
            send.status = SendStatus.STUCK.value
            send.detail = f"claimed by {send.claimed_by} at {send.claimed_at.isoformat() if send.claimed_at else '?'} with no outcome"
            record_event(session, send.contact_id, "send.stuck", "engine", send_id=send.id, step=send.step_id)
            logger.warning("send %s (enrollment %s) flagged stuck: %s; not resent automatically", send.id, send.enrollment_id, send.detail)
    return len(stuck)
