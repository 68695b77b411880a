"""The send rate per sender (SMSDRIP_MPS), shared by two real worker processes, measured at the local Twilio API."""

from __future__ import annotations

import time

import redis
from sqlalchemy import select

from engine.config import get_settings, reset_settings
from engine.db import session_scope
from engine.models import ScheduledSend
from tests.conftest import inbound_params, signed_post, wait_until
from workers.jobs import send_scheduled
from workers.throttle import SPACING_MARGIN, SendRateLimiter

# Arrival times at the local API vary by a few milliseconds on an idle machine and by up to about a
# tenth of a second (measured in CI runs) when other processes keep the CPUs busy.
# Without the limit, the twelve texts arrive milliseconds apart.
ARRIVAL_JITTER = 0.1  # seconds
SPACING_AT_10 = (1 + SPACING_MARGIN) / 10  # seconds between calls at MPS=10


def test_two_workers_never_exceed_mps(client, start_worker, twilio_api, smsdrip_env):
    mps = 4.0
    smsdrip_env["SMSDRIP_MPS"] = str(mps)
    phones = [f"+155509000{number:02d}" for number in range(12)]
    for phone in phones:
        signed_post(client, "/twilio/sms", inbound_params(phone, "DEMO"))
    workers = [start_worker(), start_worker()]

    messages = twilio_api.wait_for(len(phones), timeout=60)
    assert len(messages) == len(phones), workers[0].log() + workers[1].log()
    arrivals = sorted(message.received_at for message in messages)
    gaps = [later - earlier for earlier, later in zip(arrivals, arrivals[1:])]
    assert min(gaps) >= 1 / mps - ARRIVAL_JITTER, gaps
    for start in arrivals:
        in_one_second = [arrival for arrival in arrivals if start <= arrival < start + 1 - ARRIVAL_JITTER]
        assert len(in_one_second) <= mps, arrivals
    # Both processes sent, so the spacing held across them and not only inside one.
    assert wait_until(lambda: all("went out" in worker.log() for worker in workers), timeout=5)


def test_limiter_spaces_reservations(redis_client: redis.Redis):
    limiter = SendRateLimiter(redis_client, "+15550100000", mps=10, max_wait=1.0)
    waits = [limiter.reserve() for _ in range(5)]
    assert waits[0] == 0
    for earlier, later in zip(waits, waits[1:]):
        assert earlier is not None and later is not None
        assert SPACING_AT_10 - 0.01 <= later - earlier <= SPACING_AT_10


def test_limiter_refuses_beyond_max_wait(redis_client: redis.Redis):
    limiter = SendRateLimiter(redis_client, "+15550100000", mps=1, max_wait=2.5)
    waits = [limiter.reserve() for _ in range(5)]
    assert waits[3] is None  # 3 s away: over the longest wait, so nothing is reserved
    assert waits[4] is None
    assert all(wait is not None for wait in waits[:3])


def test_limiter_separates_senders(redis_client: redis.Redis):
    first = SendRateLimiter(redis_client, "+15550100000", mps=1, max_wait=5)
    second = SendRateLimiter(redis_client, "MG" + "0" * 32, mps=1, max_wait=5)
    assert first.reserve() == 0
    assert second.reserve() == 0


def test_start_call_spaces_calls(redis_client: redis.Redis):
    limiter = SendRateLimiter(redis_client, "+15550100000", mps=10, max_wait=1.0)
    first, second = limiter.start_call(), limiter.start_call()
    assert first == 0
    assert second is not None and SPACING_AT_10 - 0.01 <= second <= SPACING_AT_10


def test_late_call_pushes_next_slot(redis_client: redis.Redis):
    """A call that starts late (a slow database check after waking up) moves the slots after it."""
    limiter = SendRateLimiter(redis_client, "+15550100000", mps=10, max_wait=1.0)
    assert limiter.reserve() == 0
    time.sleep(0.05)
    assert limiter.start_call() == 0
    wait = limiter.reserve()
    assert wait is not None and SPACING_AT_10 - 0.01 <= wait <= SPACING_AT_10  # after the late call, not after the slot


def test_limiter_spacing_leaves_room_for_arrival_jitter(redis_client: redis.Redis):
    """At MPS=50, 51 reserved slots span over a second by 20 ms, so texts that arrive up to 10 ms early
    or late at the carrier still never put 51 of them in one second."""
    limiter = SendRateLimiter(redis_client, "+15550100000", mps=50, max_wait=5.0)
    starts = []  # each slot's start on the local clock, within one Redis round trip
    for _ in range(51):
        wait = limiter.reserve()
        assert wait is not None
        starts.append(time.monotonic() + wait)
    assert starts[50] - starts[0] >= 1.02 - 0.005
    assert limiter.interval_us == 20_400


def test_busy_sender_defers_send(client, twilio_api, monkeypatch, redis_client: redis.Redis):
    """A send whose slot is further away than the longest wait goes back to pending for the sweep."""
    monkeypatch.setenv("SMSDRIP_MPS", "0.05")  # one text every 20 s
    reset_settings()
    signed_post(client, "/twilio/sms", inbound_params("+15550900100", "DEMO"))
    other_sends = SendRateLimiter(redis_client, get_settings().sender, mps=0.05, max_wait=100)
    assert other_sends.reserve() == 0
    assert other_sends.reserve() is not None  # the next free slot is now 40 s away
    with session_scope() as session:
        send_id = session.scalars(select(ScheduledSend.id)).one()

    assert send_scheduled(send_id) == "deferred"
    with session_scope() as session:
        send = session.get_one(ScheduledSend, send_id)
    assert (send.status, send.claimed_at) == ("pending", None)
    assert "no send slot within" in (send.detail or "")
    assert twilio_api.messages == []
