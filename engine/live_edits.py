"""Applying edits of live sequence files to sends already scheduled.

Text is rendered at send time, so new wording needs nothing here. Timing is fixed when a send is
scheduled, so after an edit each pending step send gets its due time recomputed with the same
due_time call, from the moment stored in its created_at (see engine.enrollment.schedule_step).
An enrollment waiting on a step that is no longer in the file ends as `sequence_changed`.

The periodic sweep (workers.jobs) runs this whenever the files' digest differs from the one it
applied last, and `smsdrip apply-edits` runs it at once. Running it twice changes nothing more.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.enrollment import end_enrollment, recipient_for
from engine.library import SequenceLibrary
from engine.machine import EndReason
from engine.models import Contact, Enrollment, ScheduledSend, SendKind, SendStatus
from engine.schedule import due_time

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EditsApplied:
    moved: list[tuple[int, datetime]]  # (send id, new due time) of pending sends whose due time changed
    ended: int  # enrollments ended as sequence_changed

    @property
    def rescheduled(self) -> int:
        return len(self.moved)


def apply_sequence_edits(session: Session, library: SequenceLibrary, now: datetime) -> EditsApplied:
    """Recompute the due time of every pending step send from the current files, and end enrollments whose step is gone."""
    rows = session.execute(
        select(ScheduledSend, Enrollment)
        .join(Enrollment, Enrollment.id == ScheduledSend.enrollment_id)
        .where(
            ScheduledSend.kind == SendKind.STEP.value,
            ScheduledSend.status == SendStatus.PENDING.value,
            Enrollment.ended_at.is_(None),
        )
        .order_by(ScheduledSend.id)
    ).all()
    moved: list[tuple[int, datetime]] = []
    ended = 0
    for send, enrollment in rows:
        sequence = library.get(enrollment.sequence_name)
        step = sequence.step(send.step_id) if sequence is not None and send.step_id is not None else None
        if step is None or sequence is None:
            if enrollment.ended_at is None:
                end_enrollment(session, enrollment, sequence, EndReason.SEQUENCE_CHANGED, now, actor="engine")
                logger.warning("enrollment %s ended: step %s was removed from sequence %s", enrollment.id, send.step_id, enrollment.sequence_name)
                ended += 1
            continue
        contact = session.get_one(Contact, send.contact_id)
        due = due_time(sequence, step, send.created_at, recipient_for(contact))
        if due != send.due_at:
            logger.info("send %s (enrollment %s step %s) moved from %s to %s after a file edit",
                        send.id, enrollment.id, step.id, send.due_at.isoformat(), due.isoformat())
            send.due_at = due
            moved.append((send.id, due))
    return EditsApplied(moved=moved, ended=ended)
