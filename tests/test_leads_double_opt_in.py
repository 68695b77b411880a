"""Double opt-in for captured leads: one confirmation text, no step until YES, then the sequence starts."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from engine.db import session_scope
from engine.inbound import InboundMessage, handle_inbound
from engine.keywords import KeywordIndex, KeywordRule
from engine.leads import capture_lead, parse_lead
from engine.library import SequenceLibrary
from engine.lifecycle import current_routing
from engine.models import ConsentRecord, Contact, DoubleOptIn, Enrollment, ScheduledSend
from engine.optin import CONFIRMATION_TEXT
from engine.sequences import Sequence, Step
from tests.conftest import OUR_NUMBER
from tests.lead_fixtures import INSIDE_WINDOW_HOURS, RoutingFile, consent, utcnow, zone_where_local_hour

PHONE = "+15550100001"


@pytest.fixture
def library() -> SequenceLibrary:
    webinar = Sequence(
        name="webinar",
        double_opt_in=True,
        keywords=("WEBINAR",),
        steps=(Step("welcome", timedelta(0), "You're in! The webinar starts Thursday."), Step("reminder", timedelta(days=1), "See you soon.")),
    )
    rules = [KeywordRule(keyword="WEBINAR", sequence_name="webinar")]
    return SequenceLibrary(sequences={"webinar": webinar}, keywords=KeywordIndex(rules))


def _capture(library: SequenceLibrary, **extra):
    now = utcnow()
    lead = parse_lead({"phone": PHONE, "source": "web_form", "sequence": "webinar", "consent": consent(), **extra}, "US", now)
    with session_scope() as session:
        result = capture_lead(session, lead, now, "api:test", library, current_routing())
        return result.enrollment, result.opt_in_requested, list(result.sends), result.not_enrolled


def _text(library: SequenceLibrary, body: str) -> list[ScheduledSend]:
    message = InboundMessage(sid="SM" + uuid.uuid4().hex, from_number=PHONE, to_number=OUR_NUMBER, body=body)
    with session_scope() as session:
        return handle_inbound(session, message, library, utcnow()).sends


def _step_sends() -> list[str | None]:
    with session_scope() as session:
        return list(session.scalars(select(ScheduledSend.step_id).where(ScheduledSend.kind == "step")))


def test_capture_asks_for_yes(routing: RoutingFile, library: SequenceLibrary):
    enrollment, requested, sends, not_enrolled = _capture(library)
    assert (enrollment, requested) == (None, True)
    assert not_enrolled == "waiting for the lead to reply YES"
    assert [(send.kind, send.body) for send in sends] == [("manual", CONFIRMATION_TEXT)]
    assert _step_sends() == []


def test_second_capture_asks_once(routing: RoutingFile, library: SequenceLibrary):
    _capture(library)
    _enrollment, _requested, sends, not_enrolled = _capture(library)
    assert sends == []
    assert not_enrolled == "waiting for the lead to reply YES to an earlier request"
    with session_scope() as session:
        assert len(session.scalars(select(DoubleOptIn)).all()) == 1


def test_other_reply_confirms_nothing(routing: RoutingFile, library: SequenceLibrary):
    _capture(library)
    assert _text(library, "what is this?") == []
    assert _step_sends() == []


def test_yes_starts_sequence(routing: RoutingFile, library: SequenceLibrary):
    _capture(library)
    sends = _text(library, "Yes!")
    assert [send.step_id for send in sends] == ["welcome"]
    with session_scope() as session:
        enrollment = session.scalars(select(Enrollment)).one()
        request = session.scalars(select(DoubleOptIn)).one()
        assert (enrollment.sequence_name, enrollment.state) == ("webinar", "welcome")
        assert request.confirmed_at is not None
        assert request.enrollment_id == enrollment.id


def test_yes_recorded_in_consent_history(routing: RoutingFile, library: SequenceLibrary):
    _capture(library)
    _text(library, "Yes!")
    with session_scope() as session:
        records = session.scalars(select(ConsentRecord).order_by(ConsentRecord.id)).all()
        assert [(record.method, record.keyword, record.source) for record in records] == [
            ("api", None, "api:test: web_form"),
            ("sms", "YES", "double opt-in"),
        ]
        assert records[1].message_sid is not None and records[1].message_sid.startswith("SM")


def test_opted_out_lead_not_asked(routing: RoutingFile, library: SequenceLibrary):
    with session_scope() as session:
        session.add(Contact(phone=PHONE, fields={}, opted_out_at=utcnow()))
    _enrollment, requested, sends, not_enrolled = _capture(library)
    assert (requested, sends) == (False, [])
    assert "START" in not_enrolled


def test_confirmation_sent_by_worker(routing: RoutingFile, library: SequenceLibrary, start_worker, twilio_api):
    from workers.queue import enqueue_sends

    with session_scope() as session:
        session.add(Contact(phone=PHONE, fields={}, time_zone=zone_where_local_hour(INSIDE_WINDOW_HOURS)))
    worker = start_worker()
    _enrollment, _requested, sends, _not_enrolled = _capture(library)
    enqueue_sends(sends)

    messages = twilio_api.wait_for(1, timeout=30)
    assert [(m.to, m.body) for m in messages] == [(PHONE, CONFIRMATION_TEXT)], worker.log()
