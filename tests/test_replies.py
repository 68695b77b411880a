"""Replies on a real database: reply words run their actions, other replies stop or continue, re-enrollment."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import select

from engine.config import reset_settings
from engine.db import session_scope
from engine.models import Contact, Enrollment, Event, Message, ScheduledSend
from engine.routing import reset_routing_cache
from tests.conftest import inbound_params, signed_post, wait_until
from tests.sequence_helpers import ANY_HOUR, PROSPECT, pending_sends, send_due, text_in, use_sequences

T0 = datetime(2026, 3, 4, 15, 0, tzinfo=timezone.utc)  # Wednesday 10:00 in New York

DEMO = """\
name: demo
keywords: [DEMO]
steps:
  - id: welcome
    after: 0
    text: "Hi {first_name|there}! Want a call? Reply YES or NO."
    replies:
      yes: {next: call, status: engaged, reply: "Great, {first_name|friend}! Calling soon."}
      no: {end: lost, status: lost, reply: "No problem."}
      later: {assign: true}
  - id: tips
    after: 1d
    text: Here is a tip.
  - id: call
    after: 1h
    text: Here is the call link.
    replies:
      booked: {end: converted}
      again: {next: tips}
"""


def enrollments() -> list[tuple[str, str, bool]]:
    with session_scope() as session:
        rows = session.scalars(select(Enrollment).order_by(Enrollment.id)).all()
        return [(row.sequence_name, row.state, row.ended_at is None) for row in rows]


def contact_status() -> str:
    with session_scope() as session:
        return session.scalars(select(Contact.status)).one()


def event_kinds() -> list[str]:
    with session_scope() as session:
        return list(session.scalars(select(Event.kind).order_by(Event.id)).all())


def _outbound_count() -> int:
    with session_scope() as session:
        return len(session.scalars(select(Message.id).where(Message.direction == "outbound")).all())


def start_demo(sequences_dir: Path, text: str = DEMO) -> None:
    use_sequences(sequences_dir, demo=text)
    text_in("demo", T0)
    assert send_due(T0) == ["Hi there! Want a call? Reply YES or NO."]


def test_reply_word_answers_inline(client, sequences_dir: Path):
    use_sequences(sequences_dir, demo=DEMO)
    signed_post(client, "/twilio/sms", inbound_params(PROSPECT, "DEMO"))
    send_due(datetime.now(timezone.utc))

    response = signed_post(client, "/twilio/sms", inbound_params(PROSPECT, "Yes please!"))
    assert response.get_data(as_text=True) == (
        '<?xml version="1.0" encoding="UTF-8"?><Response><Message>Great, friend! Calling soon.</Message></Response>'
    )


def test_reply_word_answer_repeated_to_duplicate(client, sequences_dir: Path):
    use_sequences(sequences_dir, demo=DEMO)
    signed_post(client, "/twilio/sms", inbound_params(PROSPECT, "DEMO"))
    send_due(datetime.now(timezone.utc))
    params = inbound_params(PROSPECT, "no")
    first = signed_post(client, "/twilio/sms", params).get_data(as_text=True)
    second = signed_post(client, "/twilio/sms", params).get_data(as_text=True)
    assert "<Message>No problem.</Message>" in first
    assert second == first


def test_reply_word_next_jumps_from_reply_time(smsdrip_env, sequences_dir: Path):
    start_demo(sequences_dir)
    reply_at = T0 + timedelta(minutes=5)
    outcome = text_in("YES", reply_at)

    assert [send.step_id for send in outcome.sends] == ["call"]
    assert pending_sends() == [("call", reply_at + timedelta(hours=1))]
    assert enrollments() == [("demo", "call", True)]


def test_reply_word_next_cancels_pending_step(smsdrip_env, sequences_dir: Path):
    start_demo(sequences_dir)
    text_in("yes", T0 + timedelta(minutes=5))
    with session_scope() as session:
        tips = session.scalars(select(ScheduledSend).where(ScheduledSend.step_id == "tips")).one()
    assert tips.status == "cancelled"
    assert tips.detail == "reply moved the enrollment to step call"


def test_reply_word_sets_lead_status(smsdrip_env, sequences_dir: Path):
    start_demo(sequences_dir)
    text_in("yes", T0 + timedelta(minutes=5))
    assert contact_status() == "engaged"
    assert "status.changed" in event_kinds()


def test_reply_word_end_stops_sequence(smsdrip_env, sequences_dir: Path):
    start_demo(sequences_dir)
    outcome = text_in("No!", T0 + timedelta(minutes=5))
    assert outcome.reply == "No problem."
    assert enrollments() == [("demo", "lost", False)]
    assert pending_sends() == []
    assert contact_status() == "lost"


def _route_all_to(tmp_path: Path, monkeypatch, rep: str) -> None:  # type: ignore[no-untyped-def]
    """Point SMSDRIP_ROUTING at a routing file that gives every lead to `rep`, without notifying anyone."""
    routing = tmp_path / "routing.yaml"
    routing.write_text(f"reps:\n  - {{name: {rep}, email: rep@example.com}}\nrules:\n  - {{name: all, rep: {rep}}}\nnotify:\n  text: false\n")
    monkeypatch.setenv("SMSDRIP_ROUTING", str(routing))
    reset_settings()
    reset_routing_cache()


def test_reply_assign_gives_owner(smsdrip_env, sequences_dir: Path, tmp_path: Path, monkeypatch):
    _route_all_to(tmp_path, monkeypatch, "dana")
    start_demo(sequences_dir)
    outcome = text_in("later", T0 + timedelta(minutes=5))
    assert outcome.reply is None
    kinds = event_kinds()
    assert kinds.index("lead.assignment_requested") < kinds.index("contact.assigned")
    with session_scope() as session:
        assert session.scalars(select(Contact.owner)).one() == "dana"
    assert enrollments() == [("demo", "tips", True)]


def test_reply_answer_names_new_owner(smsdrip_env, sequences_dir: Path, tmp_path: Path, monkeypatch):
    _route_all_to(tmp_path, monkeypatch, "Dana")
    start_demo(sequences_dir, DEMO.replace("later: {assign: true}", 'later: {assign: true, reply: "{owner_name|Someone} will call you."}'))
    outcome = text_in("later", T0 + timedelta(minutes=5))
    assert outcome.reply == "Dana will call you."


def test_reply_assign_without_rep(smsdrip_env, sequences_dir: Path):
    start_demo(sequences_dir)  # no routing file in the working directory, so no rep to assign
    text_in("later", T0 + timedelta(minutes=5))
    assert "lead.assignment_requested" in event_kinds()
    with session_scope() as session:
        assert session.scalars(select(Contact.owner)).one() is None
    assert enrollments() == [("demo", "tips", True)]


def test_other_reply_stops_by_default(smsdrip_env, sequences_dir: Path):
    start_demo(sequences_dir)
    text_in("who is this?", T0 + timedelta(minutes=5))
    assert enrollments() == [("demo", "replied", False)]
    assert pending_sends() == []


def test_other_reply_continues_when_configured(smsdrip_env, sequences_dir: Path):
    start_demo(sequences_dir, DEMO.replace("keywords: [DEMO]", "keywords: [DEMO]\non_reply: continue"))
    text_in("who is this?", T0 + timedelta(minutes=5))
    assert enrollments() == [("demo", "tips", True)]
    assert [step for step, _due in pending_sends()] == ["tips"]


def test_reply_applies_to_last_step_received(smsdrip_env, sequences_dir: Path):
    start_demo(sequences_dir)
    send_due(T0 + timedelta(days=1))  # tips goes out; it has no reply words
    text_in("yes", T0 + timedelta(days=1, minutes=5))
    assert enrollments() == [("demo", "replied", False)]


def test_completed_enrollment_answers_last_step(smsdrip_env, sequences_dir: Path):
    start_demo(sequences_dir)
    text_in("yes", T0 + timedelta(minutes=5))
    send_due(T0 + timedelta(hours=2))  # call, the last step: the enrollment completes
    assert enrollments() == [("demo", "completed", False)]

    text_in("Booked", T0 + timedelta(hours=3))
    assert enrollments() == [("demo", "converted", False)]


def test_completed_enrollment_reopened_by_next(smsdrip_env, sequences_dir: Path):
    start_demo(sequences_dir)
    text_in("yes", T0 + timedelta(minutes=5))
    send_due(T0 + timedelta(hours=2))
    reply_at = T0 + timedelta(hours=3)
    text_in("again", reply_at)
    assert enrollments() == [("demo", "tips", True)]
    assert pending_sends() == [("tips", reply_at + timedelta(days=1))]


def test_conversation_without_sequence_changes_nothing(smsdrip_env, sequences_dir: Path):
    use_sequences(sequences_dir, demo=DEMO)
    outcome = text_in("hello", T0)
    assert outcome.reply is None
    assert enrollments() == []


def test_keyword_again_ignored_while_enrolled(smsdrip_env, sequences_dir: Path):
    start_demo(sequences_dir)
    outcome = text_in("DEMO", T0 + timedelta(minutes=5))
    assert outcome.sends == []
    assert enrollments() == [("demo", "tips", True)]


def test_keyword_again_restarts_when_configured(smsdrip_env, sequences_dir: Path):
    start_demo(sequences_dir, DEMO.replace("keywords: [DEMO]", "keywords: [DEMO]\nre_enroll: restart"))
    again = T0 + timedelta(minutes=5)
    outcome = text_in("DEMO", again)
    assert [send.step_id for send in outcome.sends] == ["welcome"]
    assert enrollments() == [("demo", "restarted", False), ("demo", "welcome", True)]
    assert pending_sends() == [("welcome", again)]


def test_keyword_enrolls_again_after_end(smsdrip_env, sequences_dir: Path):
    start_demo(sequences_dir)
    text_in("no", T0 + timedelta(minutes=5))
    outcome = text_in("demo", T0 + timedelta(days=3))
    assert [send.step_id for send in outcome.sends] == ["welcome"]
    assert enrollments() == [("demo", "lost", False), ("demo", "welcome", True)]


QUICK_BRANCH = "name: demo\nkeywords: [DEMO]\n" + ANY_HOUR + """\
steps:
  - id: welcome
    after: 0
    text: Want the details? Reply YES.
    replies:
      yes: {next: details, reply: "On their way!"}
  - id: reminder
    after: 1d
    text: Reminder.
  - id: details
    after: 2s
    text: Here are the details.
"""


def test_reply_word_branch_end_to_end(client, start_worker, twilio_api, sequences_dir: Path):
    use_sequences(sequences_dir, demo=QUICK_BRANCH)
    worker = start_worker()
    signed_post(client, "/twilio/sms", inbound_params(PROSPECT, "DEMO"))
    assert len(twilio_api.wait_for(1, timeout=30)) == 1, worker.log()
    # The carrier receives the text a moment before the worker records it, and a person replies later than that.
    assert wait_until(lambda: _outbound_count() == 1)

    response = signed_post(client, "/twilio/sms", inbound_params(PROSPECT, "yes"))
    assert "<Message>On their way!</Message>" in response.get_data(as_text=True)
    messages = twilio_api.wait_for(2, timeout=30)
    assert [message.body for message in messages] == ["Want the details? Reply YES.", "Here are the details."]
    assert wait_until(lambda: enrollments() == [("demo", "completed", False)]), enrollments()
