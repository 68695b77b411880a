"""Delivery status from the carrier's callbacks, applied so that a late callback never moves a status back."""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.models import Direction, Message
from engine.timeline import record_event

logger = logging.getLogger(__name__)

# Twilio's MessageStatus values for outbound texts, in the order they can happen.
STATUS_RANK = {"accepted": 0, "scheduled": 0, "queued": 1, "sending": 2, "sent": 3, "delivered": 4, "read": 5}
FINAL_STATUSES = frozenset({"undelivered", "failed", "canceled"})


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


def apply_status(session: Session, sid: str, status: str, error_code: int | None) -> Message | None:
    """Update the outbound message `sid` from a status callback; returns it, or None when we never sent it."""
    message = session.scalar(select(Message).where(Message.sid == sid, Message.direction == Direction.OUTBOUND.value))
    if message is None:
        logger.warning("status %s for unknown MessageSid %s ignored", status, sid)
        return None
    if status not in STATUS_RANK and status not in FINAL_STATUSES:
        logger.warning("message %s: unknown MessageStatus %r recorded on the timeline; stored status stays %s", sid, status, message.status)
    elif should_replace(message.status, status):
        logger.info("message %s: %s -> %s%s", sid, message.status, status, f" (error {error_code})" if error_code else "")
        message.status = status
    else:
        logger.info("message %s: late %s callback ignored; status stays %s", sid, status, message.status)
    if error_code is not None and message.error_code is None:
        message.error_code = error_code
    record_event(session, message.contact_id, "message.status", "carrier", message_id=message.id, sid=sid, status=status, error_code=error_code)
    return message
