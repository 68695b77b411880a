"""Delivery: status callbacks in any order, carrier error codes, undeliverable numbers, retries and send errors."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import select

from engine.config import reset_settings
from engine.db import session_scope
from engine.models import Contact, EarlyStatus, Enrollment, Event, Message, ScheduledSend
from tests.conftest import ACCOUNT_SID, inbound_params, signed_post, wait_until
from workers.jobs import enqueue_due_sends, send_scheduled


def _send_welcome(client, phone: str) -> str:  # type: ignore[no-untyped-def]
    """Text DEMO from `phone` and send the welcome step in this process; returns its MessageSid."""
    signed_post(client, "/twilio/sms", inbound_params(phone, "DEMO"))
    with session_scope() as session:
        send_id = session.scalars(
            select(ScheduledSend.id).join(Contact).where(Contact.phone == phone, ScheduledSend.status == "pending")
        ).one()
    assert send_scheduled(send_id) == "sent"
    with session_scope() as session:
        return session.scalars(select(Message.sid).where(Message.send_id == send_id)).one()


def _send_manual(phone: str, body: str) -> str:
    """Send a rep's text to an existing contact in this process, without an inbound text; returns its MessageSid."""
    with session_scope() as session:
        contact = session.scalars(select(Contact).where(Contact.phone == phone)).one()
        send = ScheduledSend(kind="manual", contact_id=contact.id, body=body, actor="rep:sam", due_at=contact.created_at)
        session.add(send)
        session.flush()
        send_id = send.id
    assert send_scheduled(send_id) == "sent"
    with session_scope() as session:
        return session.scalars(select(Message.sid).where(Message.send_id == send_id)).one()


def _callback(client, sid: str, status: str, error_code: int | None = None):  # type: ignore[no-untyped-def]
    params = {"MessageSid": sid, "MessageStatus": status, "AccountSid": ACCOUNT_SID, "ApiVersion": "2010-04-01"}
    if error_code is not None:
        params["ErrorCode"] = str(error_code)
    return signed_post(client, "/twilio/status", params)


def _message(sid: str) -> Message:
    with session_scope() as session:
        return session.scalars(select(Message).where(Message.sid == sid)).one()


def _contact(phone: str) -> Contact:
    with session_scope() as session:
        return session.scalars(select(Contact).where(Contact.phone == phone)).one()


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        (["sending", "sent", "delivered", "read"], "read"),
        (["delivered", "sent", "sending", "queued"], "delivered"),
        (["sent", "queued"], "sent"),
        (["delivered", "undelivered"], "delivered"),  # a late failure report does not undo a delivery
        (["failed", "delivered", "sent"], "failed"),
        (["undelivered", "undelivered"], "undelivered"),
        (["sent", "canceled", "delivered"], "canceled"),
    ],
    ids=["in-order", "reversed", "late-queued", "late-failure", "failed-final", "repeated", "canceled-final"],
)
def test_callbacks_never_move_backwards(client, twilio_api, statuses: list[str], expected: str):
    sid = _send_welcome(client, "+15550500001")
    for status in statuses:
        assert _callback(client, sid, status).status_code == 204
    assert _message(sid).status == expected


def test_unknown_status_kept_on_timeline(client, twilio_api, caplog):
    sid = _send_welcome(client, "+15550500002")
    _callback(client, sid, "sent")
    with caplog.at_level(logging.WARNING, logger="engine.delivery"):
        assert _callback(client, sid, "partially_delivered").status_code == 204
    _callback(client, sid, "delivered")

    assert _message(sid).status == "delivered"
    with session_scope() as session:
        statuses = session.scalars(select(Event.data).where(Event.kind == "message.status").order_by(Event.id)).all()
    assert [data["status"] for data in statuses] == ["sent", "partially_delivered", "delivered"]
    assert "unknown MessageStatus 'partially_delivered'" in caplog.text


def test_error_code_stored_on_message(client, twilio_api):
    sid = _send_welcome(client, "+15550500003")
    _callback(client, sid, "undelivered", error_code=30005)
    message = _message(sid)
    assert (message.status, message.error_code) == ("undelivered", 30005)


def test_callback_for_unknown_sid_kept(client):
    response = _callback(client, "SM" + "f" * 32, "delivered")
    assert response.status_code == 204
    with session_scope() as session:
        assert session.scalars(select(Message)).all() == []
        early = session.scalars(select(EarlyStatus)).one()
    assert (early.sid, early.status) == ("SM" + "f" * 32, "delivered")


