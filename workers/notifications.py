"""Delivering rep notifications (a text to the rep's phone, or a webhook POST) as RQ jobs.

engine.assignment writes a notification row and lists its id in the session. `install_enqueue_on_commit`
makes every session enqueue those ids right after its commit, so that a worker never looks for a row
that is not committed yet. The periodic sweep re-enqueues rows still pending, in case Redis lost a job.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from redis.exceptions import RedisError
from rq import Queue, Retry
from rq.exceptions import DuplicateJobError
from rq.job import Job
from sqlalchemy import event, select, update
from sqlalchemy.orm import Session
from twilio.base.exceptions import TwilioRestException

from engine.assignment import PENDING_NOTIFICATIONS
from engine.config import get_settings
from engine.db import session_scope
from engine.models import NotificationStatus, RepNotification
from engine.phones import mask
from engine.timeline import record_event
from workers.connection import get_redis
from workers.queue import LIVE_JOB_STATES, get_queue
from workers.throttle import SendRateLimiter
from workers.transports import get_transport

logger = logging.getLogger(__name__)

NOTIFY_JOB = "workers.notifications.deliver_notification"
WEBHOOK_TIMEOUT = 10  # seconds
NOTIFY_SLOT_WAIT = 15.0  # seconds a notification text waits for a send slot before it is retried
RETRY_INTERVALS = [10, 60, 300]  # seconds between attempts
MAX_ATTEMPTS = len(RETRY_INTERVALS) + 1
# A claim older than this without an outcome belongs to a worker that died; the sweep frees it.
CLAIM_TIMEOUT = timedelta(minutes=5)


class DeliveryFailed(RuntimeError):
    """One attempt failed; RQ retries the job after the next interval."""


def notification_job_id(notification_id: int) -> str:
    return f"notify-{notification_id}"


def enqueue_notifications(notification_ids: list[int]) -> int:
    """Enqueue a job per notification; a Redis error is logged, since the periodic sweep retries."""
    count = 0
    try:
        queue = get_queue()
        for notification_id in notification_ids:
            count += _enqueue_one(queue, notification_id)
    except RedisError:
        logger.exception("enqueueing notifications %s failed; the periodic sweep will enqueue them", notification_ids)
    return count


def _enqueue_one(queue: Queue, notification_id: int) -> bool:
    job_id = notification_job_id(notification_id)
    for attempt in range(2):
        try:
            queue.enqueue(NOTIFY_JOB, notification_id, job_id=job_id, unique=True, description=job_id,
                          retry=Retry(max=len(RETRY_INTERVALS), interval=RETRY_INTERVALS), job_timeout=WEBHOOK_TIMEOUT * 3)
            return True
        except DuplicateJobError:
            existing = Job.fetch(job_id, connection=queue.connection) if Job.exists(job_id, queue.connection) else None
            if existing is None or existing.get_status(refresh=False) in LIVE_JOB_STATES or attempt > 0:
                return False
            # A finished or failed job for a row that is pending again: the row is the truth, so replace the job.
            existing.delete()
    return False


def _enqueue_after_commit(session: Session) -> None:
    ids = session.info.pop(PENDING_NOTIFICATIONS, None)
    if ids:
        enqueue_notifications(ids)


def _forget_after_rollback(session: Session) -> None:
    session.info.pop(PENDING_NOTIFICATIONS, None)


def install_enqueue_on_commit() -> None:
    """Make every session enqueue the notifications it created, right after it commits; safe to call repeatedly."""
    if not event.contains(Session, "after_commit", _enqueue_after_commit):
        event.listen(Session, "after_commit", _enqueue_after_commit)
        event.listen(Session, "after_rollback", _forget_after_rollback)


def deliver_notification(notification_id: int) -> str:
    """Send one notification; raises DeliveryFailed so RQ retries, until the last attempt marks it failed."""
    now = datetime.now(timezone.utc)
    with session_scope() as session:
        claimed = session.execute(
            update(RepNotification)
            .where(RepNotification.id == notification_id, RepNotification.status == NotificationStatus.PENDING.value)
            .values(status=NotificationStatus.CLAIMED.value, attempts=RepNotification.attempts + 1, claimed_at=now)
        ).rowcount
        if claimed != 1:
            logger.info("notification %s is not pending; skipped", notification_id)
            return "skipped"
        notification = session.get_one(RepNotification, notification_id)
        channel, target, payload, attempts = notification.channel, notification.target, dict(notification.payload), notification.attempts

    try:
        detail = _send_text(target, payload) if channel == "text" else _post_webhook(target, payload)
    except (TwilioRestException, HTTPError, URLError, OSError, SenderBusy) as error:
        return _record_failure(notification_id, attempts, _describe(error))

    with session_scope() as session:
        notification = session.get_one(RepNotification, notification_id)
        notification.status, notification.detail, notification.sent_at = NotificationStatus.SENT.value, detail, datetime.now(timezone.utc)
        record_event(session, notification.contact_id, "rep.notified", "engine", rep=notification.rep, channel=channel,
                     notification_id=notification_id)
    logger.info("notification %s to rep %s by %s delivered: %s", notification_id, notification.rep, channel, detail)
    return "sent"


class SenderBusy(RuntimeError):
    """No send slot for the sender within the longest wait; the notification is retried later."""


def _send_text(phone: str, payload: dict[str, object]) -> str:
    settings = get_settings()
    transport = get_transport(settings)
    # Notifications count against the sender's messages per second, like every other text from that number.
    limiter = SendRateLimiter(get_redis(), settings.sender, settings.mps, NOTIFY_SLOT_WAIT)
    if not limiter.wait_for_call():
        raise SenderBusy(f"no send slot within {NOTIFY_SLOT_WAIT:g} s at {settings.mps:g} messages per second")
    result = transport.send(phone, str(payload["text"]))
    logger.info("notification text %s sent to rep %s", result.sid, mask(phone))
    return f"MessageSid {result.sid}"


def _post_webhook(url: str, payload: dict[str, object]) -> str:
    request = Request(url, data=json.dumps(payload).encode(), method="POST",
                      headers={"Content-Type": "application/json", "User-Agent": "smsdrip"})
    with urlopen(request, timeout=WEBHOOK_TIMEOUT) as response:
        return f"HTTP {response.status}"


def _describe(error: Exception) -> str:
    if isinstance(error, TwilioRestException):
        return f"HTTP {error.status}, Twilio error {error.code}: {error.msg}"
    if isinstance(error, HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, SenderBusy):
        return f"sender busy: {error}"
    if isinstance(error, URLError):
        return f"unreachable: {error.reason}"
    return f"{type(error).__name__}: {error}"


def _record_failure(notification_id: int, attempts: int, detail: str) -> str:
    final = attempts >= MAX_ATTEMPTS
    with session_scope() as session:
        notification = session.get_one(RepNotification, notification_id)
        notification.detail = detail
        notification.status = (NotificationStatus.FAILED if final else NotificationStatus.PENDING).value
        if final:
            record_event(session, notification.contact_id, "rep.notification_failed", "engine", rep=notification.rep,
                         channel=notification.channel, notification_id=notification_id, detail=detail)
    if final:
        logger.error("notification %s failed after %d attempts: %s", notification_id, attempts, detail)
        return "failed"
    logger.warning("notification %s attempt %d of %d failed: %s; retrying", notification_id, attempts, MAX_ATTEMPTS, detail)
    raise DeliveryFailed(f"notification {notification_id}: {detail}")


def enqueue_pending_notifications() -> int:
    """Periodic sweep: free claims of dead workers and enqueue every pending notification.

    Freeing a claim can notify a rep twice when the worker died after sending. For a note to a
    colleague, a duplicate is better than no note.
    """
    now = datetime.now(timezone.utc)
    with session_scope() as session:
        session.execute(
            update(RepNotification)
            .where(RepNotification.status == NotificationStatus.CLAIMED.value, RepNotification.claimed_at < now - CLAIM_TIMEOUT)
            .values(status=NotificationStatus.PENDING.value, detail="claimed by a worker that stopped; retrying")
        )
        ids = list(session.scalars(select(RepNotification.id).where(RepNotification.status == NotificationStatus.PENDING.value)))
    enqueued = enqueue_notifications(ids) if ids else 0
    if enqueued:
        logger.info("sweep enqueued %d pending notifications", enqueued)
    return enqueued
