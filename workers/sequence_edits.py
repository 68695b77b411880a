"""Applying edited sequence files to sends already waiting, from the periodic sweep.

Each sweep compares the digest of the sequence files with the digest it applied last (kept in
Redis). When they differ, pending step sends get their due times recomputed from the current files
(engine.live_edits) and their RQ jobs are moved to the new time. A lost Redis key only means the
edits are applied once more, which changes nothing.
"""

from __future__ import annotations

import logging
from datetime import datetime

from redis.exceptions import RedisError
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from engine.config import get_settings
from engine.db import session_scope
from engine.library import get_library
from engine.live_edits import EditsApplied, apply_sequence_edits
from engine.sequence_files import SequenceFileError
from workers.connection import get_redis
from workers.queue import enqueue_send, get_queue, send_job_id

logger = logging.getLogger(__name__)

# Per queue, so deployments that share a Redis server keep their own record.
APPLIED_DIGEST_KEY = "smsdrip:{queue}:sequence-files:applied-digest"


def apply_edited_files(now: datetime) -> EditsApplied | None:
    """Apply the sequence files to waiting sends if they changed since the last sweep, returning None when nothing changed."""
    try:
        library = get_library(get_settings().sequences_dir)
    except SequenceFileError as error:
        logger.error("sequence files are invalid, so edits are not applied to waiting sends: %s", error)
        return None
    connection = get_redis()
    key = APPLIED_DIGEST_KEY.format(queue=get_settings().queue_name)
    if connection.get(key) == library.digest.encode():
        return None

    with session_scope() as session:
        result = apply_sequence_edits(session, library, now)
    for send_id, due_at in result.moved:
        reschedule_send(send_id, due_at, now)
    connection.set(key, library.digest)
    if result.moved or result.ended:
        logger.info("sequence files changed: %d waiting sends moved to the new timing, %d enrollments ended as sequence_changed",
                    len(result.moved), result.ended)
    return result


def reschedule_send(send_id: int, due_at: datetime, now: datetime) -> bool:
    """Move the send's scheduled job to `due_at` and return whether a job is now enqueued for it.

    Only a job waiting in the scheduled registry is replaced. A queued or running job checks the row's
    due time when it claims it, so a send moved later is skipped there and enqueued again by the sweep.
    """
    queue = get_queue()
    try:
        job = Job.fetch(send_job_id(send_id), connection=queue.connection)
        if job.get_status(refresh=True) == JobStatus.SCHEDULED:
            job.delete()
    except NoSuchJobError:
        pass
    except RedisError:
        logger.exception("send %s: moving its job to %s failed; the sweep enqueues it from the database", send_id, due_at.isoformat())
        return False
    return enqueue_send(send_id, due_at, now=now, queue=queue)