def _undeliverable_after(monkeypatch, count: int):  # type: ignore[no-untyped-def]
    """Set SMSDRIP_UNDELIVERABLE_AFTER and return a client of an app built with it."""
    from webhooks.app import create_app

    monkeypatch.setenv("SMSDRIP_UNDELIVERABLE_AFTER", str(count))
    reset_settings()
    app = create_app()
    app.testing = True
    return app.test_client()


def test_undeliverable_after_configured_failures(twilio_api, monkeypatch, smsdrip_env):
    client = _undeliverable_after(monkeypatch, 2)
    phone = "+15550500004"
    first = _send_welcome(client, phone)
    _callback(client, first, "undelivered", error_code=30003)
    _callback(client, first, "undelivered", error_code=30003)  # a repeat of the same report counts once
    assert _contact(phone).undeliverable_at is None
    assert _contact(phone).delivery_failures == 1

    second = _send_manual(phone, "Did you get our texts?")
    _callback(client, second, "failed", error_code=30006)

    contact = _contact(phone)
    assert contact.undeliverable_at is not None
    assert contact.delivery_failures == 2
    with session_scope() as session:
        state = session.scalars(select(Enrollment.state)).one()
        pending = session.scalars(select(ScheduledSend).where(ScheduledSend.status == "pending")).all()
    assert state == "undeliverable"
    assert pending == []  # the tips step was cancelled


def test_other_error_codes_not_counted(twilio_api, monkeypatch, smsdrip_env):
    client = _undeliverable_after(monkeypatch, 1)
    phone = "+15550500005"
    sid = _send_welcome(client, phone)
    _callback(client, sid, "failed", error_code=30010)  # message price exceeds max price: not the number's fault
    assert _contact(phone).delivery_failures == 0
    assert _contact(phone).undeliverable_at is None


def test_delivery_resets_failure_count(twilio_api, monkeypatch, smsdrip_env):
    client = _undeliverable_after(monkeypatch, 2)
    phone = "+15550500006"
    first = _send_welcome(client, phone)
    _callback(client, first, "undelivered", error_code=30003)
    assert _contact(phone).delivery_failures == 1

    second = _send_manual(phone, "Did you get our texts?")
    _callback(client, second, "delivered")
    assert _contact(phone).delivery_failures == 0


def test_inbound_text_clears_undeliverable(twilio_api, monkeypatch, smsdrip_env):
    client = _undeliverable_after(monkeypatch, 1)
    phone = "+15550500007"
    sid = _send_welcome(client, phone)
    _callback(client, sid, "undelivered", error_code=30003)
    assert _contact(phone).undeliverable_at is not None

    signed_post(client, "/twilio/sms", inbound_params(phone, "DEMO"))
    contact = _contact(phone)
    assert contact.undeliverable_at is None
    with session_scope() as session:
        live = session.scalars(select(Enrollment).where(Enrollment.ended_at.is_(None))).all()
    assert len(live) == 1


def test_callback_21610_opts_contact_out(client, twilio_api):
    phone = "+15550500008"
    sid = _send_welcome(client, phone)
    _callback(client, sid, "failed", error_code=21610)
    contact = _contact(phone)
    assert contact.opt_out_source == "carrier:21610"
    with session_scope() as session:
        assert session.scalars(select(Enrollment.state)).one() == "opted_out"


def test_send_4xx_final_with_code(client, twilio_api):
    phone = "+15550500009"
    twilio_api.fail(phone, 400, 21211, "The 'To' number is not a valid phone number.")
    signed_post(client, "/twilio/sms", inbound_params(phone, "DEMO"))
    with session_scope() as session:
        send_id = session.scalars(select(ScheduledSend.id)).one()

    assert send_scheduled(send_id) == "failed"
    with session_scope() as session:
        send = session.get_one(ScheduledSend, send_id)
        message = session.scalars(select(Message).where(Message.send_id == send_id)).one()
        next_step = session.scalars(select(ScheduledSend.step_id).where(ScheduledSend.status == "pending")).all()
    assert send.status == "failed"
    assert "HTTP 400, Twilio error 21211" in (send.detail or "")
    assert (message.status, message.error_code, message.direction) == ("failed", 21211, "outbound")
    assert twilio_api.state.requests == 1  # no retry
    assert next_step == ["tips"]  # the sequence goes on below the undeliverable threshold
    assert _contact(phone).delivery_failures == 1


