"""Bad webhook input answered with 400 and nothing written; a database that is down answered with 503."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import func, select

from engine.config import reset_settings
from engine.db import reset_engine, session_scope
from engine.models import Base
from tests.conftest import ACCOUNT_SID, inbound_params, signed_post

PHONE = "+15550600001"


def _row_counts() -> dict[str, int]:
    with session_scope() as session:
        return {table.name: int(session.scalar(select(func.count()).select_from(table)) or 0) for table in Base.metadata.sorted_tables}


def _without(params: dict[str, str], name: str) -> dict[str, str]:
    return {key: value for key, value in params.items() if key != name}


BAD_INBOUND = {
    "missing MessageSid": (_without(inbound_params(PHONE, "DEMO"), "MessageSid"), "missing form field MessageSid"),
    "malformed MessageSid": ({**inbound_params(PHONE, "DEMO"), "MessageSid": "SM123"}, "invalid MessageSid"),
    "missing From": (_without(inbound_params(PHONE, "DEMO"), "From"), "missing form field From"),
    "invalid From": ({**inbound_params(PHONE, "DEMO"), "From": "+1555"}, "invalid From"),
    "letters in From": ({**inbound_params(PHONE, "DEMO"), "From": "call me"}, "invalid From"),
    "missing To": (_without(inbound_params(PHONE, "DEMO"), "To"), "missing form field To"),
    "missing Body": (_without(inbound_params(PHONE, "DEMO"), "Body"), "missing form field Body"),
    "Body over 1600": (inbound_params(PHONE, "x" * 1601), "Body has 1601 characters"),
}


@pytest.mark.parametrize("case", list(BAD_INBOUND))
def test_bad_inbound_form_rejected(client, caplog, case: str):
    params, expected = BAD_INBOUND[case]
    with caplog.at_level(logging.WARNING, logger="webhooks.app"):
        response = signed_post(client, "/twilio/sms", params)
    assert response.status_code == 400
    assert response.mimetype == "text/plain"
    assert expected in response.get_data(as_text=True)
    assert f"rejected /twilio/sms with 400: {expected}" in caplog.text
    assert set(_row_counts().values()) == {0}
    assert "5550600001" not in caplog.text + response.get_data(as_text=True)


def test_body_of_1600_accepted(client):
    response = signed_post(client, "/twilio/sms", inbound_params(PHONE, "x" * 1600))
    assert response.status_code == 200


BAD_STATUS = {
    "missing MessageSid": ({"MessageStatus": "delivered", "AccountSid": ACCOUNT_SID}, "missing form field MessageSid"),
    "missing MessageStatus": ({"MessageSid": "SM" + "a" * 32, "AccountSid": ACCOUNT_SID}, "missing form field MessageStatus"),
    "empty MessageStatus": ({"MessageSid": "SM" + "a" * 32, "MessageStatus": " ", "AccountSid": ACCOUNT_SID}, "missing form field MessageStatus"),
    "letters in ErrorCode": (
        {"MessageSid": "SM" + "a" * 32, "MessageStatus": "failed", "ErrorCode": "oops", "AccountSid": ACCOUNT_SID},
        "invalid ErrorCode",
    ),
}


@pytest.mark.parametrize("case", list(BAD_STATUS))
def test_bad_status_callback_rejected(client, caplog, case: str):
    params, expected = BAD_STATUS[case]
    with caplog.at_level(logging.WARNING, logger="webhooks.app"):
        response = signed_post(client, "/twilio/status", params)
    assert response.status_code == 400
    assert expected in response.get_data(as_text=True)
    assert "rejected /twilio/status with 400" in caplog.text
    assert set(_row_counts().values()) == {0}


@pytest.mark.parametrize(
    "unreachable_url",
    ["sqlite:////nonexistent-folder/smsdrip.db", "postgresql+psycopg://postgres@127.0.0.1:9/test"],
    ids=["sqlite-missing-folder", "postgresql-closed-port"],
)
def test_database_down_answers_503(client, monkeypatch, caplog, unreachable_url: str):
    monkeypatch.setenv("DATABASE_URL", unreachable_url)
    reset_settings()
    reset_engine()
    with caplog.at_level(logging.ERROR, logger="webhooks.app"):
        inbound = signed_post(client, "/twilio/sms", inbound_params(PHONE, "DEMO"))
        status = signed_post(client, "/twilio/status", {"MessageSid": "SM" + "a" * 32, "MessageStatus": "sent"})
    assert inbound.status_code == 503
    assert status.status_code == 503
    assert "retry later" in inbound.get_data(as_text=True)
    assert "database unavailable while handling /twilio/sms" in caplog.text
    assert "5550600001" not in caplog.text
