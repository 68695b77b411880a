"""Owner notifications on assignment (webhook to a loopback receiver, text to the rep) and {owner_name} in steps."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from engine.db import session_scope
from engine.models import Contact, Event, RepNotification
from tests.conftest import wait_until
from tests.lead_fixtures import ApiClient, RoutingFile, WebhookReceiver, consent

TEAM = """
reps:
  - {name: alice, phone: "+15550100101", email: alice@example.com}
pools:
  sales: {strategy: round_robin, reps: [alice]}
rules:
  - {name: everyone, pool: sales}
notify:
  text: %s
  webhook: %s
"""


def _qualify(api: ApiClient) -> None:
    api.post("/api/leads", {"phone": "+15550100001", "first_name": "Dana", "company": "Acme", "source": "crm", "consent": consent()})
    assert api.post("/api/contacts/+15550100001/status", {"status": "qualified"}).status_code == 200


def _statuses() -> list[str]:
    with session_scope() as session:
        return list(session.scalars(select(RepNotification.status).order_by(RepNotification.id)))


def test_webhook_notifies_owner(api: ApiClient, routing: RoutingFile, webhook_receiver: WebhookReceiver, start_worker):
    routing.write(TEAM % ("false", webhook_receiver.url))
    worker = start_worker()
    _qualify(api)

    assert wait_until(lambda: len(webhook_receiver.received) == 1, timeout=30), worker.log()
    payload = webhook_receiver.received[0]
    assert payload["event"] == "lead.assigned"
    assert payload["rep"] == {"name": "alice", "email": "alice@example.com", "phone": "+15550100101"}
    assert payload["contact"]["phone"] == "+15550100001"
    assert payload["contact"]["status"] == "qualified"
    assert wait_until(lambda: _statuses() == ["sent"])
    with session_scope() as session:
        event = session.scalars(select(Event).where(Event.kind == "rep.notified")).one()
    assert event.data["channel"] == "webhook"


def test_text_notifies_owner(api: ApiClient, routing: RoutingFile, start_worker, twilio_api):
    routing.write(TEAM % ("true", "null"))
    worker = start_worker()
    _qualify(api)

    messages = twilio_api.wait_for(1, timeout=30)
    assert len(messages) == 1, worker.log()
    assert messages[0].to == "+15550100101"
    assert messages[0].body == "smsdrip: Dana (Acme) at +15550100001 is now yours: status qualified, score 0."
    assert wait_until(lambda: _statuses() == ["sent"])
    with session_scope() as session:
        # Reps are not contacts: the notification creates no contact and no message on a lead's thread.
        assert session.scalars(select(Contact.phone)).all() == ["+15550100001"]


def test_webhook_failure_retries_then_fails(api: ApiClient, routing: RoutingFile, webhook_receiver: WebhookReceiver):
    from workers.notifications import MAX_ATTEMPTS, DeliveryFailed, deliver_notification

    routing.write(TEAM % ("false", webhook_receiver.url))
    webhook_receiver.status = 500
    _qualify(api)
    with session_scope() as session:
        notification_id = session.scalars(select(RepNotification.id)).one()

    for _attempt in range(MAX_ATTEMPTS - 1):
        with pytest.raises(DeliveryFailed):
            deliver_notification(notification_id)
        assert _statuses() == ["pending"]
    assert deliver_notification(notification_id) == "failed"

    assert len(webhook_receiver.received) == MAX_ATTEMPTS
    with session_scope() as session:
        notification = session.get_one(RepNotification, notification_id)
        assert (notification.status, notification.attempts, notification.detail) == ("failed", MAX_ATTEMPTS, "HTTP 500 Internal Server Error")
        assert session.scalars(select(Event.kind).where(Event.kind == "rep.notification_failed")).all() == ["rep.notification_failed"]


def test_text_notification_waits_for_send_slot(api: ApiClient, routing: RoutingFile, twilio_api, monkeypatch):
    from engine.config import get_settings, reset_settings
    from workers.connection import get_redis
    from workers.notifications import NOTIFY_SLOT_WAIT, DeliveryFailed, deliver_notification
    from workers.throttle import SendRateLimiter

    routing.write(TEAM % ("true", "null"))
    _qualify(api)
    with session_scope() as session:
        notification_id = session.scalars(select(RepNotification.id)).one()
    # One text every 60 s from our number, and a step text just took the current slot.
    monkeypatch.setenv("SMSDRIP_MPS", str(1 / 60))
    reset_settings()
    settings = get_settings()
    assert SendRateLimiter(get_redis(), settings.sender, settings.mps, NOTIFY_SLOT_WAIT).reserve() == 0

    with pytest.raises(DeliveryFailed):
        deliver_notification(notification_id)
    assert twilio_api.messages == []
    with session_scope() as session:
        notification = session.get_one(RepNotification, notification_id)
        assert notification.status == "pending"
        assert notification.detail == "sender busy: no send slot within 15 s at 0.0166667 messages per second"


def test_owner_name_in_step(api: ApiClient, routing: RoutingFile, sequences_dir, start_worker, twilio_api):
    (sequences_dir / "handoff.yaml").write_text(
        "name: handoff\nkeywords: [HANDOFF]\nsteps:\n"
        "  - {id: intro, after: 0, text: \"{owner_name|Our team} will call you today.\"}\n"
    )
    routing.write(TEAM % ("false", "null"))
    worker = start_worker()
    api.post("/api/leads", {"phone": "+15550100001", "source": "crm", "status": "qualified", "sequence": "handoff", "consent": consent()})

    messages = twilio_api.wait_for(1, timeout=30)
    assert [m.body for m in messages] == ["alice will call you today."], worker.log()
