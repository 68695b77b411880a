"""Putting due sends on the RQ queue, keyed by the database row so repeats are harmless."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta, timezone

from redis.exceptions import RedisError, WatchError
from rq import Queue
from rq.exceptions import DuplicateJobError
from rq.job import Job, JobStatus

from engine.bulk_capture import NewSend
from engine.config import get_settings
from engine.models import ScheduledSend
from workers.connection import get_redis

logger = logging.getLogger(__name__)

# Redis only holds sends due within this horizon; the periodic job enqueues later ones as they come near,
# so Redis memory does not grow with the number of future sends.
ENQUEUE_HORIZON = timedelta(minutes=10)
# A job still in one of these states will run; any other state means it is done and may be replaced.
LIVE_JOB_STATES = {JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.STARTED, JobStatus.DEFERRED}
SEND_JOB = "workers.jobs.send_scheduled"
# Seconds: the longest waits for a send slot and a call start (workers.jobs.MAX_SLOT_WAIT each), the
# carrier call (workers.transports.TWILIO_HTTP_TIMEOUT) and the database work around them.
SEND_JOB_TIMEOUT = 90


def get_queue() -> Queue:
    return Queue(get_settings().queue_name, connection=get_redis())


def send_job_id(send_id: int) -> str:
    return f"send-{send_id}"


def enqueue_send(send_id: int, due_at: datetime, now: datetime | None = None, queue: Queue | None = None) -> bool:
    """Enqueue the job for one send if it is due within the horizon; returns whether a job was added.

    The job id comes from the row, and RQ's `unique` refuses a second live job with that id, so the
    webhook, the worker and the periodic job can all call this for the same row.
    """
    now = now or datetime.now(timezone.utc)
    if due_at - now > ENQUEUE_HORIZON:
        return False
    queue = queue or get_queue()
    job_id = send_job_id(send_id)
    options = {"job_id": job_id, "unique": True, "job_timeout": SEND_JOB_TIMEOUT, "description": job_id}
    for attempt in range(2):
        try:
            if due_at <= now:
                queue.enqueue(SEND_JOB, send_id, **options)
            else:
                queue.enqueue_at(due_at, SEND_JOB, send_id, **options)
            logger.debug("send %s enqueued as job %s for %s", send_id, job_id, due_at.isoformat())
            return True
        except DuplicateJobError:
            existing = Job.fetch(job_id, connection=queue.connection) if Job.exists(job_id, queue.connection) else None
            if existing is not None and existing.get_status(refresh=False) in LIVE_JOB_STATES:
                return False
            if attempt == 0 and existing is not None:
                # A finished or failed job for a row that is still pending: the row is the truth, so replace it.
                logger.warning("send %s: replacing %s job %s", send_id, existing.get_status(refresh=False), job_id)
                existing.delete()
    return False


def sends_with_live_jobs(send_ids: Sequence[int], queue: Queue | None = None) -> set[int]:
    """Return the sends whose job will still run, reading every job's status in one pipelined round trip.

    The periodic job calls this first, so rows already on the queue cost one HGET each instead of a
    refused enqueue plus a fetch of the job.
    """
    queue = queue or get_queue()
    with queue.connection.pipeline(transaction=False) as pipeline:
        for send_id in send_ids:
            pipeline.hget(Job.key_for(send_job_id(send_id)), "status")
        statuses = pipeline.execute()
    live = {state.value for state in LIVE_JOB_STATES}
    return {send_id for send_id, status in zip(send_ids, statuses) if status is not None and status.decode() in live}


def enqueue_sends(sends: Iterable[ScheduledSend], now: datetime | None = None) -> int:
    """Enqueue each send that is due soon; a Redis error is logged, since the periodic job will retry."""
    count = 0
    try:
        queue = get_queue()
        for send in sends:
            count += enqueue_send(send.id, send.due_at, now=now, queue=queue)
    except RedisError:
        logger.exception("enqueueing sends failed; the periodic job will enqueue them from the database")
    return count


def enqueue_new_sends(sends: Sequence[NewSend], now: datetime | None = None, queue: Queue | None = None) -> int:
    """Enqueue the jobs of sends just stored, those due now in one Redis transaction; returns how many were added.

    Job ids and uniqueness are those of enqueue_send: WATCH on the job keys makes the transaction fail
    when another process enqueues one of them first, and then each send goes through enqueue_send.
    Sends due within the horizon but later go through enqueue_send too; later ones stay for the
    periodic job. A Redis error is logged, since the periodic job will retry.
    """
    now = now or datetime.now(timezone.utc)
    due = [send for send in sends if send.due_at <= now]
    later = [send for send in sends if now < send.due_at <= now + ENQUEUE_HORIZON]
    count = 0
    try:
        queue = queue or get_queue()
        unqueued = []
        if due:
            added, unqueued = _enqueue_due_at_once(queue, due)
            count += added
        for send in [*unqueued, *later]:
            count += enqueue_send(send.id, send.due_at, now=now, queue=queue)
    except RedisError:
        logger.exception("enqueueing %d new sends failed; the periodic job will enqueue them from the database", len(sends))
    return count


def _enqueue_due_at_once(queue: Queue, sends: list[NewSend]) -> tuple[int, list[NewSend]]:
    """Enqueue the sends whose job id is unused with Queue.enqueue_many; returns how many, and the sends left to enqueue_send."""
    keys = [Job.key_for(send_job_id(send.id)) for send in sends]
    with queue.connection.pipeline() as pipeline:
        try:
            pipeline.watch(*keys)
            # EXISTS with many keys returns how many exist: one command in the usual case that none does.
            existing = _existing_keys(queue, keys) if queue.connection.exists(*keys) else set()
            # A job left from an earlier run needs enqueue_send's checks: it may still be live, or done and replaceable.
            fresh = [send for send, key in zip(sends, keys) if key not in existing]
            pipeline.multi()
            queue.enqueue_many([
                Queue.prepare_data(SEND_JOB, args=(send.id,), timeout=SEND_JOB_TIMEOUT, description=send_job_id(send.id),
                                   job_id=send_job_id(send.id))
                for send in fresh
            ], pipeline=pipeline)
            pipeline.execute()
        except WatchError:
            logger.info("a job of %d new sends was enqueued by another process meanwhile; enqueueing them one by one", len(sends))
            return 0, sends
    logger.debug("%d new sends enqueued in one transaction", len(fresh))
    return len(fresh), [send for send, key in zip(sends, keys) if key in existing]


def _existing_keys(queue: Queue, keys: list[str]) -> set[str]:
    with queue.connection.pipeline(transaction=False) as check:
        for key in keys:
            check.exists(key)
        return {key for key, exists in zip(keys, check.execute()) if exists}
