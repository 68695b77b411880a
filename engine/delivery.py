"""Delivery status from the carrier, applied so that a late callback never moves a status back, and carrier error codes."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, select, text, update
from sqlalchemy.orm import Session

from engine.compliance import opt_out, stop_all_texts
from engine.library import SequenceLibrary
from engine.machine import EndReason
from engine.models import Contact, Direction, EarlyStatus, Message
from engine.timeline import record_event

logger = logging.getLogger(__name__)

# Twilio's MessageStatus values for outbound texts, in the order they can happen.
STATUS_RANK = {"accepted": 0, "scheduled": 0, "queued": 1, "sending": 2, "sent": 3, "delivered": 4, "read": 5}
FINAL_STATUSES = frozenset({"undelivered", "failed", "canceled"})
FAILED_STATUSES = frozenset({"undelivered", "failed"})
DELIVERED_STATUSES = frozenset({"delivered", "read"})

# Twilio error codes that say the number cannot take texts: 30003 unreachable handset, 30004 blocked,
# 30005 unknown or inactive number, 30006 landline or unreachable carrier, 30007 carrier filtering,
# 30008 unknown error, 21211 invalid To number, 21614 To number is not a mobile number.
UNDELIVERABLE_CODES = frozenset({30003, 30004, 30005, 30006, 30007, 30008, 21211, 21614})
# Twilio error 21610: the recipient texted STOP to this sender, so the carrier refuses to text them.
UNSUBSCRIBED_CODE = 21610
# Early status callbacks older than this never matched a text of ours and are purged.
EARLY_STATUS_TTL = timedelta(days=1)


def should_replace(current: str | None, new: str) -> bool:
    """Whether a callback with `new` may overwrite `current`."""
    if current is None or current == new:
        return current is None
    if current in FINAL_STATUSES:
        return False
    if new in FINAL_STATUSES:
        # delivered or read outranks a failure report that arrives late
        return STATUS_RANK.get(current, -1) < STATUS_RANK["delivered"]
    if new not in STATUS_RANK:
        return False
    return STATUS_RANK[new] > STATUS_RANK.get(current, -1)


def apply_status(
    session: Session, sid: str, status: str, error_code: int | None, library: SequenceLibrary, now: datetime, undeliverable_after: int
) -> Message | None:
    """Update the outbound message `sid` from a status callback; returns it, or None when it is not recorded (yet).

    The carrier may call back before the worker committed the message. Such a callback is kept as
    an EarlyStatus, and apply_early_statuses applies it when the message is recorded.
    """
    message = _locked_message(session, sid)
    if message is None:
        # Under the per-MessageSid lock, either the worker's commit is visible now or the worker
        # will find the EarlyStatus row once this transaction commits.
        _lock_sid(session, sid)
        message = _locked_message(session, sid)
    if message is None:
        session.add(EarlyStatus(sid=sid, status=status[:40], error_code=error_code, received_at=now))
        logger.info("status %s for MessageSid %s arrived before its message was recorded; kept until it is", status, sid)
        return None
    _apply(session, message, status, error_code, library, now, undeliverable_after)
    return message


# Built once, because the worker runs it for every text it records. EarlyStatus rows are never loaded
# as objects, so the DELETE has no session state to synchronise.
_TAKE_EARLY_STATUSES = (
    delete(EarlyStatus)
    .where(EarlyStatus.sid == bindparam("sid"))
    .returning(EarlyStatus.id, EarlyStatus.status, EarlyStatus.error_code)
    .execution_options(synchronize_session=False)
)


def apply_early_statuses(session: Session, message: Message, library: SequenceLibrary, now: datetime, undeliverable_after: int) -> int:
    """Apply the status callbacks that arrived for `message` before it was recorded; returns how many there were."""
    assert message.sid is not None
    # Without autoflush, the changes waiting in the session go out in the caller's next flush, together
    # with the rest, instead of in a flush of their own before these statements.
    with session.no_autoflush:
        _lock_sid(session, message.sid)
        early = session.execute(_TAKE_EARLY_STATUSES, {"sid": message.sid}).all()
    for _id, status, error_code in sorted(early):
        _apply(session, message, status, error_code, library, now, undeliverable_after)
    return len(early)


def purge_early_statuses(session: Session, now: datetime) -> int:
    """Delete early status callbacks that never matched a text of ours (texts sent outside smsdrip)."""
    result = session.execute(delete(EarlyStatus).where(EarlyStatus.received_at < now - EARLY_STATUS_TTL))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _locked_message(session: Session, sid: str) -> Message | None:
    # FOR UPDATE (PostgreSQL; SQLite transactions take the write lock at BEGIN) applies callbacks for
    # one message that arrive at once one after the other.
    return session.scalar(
        select(Message).where(Message.sid == sid, Message.direction == Direction.OUTBOUND.value).with_for_update()
    )


def _lock_sid(session: Session, sid: str) -> None:
    """Serialise a status callback and the worker recording its message; a no-op on SQLite, whose writers take turns."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:sid))"), {"sid": sid})


