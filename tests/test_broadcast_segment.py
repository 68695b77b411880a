"""`smsdrip broadcast`: segments, the count before sending, opt-outs left out, send windows, the worker path."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from engine.audiences import SegmentError, parse_segment
from engine.db import session_scope
from engine.models import Broadcast, Contact, Event, ScheduledSend
from engine.send_times import window_due_at
from tests.conftest import wait_until
from tests.lead_fixtures import INSIDE_WINDOW_HOURS, OUTSIDE_WINDOW_HOURS, RoutingFile, utcnow, zone_where_local_hour

SEGMENT = "status=nurturing,tag=webinar"
TEXT = "Hi {first_name|there}, the webinar replay is up."


@pytest.fixture
def audience(routing: RoutingFile) -> dict[str, str]:
    inside, outside = zone_where_local_hour(INSIDE_WINDOW_HOURS), zone_where_local_hour(OUTSIDE_WINDOW_HOURS)
    people = {
        "ann": Contact(phone="+15550100001", first_name="Ann", status="nurturing", fields={"tags": ["webinar"]}, time_zone=inside),
        "bo": Contact(phone="+15550100002", status="nurturing", fields={"tags": ["webinar", "vip"]}, time_zone=outside),
        "cy": Contact(phone="+15550100003", status="nurturing", fields={"tags": ["webinar"]}, opted_out_at=utcnow()),
        "di": Contact(phone="+15550100004", status="nurturing", fields={"tags": []}),
        "ed": Contact(phone="+15550100005", first_name="Ed", status="engaged", fields={"tags": ["webinar"]}, time_zone=inside),
    }
    with session_scope() as session:
        session.add_all(people.values())
    return {name: contact.phone for name, contact in people.items()}


def _sends() -> list[tuple[str, str, str]]:
    with session_scope() as session:
        rows = session.execute(select(Contact.phone, ScheduledSend.body, ScheduledSend.kind).join(Contact).order_by(ScheduledSend.id))
        return [tuple(row) for row in rows]


@pytest.mark.parametrize(("text", "message"), [
    ("status=hot", "hot is not a lead status"),
    ("score>=lots", "'score>=lots': '>=lots' compares with 'lots', which is not a number"),
    ("nurturing", "'nurturing' is not a condition: write field=value"),
    (" , ", "the segment is empty"),
    ("tag=", "'tag=' has no value"),
], ids=["unknown-status", "bad-number", "no-operator", "empty", "no-value"])
def test_segment_parse_errors(text: str, message: str):
    with pytest.raises(SegmentError, match=message):
        parse_segment(text)


def test_broadcast_dry_run_counts(audience, run_cli):
    result = run_cli("broadcast", "--segment", SEGMENT, "--text", TEXT, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "segment 'status=nurturing,tag=webinar': the text will reach 2 contacts (1 more match but opted out)",
        "first message: Hi Ann, the webinar replay is up.",
        "dry run: nothing sent",
    ]
    assert _sends() == []


def test_broadcast_alternatives_and_scores(audience, run_cli):
    result = run_cli("broadcast", "--segment", "status=nurturing|engaged, tag=webinar", "--text", TEXT, "--dry-run")
    assert "will reach 3 contacts" in result.stdout.splitlines()[0]
    result = run_cli("broadcast", "--segment", "tag=vip,score<10", "--text", TEXT, "--dry-run")
    assert "will reach 1 contacts" in result.stdout.splitlines()[0]


def test_broadcast_creates_windowed_sends(audience, run_cli):
    before = utcnow()
    result = run_cli("broadcast", "--segment", SEGMENT, "--text", TEXT, "--yes")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].endswith("2 texts scheduled, 1 now and 1 when their send window opens")

    assert _sends() == [
        (audience["ann"], "Hi Ann, the webinar replay is up.", "broadcast"),
        (audience["bo"], "Hi there, the webinar replay is up.", "broadcast"),
    ]
    with session_scope() as session:
        record = session.scalars(select(Broadcast)).one()
        sends = {send.contact_id: send for send in session.scalars(select(ScheduledSend))}
        bo = session.scalars(select(Contact).where(Contact.phone == audience["bo"])).one()
        assert (record.segment, record.recipients, record.created_by) == (SEGMENT, 2, "cli")
        assert {send.actor for send in sends.values()} == {f"broadcast:{record.id}"}
        bo_due = sends[bo.id].due_at.astimezone(ZoneInfo(bo.time_zone))
        assert (bo_due.hour, bo_due.minute) == (8, 0)
        assert sends[bo.id].due_at > before


def test_broadcast_missing_field_refused(audience, run_cli):
    result = run_cli("broadcast", "--segment", SEGMENT, "--text", "Hi {first_name}!", "--yes")
    assert result.returncode == 1
    assert "cannot send: field 'first_name' has no value: give it a default such as {first_name|there} (1 of 2 contacts)" in result.stderr
    assert _sends() == []


def test_broadcast_declined_sends_nothing(audience, run_cli):
    result = run_cli("broadcast", "--segment", SEGMENT, "--text", TEXT, input="n\n")
    assert result.returncode == 1
    assert "Send to 2 contacts?" in result.stdout
    assert _sends() == []


def test_broadcast_sent_by_worker(audience, run_cli, start_worker, twilio_api):
    worker = start_worker()
    run_cli("broadcast", "--segment", SEGMENT, "--text", TEXT, "--yes")

    messages = twilio_api.wait_for(1, timeout=30)
    assert [(m.to, m.body) for m in messages] == [(audience["ann"], "Hi Ann, the webinar replay is up.")], worker.log()
    assert wait_until(lambda: _out_actors() == ["broadcast:1"])
    assert len(twilio_api.wait_for(2, timeout=2)) == 1  # the other waits for its window


def _out_actors() -> list[str]:
    with session_scope() as session:
        return list(session.scalars(select(Event.actor).where(Event.kind == "message.out")))


@pytest.mark.parametrize(("local_time", "expected_local"), [
    ("2025-03-03T10:30", "2025-03-03T10:30"),
    ("2025-03-03T07:15", "2025-03-03T08:00"),
    ("2025-03-03T20:30", "2025-03-03T20:30"),
    ("2025-03-03T21:00", "2025-03-04T08:00"),
    ("2025-03-03T23:59", "2025-03-04T08:00"),
], ids=["inside", "before-opening", "last-half-hour", "at-closing", "late-night"])
def test_window_due_at_local_time(local_time: str, expected_local: str):
    zone = ZoneInfo("America/Chicago")
    now = datetime.fromisoformat(local_time).replace(tzinfo=zone).astimezone(timezone.utc)
    contact = Contact(id=1, phone="+15550100001", time_zone="America/Chicago")
    assert window_due_at(contact, now).astimezone(zone).isoformat(timespec="minutes") == f"{expected_local}-06:00"


def test_window_due_at_zone_from_number():
    # 212 is New York: 12:00 UTC in March is 07:00 there, before quiet hours end.
    now = datetime(2025, 3, 3, 12, 0, tzinfo=timezone.utc)
    due = window_due_at(Contact(id=1, phone="+12125550123"), now)
    assert due - now == timedelta(hours=1)


def test_window_due_at_florida_evening_limit():
    # 305 is Miami: Florida allows texts until 20:00, so 20:30 local (01:30 UTC next day) waits for 08:00.
    now = datetime(2025, 3, 4, 1, 30, tzinfo=timezone.utc)
    due = window_due_at(Contact(id=1, phone="+13055550123"), now)
    assert due.astimezone(ZoneInfo("America/New_York")).isoformat(timespec="minutes") == "2025-03-04T08:00-05:00"
