"""The whole path on real parts: signed webhook -> engine -> Redis -> worker process -> twilio client -> local API."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from engine.db import session_scope
from engine.models import Enrollment, Message, ScheduledSend
from tests.conftest import OUR_NUMBER, inbound_params, signed_post, wait_until

QUICK_DEMO = """
name: demo
keywords: [DEMO]
# Open all day, so the 3-second step goes out whatever the time of day the test runs.
allow_outside_quiet_hours: true
send_window: {start: "00:00", end: "00:00"}
steps:
  - id: welcome
    after: 0
    text: "Thanks for texting {keyword}! Reply STOP to opt out."
  - id: tips
    after: 3s
    text: "Tip one: reply with a question anytime."
"""


def test_demo_keyword_sends_welcome_then_next_step(client, start_worker, twilio_api, sequences_dir: Path):
    (sequences_dir / "demo.yaml").write_text(QUICK_DEMO)
    worker = start_worker()

    response = signed_post(client, "/twilio/sms", inbound_params("+15550100001", "  demo please! "))
    assert response.status_code == 200
    assert response.mimetype == "application/xml"
    assert response.get_data(as_text=True) == '<?xml version="1.0" encoding="UTF-8"?><Response />'

    messages = twilio_api.wait_for(2, timeout=30)
    assert len(messages) == 2, worker.log()
    welcome, tips = messages
    assert (welcome.to, welcome.from_, welcome.body) == ("+15550100001", OUR_NUMBER, "Thanks for texting DEMO! Reply STOP to opt out.")
    assert (tips.to, tips.from_, tips.body) == ("+15550100001", OUR_NUMBER, "Tip one: reply with a question anytime.")
    assert welcome.status_callback == "http://smsdrip.test/twilio/status"
    assert 2.5 <= tips.received_at - welcome.received_at < 6

    assert wait_until(lambda: _enrollment_state() == "completed")
    with session_scope() as session:
        sids = session.scalars(select(Message.sid).where(Message.direction == "outbound").order_by(Message.id)).all()
        statuses = session.scalars(select(ScheduledSend.status).order_by(ScheduledSend.id)).all()
    assert sids == [welcome.sid, tips.sid]
    assert statuses == ["sent", "sent"]

    # Nothing else arrives later: each step went once.
    assert len(twilio_api.wait_for(3, timeout=2)) == 2


def _enrollment_state() -> str | None:
    with session_scope() as session:
        return session.scalar(select(Enrollment.state))
