"""Editing a live sequence file: enrollments keep their step by id, new text and timing apply, removed steps end enrollments."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from engine.db import session_scope
from engine.live_edits import EditsApplied, apply_sequence_edits
from engine.models import Enrollment, Event, ScheduledSend, SendStatus
from engine.outbound import load_send, prepare_claimed_send, record_sent
from smsdrip.cli import main
from tests.conftest import OUR_NUMBER
from tests.sequence_helpers import ANY_HOUR, library, outbound_bodies, pending_sends, send_due, text_in, use_sequences

T0 = datetime(2026, 3, 4, 15, 0, tzinfo=timezone.utc)  # Wednesday 10:00 in New York

DEMO = """\
name: demo
keywords: [DEMO]
steps:
  - id: welcome
    after: 0
    text: Welcome.
  - id: tips
    after: 1d
    text: Tip one.
  - id: call
    after: 1d
    text: Call us.
"""


def enrollment_state() -> tuple[str, bool]:
    with session_scope() as session:
        enrollment = session.scalars(select(Enrollment)).one()
        return enrollment.state, enrollment.ended_at is None


def start(sequences_dir: Path) -> None:
    use_sequences(sequences_dir, demo=DEMO)
    text_in("demo", T0)
    send_due(T0)


def test_new_text_applies_to_pending_step(smsdrip_env, sequences_dir: Path):
    start(sequences_dir)
    use_sequences(sequences_dir, demo=DEMO.replace("Tip one.", "Tip one, reworded."))
    send_due(T0 + timedelta(days=1))
    assert outbound_bodies() == ["Welcome.", "Tip one, reworded."]


def test_removed_step_ends_enrollment_at_send(smsdrip_env, sequences_dir: Path, caplog: pytest.LogCaptureFixture):
    start(sequences_dir)
    use_sequences(sequences_dir, demo=DEMO.replace("  - id: tips\n    after: 1d\n    text: Tip one.\n", ""))
    with caplog.at_level(logging.WARNING, logger="engine.outbound"):
        assert send_due(T0 + timedelta(days=1)) == []
    assert enrollment_state() == ("sequence_changed", False)
    assert "step tips was removed from demo" in caplog.text


def test_removed_step_recorded_on_timeline(smsdrip_env, sequences_dir: Path):
    start(sequences_dir)
    use_sequences(sequences_dir, demo=DEMO.replace("  - id: tips\n    after: 1d\n    text: Tip one.\n", ""))
    send_due(T0 + timedelta(days=1))
    with session_scope() as session:
        event = session.scalars(select(Event).where(Event.kind == "enrollment.ended")).one()
    assert event.data["reason"] == "sequence_changed"


def test_reordered_steps_follow_new_order(smsdrip_env, sequences_dir: Path):
    start(sequences_dir)
    reordered = DEMO.replace("  - id: call\n    after: 1d\n    text: Call us.\n", "").replace(
        "  - id: tips\n", "  - id: call\n    after: 1d\n    text: Call us.\n  - id: tips\n")
    use_sequences(sequences_dir, demo=reordered)
    # The enrollment waits on tips, which is now the last step: it completes after it.
    send_due(T0 + timedelta(days=1))
    assert outbound_bodies() == ["Welcome.", "Tip one."]
    assert enrollment_state() == ("completed", False)


def test_step_removed_in_flight_ends_enrollment(smsdrip_env, sequences_dir: Path):
    start(sequences_dir)
    now = T0 + timedelta(days=1)
    with session_scope() as session:
        send = session.scalars(select(ScheduledSend).where(ScheduledSend.status == SendStatus.PENDING.value)).one()
        send.status = SendStatus.CLAIMED.value
        prepared = prepare_claimed_send(session, load_send(session, send.id), library(), now)
        assert prepared is not None
        use_sequences(sequences_dir, demo=DEMO.replace("  - id: tips\n    after: 1d\n    text: Tip one.\n", ""))
        assert record_sent(session, prepared, "SM" + uuid.uuid4().hex, "queued", OUR_NUMBER, library(), now) is None
    assert enrollment_state() == ("sequence_changed", False)


def test_new_timing_moves_pending_send(smsdrip_env, sequences_dir: Path):
    start(sequences_dir)
    use_sequences(sequences_dir, demo=DEMO.replace("after: 1d\n    text: Tip one.", "after: 2h\n    text: Tip one."))
    with session_scope() as session:
        result = apply_sequence_edits(session, library(), T0 + timedelta(minutes=1))
    assert pending_sends() == [("tips", T0 + timedelta(hours=2))]
    assert result == EditsApplied(moved=[(2, T0 + timedelta(hours=2))], ended=0)


def test_unchanged_timing_keeps_due_time(smsdrip_env, sequences_dir: Path):
    start(sequences_dir)
    with session_scope() as session:
        result = apply_sequence_edits(session, library(), T0 + timedelta(minutes=1))
    assert result == EditsApplied(moved=[], ended=0)
    assert pending_sends() == [("tips", T0 + timedelta(days=1))]


def test_edit_pass_ends_removed_step(smsdrip_env, sequences_dir: Path):
    start(sequences_dir)
    use_sequences(sequences_dir, demo=DEMO.replace("  - id: tips\n    after: 1d\n    text: Tip one.\n", ""))
    with session_scope() as session:
        result = apply_sequence_edits(session, library(), T0 + timedelta(minutes=1))
    assert result == EditsApplied(moved=[], ended=1)
    assert enrollment_state() == ("sequence_changed", False)
    assert pending_sends() == []


def test_apply_edits_command(smsdrip_env, sequences_dir: Path):
    start(sequences_dir)
    use_sequences(sequences_dir, demo=DEMO.replace("after: 1d\n    text: Tip one.", "after: 2h\n    text: Tip one."))
    result = CliRunner().invoke(main, ["apply-edits"], catch_exceptions=False)
    assert result.exit_code == 0
    assert result.stdout == "1 waiting send moved to the new timing, 0 enrollments ended as sequence_changed\n"
    assert pending_sends() == [("tips", T0 + timedelta(hours=2))]


def test_apply_edits_command_rejects_broken_files(smsdrip_env, sequences_dir: Path):
    start(sequences_dir)
    use_sequences(sequences_dir, demo=DEMO.replace("after: 1d", "after: soon", 1))
    result = CliRunner().invoke(main, ["apply-edits"], catch_exceptions=False)
    assert result.exit_code == 1
    assert result.stdout.splitlines()[-1] == "sequence files have problems: fix them (see smsdrip check) and run apply-edits again"
    assert pending_sends() == [("tips", T0 + timedelta(days=1))]


ANYTIME = "name: demo\nkeywords: [DEMO]\n" + ANY_HOUR + DEMO[DEMO.index("steps:"):DEMO.index("  - id: call")].replace("after: 1d", "after: 8m")


def test_sweep_applies_new_timing(smsdrip_env, sequences_dir: Path):
    from workers.jobs import enqueue_due_sends

    start(sequences_dir)
    use_sequences(sequences_dir, demo=DEMO.replace("after: 1d\n    text: Tip one.", "after: 2h\n    text: Tip one."))
    enqueue_due_sends(T0 + timedelta(minutes=1))
    assert pending_sends() == [("tips", T0 + timedelta(hours=2))]


def test_sweep_applies_each_edit_once(smsdrip_env, sequences_dir: Path):
    from workers.sequence_edits import apply_edited_files

    start(sequences_dir)
    first = apply_edited_files(T0 + timedelta(minutes=1))
    assert first == EditsApplied(moved=[], ended=0)
    assert apply_edited_files(T0 + timedelta(minutes=2)) is None
    use_sequences(sequences_dir, demo=DEMO.replace("after: 1d\n    text: Tip one.", "after: 3h\n    text: Tip one."))
    assert apply_edited_files(T0 + timedelta(minutes=3)) == EditsApplied(moved=[(2, T0 + timedelta(hours=3))], ended=0)
    assert apply_edited_files(T0 + timedelta(minutes=4)) is None


def test_sweep_moves_scheduled_job_earlier(smsdrip_env, sequences_dir: Path):
    from rq.job import Job, JobStatus
    from rq.registry import ScheduledJobRegistry

    from workers.jobs import enqueue_due_sends
    from workers.queue import get_queue

    now = datetime.now(timezone.utc).replace(microsecond=0)
    use_sequences(sequences_dir, demo=ANYTIME)
    text_in("demo", now)
    send_due(now)
    enqueue_due_sends(now)
    queue = get_queue()
    assert Job.fetch("send-2", connection=queue.connection).get_status() == JobStatus.SCHEDULED
    registry = ScheduledJobRegistry(queue=queue)
    assert registry.get_scheduled_time("send-2") == now + timedelta(minutes=8)

    use_sequences(sequences_dir, demo=ANYTIME.replace("after: 8m", "after: 3m"))
    enqueue_due_sends(now + timedelta(seconds=1))
    assert pending_sends() == [("tips", now + timedelta(minutes=3))]
    assert registry.get_scheduled_time("send-2") == now + timedelta(minutes=3)
