"""`smsdrip report`: the funnel, delivery rate and first-response time, built from texts sent the usual way."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from engine.db import session_scope
from engine.models import Contact, Direction, Message, ScheduledSend
from tests.conftest import ACCOUNT_SID, inbound_params, signed_post
from tests.lead_fixtures import ApiClient, consent, utcnow
from workers.jobs import send_scheduled

ANN, BEN, CAT, DAN, EVE = (f"+1555010000{index}" for index in range(1, 6))


def _send_due() -> None:
    """Run the send job for every send that is due now, as a worker would."""
    with session_scope() as session:
        due = session.scalars(select(ScheduledSend.id).where(ScheduledSend.status == "pending", ScheduledSend.due_at <= utcnow())).all()
    for send_id in due:
        assert send_scheduled(send_id) == "sent"


def _answer_delay(phone: str, delay: timedelta) -> None:
    """Move the person's first response to `delay` after the lead's first inbound text."""
    with session_scope() as session:
        contact_id = session.scalars(select(Contact.id).where(Contact.phone == phone)).one()
        first_in = session.scalars(select(Message.created_at).where(Message.contact_id == contact_id, Message.direction == Direction.INBOUND.value)).first()
        response_id = session.scalars(
            select(Message.id).join(ScheduledSend, Message.send_id == ScheduledSend.id)
            .where(Message.contact_id == contact_id, ScheduledSend.actor.startswith("rep:"))
        ).one()
        session.execute(update(Message).where(Message.id == response_id).values(created_at=first_in + delay))


def _status(api: ApiClient, sid: str, status: str, error_code: str | None = None) -> int:
    """Post a signed delivery status callback, as the carrier does."""
    params = {"MessageSid": sid, "MessageStatus": status, "AccountSid": ACCOUNT_SID, "ApiVersion": "2010-04-01"}
    if error_code is not None:
        params["ErrorCode"] = error_code
    return signed_post(api.client, "/twilio/status", params).status_code


@pytest.fixture
def funnel(api: ApiClient, twilio_api) -> ApiClient:
    for phone in (ANN, BEN, CAT, DAN, EVE):
        assert api.post("/api/leads", {"phone": phone, "source": "crm", "sequence": "demo", "consent": consent()}).status_code == 201
    _send_due()
    welcome = {message.to: message for message in twilio_api.messages}
    assert [_status(api, welcome[ANN].sid, status) for status in ("sent", "delivered")] == [204, 204]
    assert _status(api, welcome[BEN].sid, "delivered") == 204
    assert _status(api, welcome[DAN].sid, "undelivered", error_code="30003") == 204

    for phone, text in ((ANN, "Is there a trial?"), (DAN, "wrong number?"), (EVE, "price?")):
        assert signed_post(api.client, "/twilio/sms", inbound_params(phone, text)).status_code == 200
    for phone in (ANN, EVE):
        assert api.post(f"/api/contacts/{phone}/messages", {"text": "Happy to help!", "rep": "alice"}).status_code == 202
    _send_due()
    _answer_delay(ANN, timedelta(seconds=90))
    _answer_delay(EVE, timedelta(minutes=30))

    api.post(f"/api/contacts/{BEN}/status", {"status": "qualified"})
    api.post(f"/api/contacts/{BEN}/convert")
    with session_scope() as session:
        session.scalars(select(Contact).where(Contact.phone == CAT)).one().opted_out_at = utcnow()
    return api


def test_report_json_funnel(funnel: ApiClient, run_cli):
    result = run_cli("report", "--json")
    assert result.returncode == 0, result.stderr
    [demo] = json.loads(result.stdout)["sequences"]
    assert demo["sequence"] == "demo"
    assert demo["enrolled"] == 5
    assert demo["steps"] == {"welcome": 5, "tips": 0}
    assert demo["replied"] == 3
    assert demo["qualified"] == 1
    assert demo["converted"] == 1
    assert demo["opted_out"] == 1
    assert demo["undeliverable"] == 1
    assert (demo["messages_sent"], demo["delivered"], demo["delivery_failed"]) == (5, 2, 1)
    assert demo["delivery_rate"] == pytest.approx(2 / 3)
    assert demo["median_first_response_seconds"] == pytest.approx((90 + 1800) / 2)
    assert (demo["responded"], demo["awaiting_response"]) == (2, 1)


def test_report_text_table(funnel: ApiClient, run_cli):
    result = run_cli("report", "--sequence", "demo")
    lines = result.stdout.splitlines()
    assert lines[0] == "Funnel over all time"
    assert "  enrolled                        5" in lines
    assert "  step welcome                    5  (100%)" in lines
    assert "  replied                         3  (60%)" in lines
    assert "  delivery rate               66.7% (2 delivered, 1 failed, 2 without a final status, of 5 sent)" in lines
    assert "  first response by a person  median 15m 45s over 2 leads (1 still waiting for a person's first response)" in lines


def test_report_since_excludes_older(funnel: ApiClient, run_cli):
    tomorrow = (utcnow() + timedelta(days=1)).date().isoformat()
    result = run_cli("report", "--since", tomorrow, "--json")
    assert json.loads(result.stdout) == {"since": f"{tomorrow}T00:00:00+00:00", "sequences": []}


def test_report_unknown_sequence_empty(funnel: ApiClient, run_cli):
    [other] = json.loads(run_cli("report", "--sequence", "webinar", "--json").stdout)["sequences"]
    assert (other["sequence"], other["enrolled"], other["steps"]) == ("webinar", 0, {})
