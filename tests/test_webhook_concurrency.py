"""Several web processes (gunicorn) and workers on one database: identical webhooks at once, concurrent writes, real callbacks."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select

from engine.db import session_scope
from engine.models import ConsentRecord, Contact, Enrollment, Message, ScheduledSend
from tests.conftest import AUTH_TOKEN, inbound_params, wait_until


def _count(model: type) -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _post_at_once(server, path: str, forms: list[dict[str, str]]) -> list[tuple[int, str]]:  # type: ignore[no-untyped-def]
    with ThreadPoolExecutor(max_workers=len(forms)) as pool:
        return list(pool.map(lambda form: server.post(path, form), forms))


def test_ten_identical_keyword_webhooks_once(web_server, start_worker, twilio_api):
    server = web_server(4)
    worker = start_worker()
    params = inbound_params("+15550800001", "DEMO")

    answers = _post_at_once(server, "/twilio/sms", [params] * 10)

    assert [status for status, _ in answers] == [200] * 10, server.log()
    assert len({body for _, body in answers}) == 1
    assert _count(Message) == 1
    assert _count(Contact) == 1
    assert _count(Enrollment) == 1
    assert _count(ScheduledSend) == 1
    assert _count(ConsentRecord) == 1
    assert len(twilio_api.wait_for(1, timeout=20)) == 1, worker.log()
    assert len(twilio_api.wait_for(2, timeout=3)) == 1  # the welcome went once


def test_ten_identical_stop_webhooks_once(web_server):
    server = web_server(4)
    params = inbound_params("+15550800002", "STOP")

    answers = _post_at_once(server, "/twilio/sms", [params] * 10)

    assert [status for status, _ in answers] == [200] * 10, server.log()
    bodies = {body for _, body in answers}
    assert len(bodies) == 1
    assert "unsubscribed" in bodies.pop()
    with session_scope() as session:
        directions = sorted(session.scalars(select(Message.direction)).all())
    assert directions == ["inbound", "outbound"]  # the text and its one recorded confirmation
    assert _count(ConsentRecord) == 1


def test_web_and_workers_write_at_once(web_server, start_worker, twilio_api):
    """Three web processes and two workers write to one database at once, with status callbacks coming back."""
    server = web_server(3)
    twilio_api.state.callbacks = ("sent", "delivered")
    workers = [start_worker(), start_worker()]
    phones = [f"+155508100{number:02d}" for number in range(30)]

    answers = _post_at_once(server, "/twilio/sms", [inbound_params(phone, "DEMO") for phone in phones])

    assert [status for status, _ in answers] == [200] * 30, server.log()
    messages = twilio_api.wait_for(30, timeout=60)
    assert sorted(message.to for message in messages) == phones, workers[0].log() + workers[1].log()

    def all_delivered() -> bool:
        with session_scope() as session:
            statuses = session.scalars(select(Message.status).where(Message.direction == "outbound")).all()
        return len(statuses) == 30 and set(statuses) == {"delivered"}

    assert wait_until(all_delivered, timeout=30), server.log()
    assert "database is locked" not in server.log() + workers[0].log() + workers[1].log()
    assert " 503 " not in server.log()


def test_callbacks_out_of_order_over_http(web_server, start_worker, twilio_api):
    server = web_server(2)
    twilio_api.state.callbacks = ("delivered", "sent", "sending", "queued")
    worker = start_worker()
    assert server.post("/twilio/sms", inbound_params("+15550800003", "DEMO"))[0] == 200

    assert len(twilio_api.wait_for(1, timeout=20)) == 1, worker.log()

    assert wait_until(lambda: _status() == "delivered", timeout=20), server.log()
    # A callback that beat the worker's commit is applied by the worker, so both logs count.
    assert wait_until(lambda: (server.log() + worker.log()).count("callback ignored") == 3, timeout=20), server.log()
    assert _status() == "delivered"


def _status() -> str | None:
    with session_scope() as session:
        return session.scalar(select(Message.status).where(Message.direction == "outbound"))


def test_logs_hold_no_number_or_token(web_server, start_worker, twilio_api):
    server = web_server(2)
    twilio_api.state.callbacks = ("sent", "undelivered")
    twilio_api.state.callback_error_code = 30003
    worker = start_worker()
    phone = "+15550800004"
    server.post("/twilio/sms", inbound_params(phone, "DEMO"))
    assert len(twilio_api.wait_for(1, timeout=20)) == 1
    assert wait_until(lambda: _status() == "undelivered", timeout=20)
    for body in ("HELP", "what is this?", "STOP", "START", "x" * 1601):
        server.post("/twilio/sms", inbound_params(phone, body))
    server.post("/twilio/sms", {**inbound_params(phone, "DEMO"), "From": "+1555"})  # invalid From

    logs = server.log() + worker.log()
    assert "*******0004" in logs  # the masked form is what identifies the number
    assert "5550800004" not in logs
    assert AUTH_TOKEN not in logs