def _apply(
    session: Session, message: Message, status: str, error_code: int | None, library: SequenceLibrary, now: datetime, undeliverable_after: int
) -> None:
    """Apply one callback to the message. A failure counts towards the number being undeliverable once
    per message: only the callback that moves it into a failed state counts."""
    sid = message.sid
    changed = False
    if status not in STATUS_RANK and status not in FINAL_STATUSES:
        logger.warning("message %s: unknown MessageStatus %r recorded on the timeline; stored status stays %s", sid, status, message.status)
    elif should_replace(message.status, status):
        logger.info("message %s: %s -> %s%s", sid, message.status, status, f" (error {error_code})" if error_code else "")
        message.status = status
        changed = True
    else:
        logger.info("message %s: late %s callback ignored; status stays %s", sid, status, message.status)
    if error_code is not None and message.error_code is None:
        message.error_code = error_code
    record_event(session, message.contact_id, "message.status", "carrier", message_id=message.id, sid=sid, status=status, error_code=error_code)

    if changed and status in FAILED_STATUSES and error_code is not None:
        apply_carrier_error(session, message.contact_id, error_code, library, now, undeliverable_after, sid=sid)
    elif changed and status in DELIVERED_STATUSES:
        reset_delivery_failures(session, message.contact_id)


def apply_carrier_error(
    session: Session, contact_id: int, code: int, library: SequenceLibrary, now: datetime, undeliverable_after: int,
    sid: str | None = None, send_id: int | None = None,
) -> None:
    """Act on a carrier error for a text to the contact, from the Messages API or a status callback."""
    if code == UNSUBSCRIBED_CODE:
        contact = session.get_one(Contact, contact_id)
        opt_out(session, contact, library, now, method="carrier", actor="carrier", source=str(code), message_sid=sid)
    elif code in UNDELIVERABLE_CODES:
        count_delivery_failure(session, contact_id, code, library, now, undeliverable_after, sid=sid, send_id=send_id)


def count_delivery_failure(
    session: Session, contact_id: int, code: int, library: SequenceLibrary, now: datetime, undeliverable_after: int,
    sid: str | None = None, send_id: int | None = None,
) -> bool:
    """Count one failed delivery; at `undeliverable_after` in a row, mark the number undeliverable and stop its sequences.

    Returns whether this failure made the number undeliverable.
    """
    # An UPDATE ... RETURNING counts right when two failures for one contact are recorded at once.
    failures = session.execute(
        update(Contact).where(Contact.id == contact_id).values(delivery_failures=Contact.delivery_failures + 1).returning(Contact.delivery_failures)
    ).scalar_one()
    contact = session.get_one(Contact, contact_id)
    logger.info("contact %s: failed delivery %d of %d allowed (error %s, message %s, send %s)",
                contact_id, failures, undeliverable_after, code, sid, send_id)
    if failures < undeliverable_after or contact.undeliverable:
        return False

    contact.undeliverable_at = now
    record_event(session, contact_id, "contact.undeliverable", "carrier", error_code=code, failures=failures, sid=sid)
    cancelled = stop_all_texts(session, contact_id, library, EndReason.UNDELIVERABLE, now, actor="carrier")
    logger.warning("contact %s marked undeliverable after %d failed deliveries (last error %s); %d pending sends cancelled",
                   contact_id, failures, code, cancelled)
    return True


def reset_delivery_failures(session: Session, contact_id: int) -> None:
    """Reset the contact's failure count, because a delivered text shows the number works."""
    session.execute(update(Contact).where(Contact.id == contact_id, Contact.delivery_failures != 0).values(delivery_failures=0))


def clear_undeliverable(session: Session, contact: Contact, now: datetime) -> None:
    """Lift the undeliverable mark, because a text from the contact shows the number works again."""
    if not contact.undeliverable and not contact.delivery_failures:
        return
    if contact.undeliverable:
        record_event(session, contact.id, "contact.deliverable", "contact")
        logger.info("contact %s texted in; no longer marked undeliverable", contact.id)
    contact.undeliverable_at = None
    contact.delivery_failures = 0
