"""Opt-out, opt-in and HELP: word classification, and their effects through signed webhooks on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from engine.compliance import ComplianceIntent, classify, opt_in
from engine.config import reset_settings
from engine.db import session_scope
from engine.models import ConsentRecord, Contact, Enrollment, Event, Message, ScheduledSend
from tests.conftest import inbound_params, signed_post

OPT_OUT_EXACT = ["STOP", "STOPALL", "STOP ALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT", "OPT OUT"]
OPT_OUT_SPELLINGS = ["stop", "Stop!", "  STOP.  ", "stop all", "Opt-out", "opt out!!", "unsubscribe.", "End", "quit?", "Cancel 🙏", "ＳＴＯＰ"]
OPT_OUT_SENTENCES = [
    "please stop texting me", "Unsubscribe me", "STOP texting me!", "I want to opt out", "revoke my consent please", "stop. stop it.",
    "ok please stop all these texts",  # six words: the longest short message
]
NOT_OPT_OUT = [
    "end of the day works",  # END, CANCEL and QUIT only count alone
    "can I cancel my order",
    "I quit smoking",
    "stopped by the store yesterday",  # STOPPED is not STOP
    "please tell me more about the plan and then we stop to think",  # seven words or more is conversation
    "ok please stop all these texts now",  # seven words
    "DEMO",
    "",
]


@pytest.mark.parametrize("body", OPT_OUT_EXACT + OPT_OUT_SPELLINGS + OPT_OUT_SENTENCES)
def test_classify_opt_out_words(body: str):
    match = classify(body, opted_out=False)
    assert match is not None, body
    assert match.intent is ComplianceIntent.OPT_OUT


@pytest.mark.parametrize("body", NOT_OPT_OUT)
def test_classify_ordinary_text_is_none(body: str):
    assert classify(body, opted_out=False) is None


@pytest.mark.parametrize("body", ["START", "start", "Unstop!"])
def test_classify_opt_in_words(body: str):
    match = classify(body, opted_out=False)
    assert match is not None
    assert match.intent is ComplianceIntent.OPT_IN


def test_classify_yes_only_when_opted_out():
    assert classify("yes", opted_out=False) is None
    match = classify("Yes!", opted_out=True)
    assert match is not None
    assert match.intent is ComplianceIntent.OPT_IN


@pytest.mark.parametrize("body", ["HELP", "help", "Info?"])
def test_classify_help_words(body: str):
    match = classify(body, opted_out=True)
    assert match is not None
    assert match.intent is ComplianceIntent.HELP


def test_classify_help_in_sentence_is_none():
    assert classify("can you help me", opted_out=False) is None


def _twiml_message(response) -> str | None:  # type: ignore[no-untyped-def]
    body = response.get_data(as_text=True)
    if "<Message>" not in body:
        return None
    return body.split("<Message>", 1)[1].split("</Message>", 1)[0]


def _contact(phone: str) -> Contact:
    with session_scope() as session:
        return session.scalars(select(Contact).where(Contact.phone == phone)).one()


def test_stop_variants_opt_out_contact(client):
    for index, body in enumerate(OPT_OUT_EXACT + OPT_OUT_SPELLINGS + OPT_OUT_SENTENCES):
        phone = f"+1555020{index:04d}"
        assert signed_post(client, "/twilio/sms", inbound_params(phone, "DEMO")).status_code == 200
        stop_sid = "SM" + f"{index:032x}"
        response = signed_post(client, "/twilio/sms", inbound_params(phone, body, sid=stop_sid))
        assert response.status_code == 200, body

        reply = _twiml_message(response)
        assert reply is not None, body
        assert reply.startswith("Acme Test: "), body
        assert "no more messages" in reply, body
        assert "Reply START to resubscribe" in reply, body

        contact = _contact(phone)
        assert contact.opted_out_at is not None, body
        assert contact.opt_out_source is not None and contact.opt_out_source.startswith("sms:"), body
        with session_scope() as session:
            states = session.scalars(select(Enrollment.state).where(Enrollment.contact_id == contact.id)).all()
            sends = session.scalars(select(ScheduledSend.status).where(ScheduledSend.contact_id == contact.id)).all()
            consent = session.scalars(
                select(ConsentRecord).where(ConsentRecord.contact_id == contact.id, ConsentRecord.action == "opt_out")
            ).all()
        assert states == ["opted_out"], body
        assert sends == ["cancelled"], body
        assert [(record.method, record.message_sid) for record in consent] == [("sms", stop_sid)], body


def test_stop_ends_every_live_enrollment(client, sequences_dir):
    (sequences_dir / "trial.yaml").write_text(
        "name: trial\nkeywords: [TRIAL]\nsteps:\n  - id: hello\n    after: 1h\n    text: Hello\n  - id: later\n    after: 1d\n    text: Later\n"
    )
    phone = "+15550300001"
    signed_post(client, "/twilio/sms", inbound_params(phone, "DEMO"))
    signed_post(client, "/twilio/sms", inbound_params(phone, "TRIAL"))
    signed_post(client, "/twilio/sms", inbound_params(phone, "stop"))

    contact = _contact(phone)
    with session_scope() as session:
        enrollments = session.scalars(select(Enrollment).where(Enrollment.contact_id == contact.id)).all()
        pending = session.scalars(select(ScheduledSend).where(ScheduledSend.status == "pending")).all()
    assert sorted(e.sequence_name for e in enrollments) == ["demo", "trial"]
    assert all(e.state == "opted_out" and e.ended_at is not None for e in enrollments)
    assert pending == []


def test_repeated_stop_confirms_once(client):
    phone = "+15550300002"
    first = signed_post(client, "/twilio/sms", inbound_params(phone, "STOP"))
    second = signed_post(client, "/twilio/sms", inbound_params(phone, "stop please"))
    assert _twiml_message(first) is not None
    assert _twiml_message(second) is None
    with session_scope() as session:
        opt_outs = session.scalars(select(ConsentRecord).where(ConsentRecord.action == "opt_out")).all()
    assert len(opt_outs) == 1


def test_duplicate_stop_answers_same_reply(client):
    params = inbound_params("+15550300003", "STOP")
    first = signed_post(client, "/twilio/sms", params)
    again = signed_post(client, "/twilio/sms", params)
    assert again.get_data(as_text=True) == first.get_data(as_text=True)
    with session_scope() as session:
        inbound = session.scalars(select(Message).where(Message.direction == "inbound")).all()
        consent = session.scalars(select(ConsentRecord)).all()
    assert len(inbound) == 1
    assert len(consent) == 1


def test_opt_out_confirmation_on_timeline(client):
    phone = "+15550300004"
    params = inbound_params(phone, "STOP")
    signed_post(client, "/twilio/sms", params)
    contact = _contact(phone)
    with session_scope() as session:
        replies = session.scalars(select(Message).where(Message.contact_id == contact.id, Message.direction == "outbound")).all()
        events = session.scalars(select(Event).where(Event.contact_id == contact.id, Event.kind == "message.out")).all()
    assert len(replies) == 1
    assert (replies[0].to_number, replies[0].from_number) == (phone, params["To"])
    assert "unsubscribed" in replies[0].body
    assert [event.data["in_reply_to"] for event in events] == [params["MessageSid"]]


def test_keyword_from_opted_out_enrolls_nothing(client):
    phone = "+15550300005"
    signed_post(client, "/twilio/sms", inbound_params(phone, "STOP"))
    response = signed_post(client, "/twilio/sms", inbound_params(phone, "DEMO"))
    assert _twiml_message(response) is None
    with session_scope() as session:
        enrollments = session.scalars(select(Enrollment)).all()
        sends = session.scalars(select(ScheduledSend)).all()
    assert enrollments == []
    assert sends == []


@pytest.mark.parametrize("word", ["START", "unstop", "Yes"])
def test_opt_in_word_resubscribes(client, word: str):
    phone = "+15550300006"
    signed_post(client, "/twilio/sms", inbound_params(phone, "DEMO"))
    signed_post(client, "/twilio/sms", inbound_params(phone, "STOP"))
    params = inbound_params(phone, word)
    response = signed_post(client, "/twilio/sms", params)

    reply = _twiml_message(response)
    assert reply is not None
    assert "resubscribed" in reply
    contact = _contact(phone)
    assert contact.opted_out_at is None
    assert contact.opted_in_at is not None
    assert contact.opt_in_source == f"sms:{word.upper()}"
    with session_scope() as session:
        actions = session.scalars(select(ConsentRecord.action).order_by(ConsentRecord.id)).all()
        live = session.scalars(select(Enrollment).where(Enrollment.ended_at.is_(None))).all()
        pending = session.scalars(select(ScheduledSend).where(ScheduledSend.status == "pending")).all()
    assert actions == ["opt_in", "opt_out", "opt_in"]  # DEMO, STOP, then the opt-in word
    assert live == []  # no sequence restarts by itself
    assert pending == []


def test_yes_not_opted_out_is_reply(client):
    phone = "+15550300007"
    signed_post(client, "/twilio/sms", inbound_params(phone, "DEMO"))
    response = signed_post(client, "/twilio/sms", inbound_params(phone, "YES"))
    assert _twiml_message(response) is None
    with session_scope() as session:
        state = session.scalar(select(Enrollment.state))
        opt_ins = session.scalars(select(ConsentRecord.keyword).where(ConsentRecord.action == "opt_in")).all()
    assert state == "replied"
    assert opt_ins == ["DEMO"]


def test_keyword_opt_in_recorded_with_sid(client):
    phone = "+15550300008"
    params = inbound_params(phone, "demo please")
    signed_post(client, "/twilio/sms", params)
    with session_scope() as session:
        record = session.scalars(select(ConsentRecord)).one()
    contact = _contact(phone)
    assert (record.action, record.method, record.keyword, record.message_sid) == ("opt_in", "sms", "DEMO", params["MessageSid"])
    assert contact.opt_in_source == "sms:DEMO"


def test_api_opt_in_recorded_with_source(client):
    phone = "+15550300009"
    signed_post(client, "/twilio/sms", inbound_params(phone, "hello"))
    contact = _contact(phone)
    with session_scope() as session:
        contact = session.get_one(Contact, contact.id)
        opt_in(session, contact, contact.created_at, method="api", actor="api", source="web form")
    with session_scope() as session:
        record = session.scalars(select(ConsentRecord)).one()
    assert (record.method, record.source, record.keyword) == ("api", "web form", None)
    assert _contact(phone).opt_in_source == "api:web form"


@pytest.mark.parametrize("opted_out", [False, True])
def test_help_answers_with_help_text(client, opted_out: bool):
    phone = "+15550300010"
    if opted_out:
        signed_post(client, "/twilio/sms", inbound_params(phone, "STOP"))
    response = signed_post(client, "/twilio/sms", inbound_params(phone, "help"))
    reply = _twiml_message(response)
    assert reply is not None
    assert reply.startswith("Acme Test: ")
    assert "Msg &amp; data rates may apply" in reply  # XML-escaped inside TwiML
    assert "Reply STOP to opt out" in reply
    assert "a person will answer" in reply
    assert _contact(phone).opted_out is opted_out


def test_help_text_from_configuration(client, monkeypatch):
    monkeypatch.setenv("SMSDRIP_HELP_TEXT", "Acme: call 555-0100. Msg & data rates may apply. Reply STOP to opt out.")
    reset_settings()
    response = signed_post(client, "/twilio/sms", inbound_params("+15550300011", "INFO"))
    assert _twiml_message(response) == "Acme: call 555-0100. Msg &amp; data rates may apply. Reply STOP to opt out."


def test_carrier_mode_records_without_replies(client, monkeypatch):
    monkeypatch.setenv("SMSDRIP_OPT_OUT_REPLIES", "carrier")
    reset_settings()
    phone = "+15550300012"
    signed_post(client, "/twilio/sms", inbound_params(phone, "DEMO"))
    stop = signed_post(client, "/twilio/sms", inbound_params(phone, "STOP"))
    assert _twiml_message(stop) is None
    assert _contact(phone).opted_out
    start = signed_post(client, "/twilio/sms", inbound_params(phone, "START"))
    assert _twiml_message(start) is None
    assert not _contact(phone).opted_out
    help_answer = signed_post(client, "/twilio/sms", inbound_params(phone, "HELP"))
    assert _twiml_message(help_answer) is not None
    with session_scope() as session:
        actions = session.scalars(select(ConsentRecord.action).order_by(ConsentRecord.id)).all()
    assert actions == ["opt_in", "opt_out", "opt_in"]


def test_help_answered_at_night(smsdrip_env, sequences_dir):
    """HELP goes inline whatever the hour: 03:00 in New York, far outside quiet hours."""
    from datetime import datetime, timezone

    from tests.sequence_helpers import text_in

    outcome = text_in("HELP", datetime(2026, 3, 4, 8, 0, tzinfo=timezone.utc), from_number="+12125550123")
    assert outcome.reply is not None
    assert "Msg & data rates may apply" in outcome.reply
