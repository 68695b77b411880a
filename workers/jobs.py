"""RQ jobs: sending one due step, and the periodic sweep that keeps Redis in step with the database."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta, timezone

import requests
from rq import Retry, get_current_job
from sqlalchemy import bindparam, select, update
from twilio.base.exceptions import TwilioRestException
from urllib3.exceptions import NewConnectionError

from engine.config import Settings, get_settings
from engine.db import session_scope
from engine.delivery import purge_early_statuses
from engine.library import get_library
from engine.models import ScheduledSend, SendStatus
from engine.outbound import PreparedSend, load_send, prepare_claimed_send, record_failed, record_sent, still_wanted
from engine.phones import mask
from engine.timeline import record_event
from workers.connection import get_redis
from workers.notifications import install_enqueue_on_commit
from workers.queue import ENQUEUE_HORIZON, enqueue_send, sends_with_live_jobs
from workers.sequence_edits import apply_edited_files
from workers.throttle import SendRateLimiter
from workers.transports import SendResult, Transport, get_transport

logger = logging.getLogger(__name__)

# Rep notifications created while a job records a send (a lead qualified by its score) are enqueued
# when the job's transaction commits, in `rq worker` processes as in `smsdrip worker`.
install_enqueue_on_commit()

# A job may start a little before the row's due time (clock skew between hosts); later rows wait.
EARLY_GRACE = timedelta(seconds=2)
# A claim older than this with no outcome means the worker died mid-send; see flag_stuck_claims. It is
# well above the longest a live worker keeps a claim, which is the send job's timeout.
CLAIM_TIMEOUT = timedelta(minutes=5)
# Longest a job waits for its send slot (workers.throttle); a send that would wait longer goes back
# to pending, and the periodic sweep enqueues it again.
MAX_SLOT_WAIT = 15.0  # seconds
SWEEP_BATCH = 5000


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _worker_name() -> str:
    job = get_current_job()
    return (job.worker_name if job is not None else None) or "inline"


class TransientSendError(Exception):
    """The carrier did not take the text this time (HTTP 429 or 5xx, no connection); a later attempt may succeed."""

    def __init__(self, detail: str, http_status: int | None = None, code: int | None = None) -> None:
        super().__init__(detail)
        self.detail, self.http_status, self.code = detail, http_status, code


def send_scheduled(send_id: int) -> str | Retry:
    """Send one scheduled text if it is still due and wanted; returns what happened, for the job result.

    Returns an RQ `Retry` after HTTP 429 or 5xx while retries remain (SMSDRIP_RETRY_DELAYS), so RQ
    runs the job again after the next delay.
    """
    settings = get_settings()
    prepared = _claim_and_prepare(send_id, _utcnow())
    if prepared is None:
        return "skipped"

    # Built before the slot is reserved, so the call starts right when the slot does.
    transport = get_transport(settings)
    limiter = SendRateLimiter(get_redis(), settings.sender, settings.mps, MAX_SLOT_WAIT)
    wait = limiter.reserve()
    if wait is None:
        return _defer(send_id, settings)
    if wait > 0:
        time.sleep(wait)
        # The contact may have texted STOP, or replied, while this job waited for its slot.
        with session_scope() as session:
            if not still_wanted(session, prepared, _utcnow()):
                return "cancelled"
    call_wait = limiter.start_call()
    if call_wait is None:
        return _defer(send_id, settings)
    time.sleep(call_wait)

    try:
        result = _call_carrier(transport, prepared)
    except TransientSendError as error:
        return _retry_or_fail(settings, prepared, error)
    except TwilioRestException as error:
        _record_rejection(settings, prepared, error.status, error.code, f"HTTP {error.status}, Twilio error {error.code}: {error.msg}")
        return "failed"
    except Exception as error:
        # The request may have reached the carrier (a read timeout, a dropped connection, the job
        # timeout): the text may have gone, so a person decides instead of an automatic resend.
        _flag_stuck(prepared, f"carrier call ended with {type(error).__name__}; the text may or may not have gone out")
        return "stuck"

    # Read again after the call: a sequence file edited while the text was in flight decides what follows it.
    library = get_library(settings.sequences_dir)
    with session_scope() as session:
        next_send = record_sent(session, prepared, result.sid, result.status, result.from_number, library, _utcnow())
    if next_send is not None:
        enqueue_send(next_send.id, next_send.due_at)
    return "sent"


def _defer(send_id: int, settings: Settings) -> str:
    _release_claim(send_id, f"no send slot within {MAX_SLOT_WAIT:g} s at {settings.mps:g} messages per second")
    logger.info("send %s deferred: sender busy for more than %g s; the sweep enqueues it again", send_id, MAX_SLOT_WAIT)
    return "deferred"


def _call_carrier(transport: Transport, prepared: PreparedSend) -> SendResult:
    """Call the transport, turning the errors after which the text surely did not go out into TransientSendError."""
    try:
        return transport.send(prepared.to, prepared.body)
    except TwilioRestException as error:
        if error.status == 429 or error.status >= 500:
            raise TransientSendError(f"HTTP {error.status}, Twilio error {error.code}", error.status, error.code) from None
        raise
    except requests.ConnectTimeout:
        raise TransientSendError("connecting to the carrier timed out") from None
    except requests.ConnectionError as error:
        # Only a refused or failed connection proves the request never left. Other connection
        # errors (a reset after sending) are ambiguous, so the caller flags the send for a person.
        if _is_connect_failure(error):
            raise TransientSendError("could not connect to the carrier") from None
        raise


def _is_connect_failure(error: BaseException) -> bool:
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, NewConnectionError):
            return True
        cause = getattr(cause, "reason", None) or cause.__context__
    return False


def _retry_or_fail(settings: Settings, prepared: PreparedSend, error: TransientSendError) -> str | Retry:
    job = get_current_job()
    # Outside RQ (a call in the current process) nothing would run a Retry, so the first failure is final.
    retries_done = (job.number_of_retries or 0) if job is not None else len(settings.retry_delays)
    if retries_done >= len(settings.retry_delays):
        _record_rejection(settings, prepared, error.http_status, error.code, f"{error.detail}; gave up after {retries_done} retries")
        return "failed"

    delay = settings.retry_delays[retries_done]
    _release_claim(prepared.send_id, f"{error.detail}; retry {retries_done + 1} of {len(settings.retry_delays)} in {delay} s")
    logger.warning("send %s: %s; retry %d of %d in %d s (job %s)", prepared.send_id, error.detail, retries_done + 1,
                   len(settings.retry_delays), delay, job.id if job is not None else "-")
    return Retry(max=len(settings.retry_delays), interval=list(settings.retry_delays))


# Built once at import, because building this statement costs about as much CPU as running it.
_CLAIM = (
    update(ScheduledSend)
    .where(
        ScheduledSend.id == bindparam("send_id"),
        ScheduledSend.status == SendStatus.PENDING.value,
        ScheduledSend.due_at <= bindparam("due_by"),
    )
    .values(status=SendStatus.CLAIMED.value, claimed_at=bindparam("claim_time"), claimed_by=bindparam("worker"))
    # The claim runs first in a new session, so no loaded row needs to be synchronised with it.
    .execution_options(synchronize_session=False)
)


def _claim_and_prepare(send_id: int, now: datetime) -> PreparedSend | None:
    """Claim the row with a conditional update, then check it is still wanted and render its text, in one transaction.

    Only one worker's update can move the row from pending to claimed, so a job run twice, or two
    workers on one row, send once. The claim commits before the carrier call, so a worker that dies
    during the call leaves the row claimed, for flag_stuck_claims, and never pending.
    """
    with session_scope() as session:
        claimed = session.execute(
            _CLAIM, {"send_id": send_id, "due_by": now + EARLY_GRACE, "claim_time": now, "worker": _worker_name()}
        ).rowcount
        if claimed != 1:
            logger.info("send %s is not pending or not yet due; skipped", send_id)
            return None
        prepared = prepare_claimed_send(session, load_send(session, send_id), get_library(get_settings().sequences_dir), now)
    if prepared is not None:
        logger.info("send %s claimed for contact %s (%s)", send_id, prepared.contact_id, mask(prepared.to))
    return prepared


def _release_claim(send_id: int, detail: str) -> None:
    """Put a claimed send back to pending, for a send that surely did not reach the carrier."""
    with session_scope() as session:
        session.execute(
            update(ScheduledSend)
            .where(ScheduledSend.id == send_id, ScheduledSend.status == SendStatus.CLAIMED.value)
            .values(status=SendStatus.PENDING.value, claimed_at=None, claimed_by=None, detail=detail)
        )


def _record_rejection(settings: Settings, prepared: PreparedSend, http_status: int | None, code: int | None, detail: str) -> None:
    library = get_library(settings.sequences_dir)
    with session_scope() as session:
        next_send = record_failed(session, prepared, settings.sender, http_status, code, detail, library, _utcnow(), settings.undeliverable_after)
    if next_send is not None:
        enqueue_send(next_send.id, next_send.due_at)


def _flag_stuck(prepared: PreparedSend, detail: str) -> None:
    with session_scope() as session:
        send = session.get_one(ScheduledSend, prepared.send_id)
        send.status, send.detail = SendStatus.STUCK.value, detail
        record_event(session, send.contact_id, "send.stuck", "engine", send_id=send.id, step=send.step_id)
    logger.error("send %s (contact %s, enrollment %s) flagged stuck: %s; not resent automatically",
                 prepared.send_id, prepared.contact_id, prepared.enrollment_id, detail)


def enqueue_due_sends(now: datetime | None = None) -> int:
    """Periodic sweep: enqueue pending sends due within the horizon, flag claims that never finished, and apply edited sequence files.

    Redis may lose jobs in a flush or a restart without persistence, but the rows are the truth. Job ids
    derived from the rows make this safe to run often and from several schedulers.
    """
    now = now or _utcnow()
    flag_stuck_claims(now)
    apply_edited_files(now)
    with session_scope() as session:
        purge_early_statuses(session, now)
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