def test_send_21614_marks_undeliverable(twilio_api, monkeypatch, smsdrip_env):
    client = _undeliverable_after(monkeypatch, 1)
    phone = "+15550500010"
    twilio_api.fail(phone, 400, 21614, "'To' number is not a valid mobile number")
    signed_post(client, "/twilio/sms", inbound_params(phone, "DEMO"))
    with session_scope() as session:
        send_id = session.scalars(select(ScheduledSend.id)).one()
    assert send_scheduled(send_id) == "failed"
    with session_scope() as session:
        state = session.scalars(select(Enrollment.state)).one()
        pending = session.scalars(select(ScheduledSend).where(ScheduledSend.status == "pending")).all()
    assert state == "undeliverable"
    assert pending == []
    assert _contact(phone).undeliverable_at is not None


@pytest.mark.parametrize(("http_status", "code"), [(429, 20429), (500, 20500), (503, 20503)])
def test_transient_errors_retried_then_sent(client, start_worker, twilio_api, smsdrip_env, http_status: int, code: int):
    smsdrip_env["SMSDRIP_RETRY_DELAYS"] = "1,1,1"
    phone = "+15550500011"
    twilio_api.fail(phone, http_status, code, "Try again later", times=2)
    worker = start_worker()
    signed_post(client, "/twilio/sms", inbound_params(phone, "DEMO"))

    assert len(twilio_api.wait_for(1, timeout=30)) == 1, worker.log()
    assert wait_until(lambda: _welcome_status() == "sent", timeout=10), worker.log()
    assert twilio_api.state.requests == 3
    assert worker.log().count(f"HTTP {http_status}, Twilio error {code}; retry ") == 2
    assert len(twilio_api.wait_for(2, timeout=3)) == 1  # sent once


def test_transient_errors_limited_retries(client, start_worker, twilio_api, smsdrip_env):
    smsdrip_env["SMSDRIP_RETRY_DELAYS"] = "1,1"
    phone = "+15550500012"
    twilio_api.fail(phone, 503, 20503, "Service unavailable")
    worker = start_worker()
    signed_post(client, "/twilio/sms", inbound_params(phone, "DEMO"))

    assert wait_until(lambda: _welcome_status() == "failed", timeout=30), worker.log()
    with session_scope() as session:
        send = session.scalars(select(ScheduledSend).where(ScheduledSend.step_id == "welcome")).one()
        message = session.scalars(select(Message).where(Message.send_id == send.id)).one()
    assert twilio_api.state.requests == 3  # the first attempt and two retries
    assert "gave up after 2 retries" in (send.detail or "")
    assert (message.status, message.error_code) == ("failed", 20503)
    assert twilio_api.messages == []


def _welcome_status() -> str | None:
    with session_scope() as session:
        return session.scalar(select(ScheduledSend.status).where(ScheduledSend.step_id == "welcome"))


def test_callback_before_commit_applied_later(client, twilio_api):
    """The carrier can call back before the worker recorded the message: the status is kept and applied then."""
    phone = "+15550500013"
    signed_post(client, "/twilio/sms", inbound_params(phone, "DEMO"))
    with session_scope() as session:
        send_id = session.scalars(select(ScheduledSend.id)).one()
    twilio_api.hold("after_accept")
    with ThreadPoolExecutor(max_workers=1) as pool:
        result = pool.submit(send_scheduled, send_id)
        assert twilio_api.wait_held(1)
        sid = twilio_api.messages[0].sid
        assert _callback(client, sid, "sent").status_code == 204
        assert _callback(client, sid, "undelivered", error_code=30003).status_code == 204
        with session_scope() as session:
            assert session.scalars(select(Message).where(Message.sid == sid)).all() == []
            assert len(session.scalars(select(EarlyStatus)).all()) == 2
        twilio_api.release()
        assert result.result(timeout=20) == "sent"

    message = _message(sid)
    assert (message.status, message.error_code) == ("undelivered", 30003)
    assert _contact(phone).delivery_failures == 1
    with session_scope() as session:
        assert session.scalars(select(EarlyStatus)).all() == []


def test_sweep_purges_unmatched_early_statuses(client):
    _callback(client, "SM" + "e" * 32, "delivered")
    with session_scope() as session:
        received_at = session.scalars(select(EarlyStatus.received_at)).one()
    enqueue_due_sends(now=received_at + timedelta(hours=1))
    with session_scope() as session:
        assert len(session.scalars(select(EarlyStatus)).all()) == 1
    enqueue_due_sends(now=received_at + timedelta(days=1, seconds=1))
    with session_scope() as session:
        assert session.scalars(select(EarlyStatus)).all() == []
