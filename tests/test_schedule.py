"""due_time: exact send times for delays, `at`, send windows, state quiet hours, time zones and DST."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from textwrap import dedent
from zoneinfo import ZoneInfo

import pytest

from engine.schedule import Recipient, due_time
from engine.sequence_files import load_sequence_text
from engine.sequences import Sequence

NY = ZoneInfo("America/New_York")
CHICAGO = ZoneInfo("America/Chicago")
LOS_ANGELES = ZoneInfo("America/Los_Angeles")
DENVER = ZoneInfo("America/Denver")
NY_NUMBER = "+12125550123"
FLORIDA_NUMBER = "+13055551234"
OKLAHOMA_NUMBER = "+14055551234"
IDAHO_NUMBER = "+12085551234"  # phonenumbers: America/Boise and America/Los_Angeles
TOLL_FREE_NUMBER = "+18005550123"  # phonenumbers: every North American zone
UNKNOWN_NUMBER = "+15550100001"  # 555-01xx is fictional, so it has no zone
NEW_YORKER = Recipient(phone=NY_NUMBER)
ALL_DAY = 'allow_outside_quiet_hours: true\nsend_window: {start: "00:00", end: "00:00"}\n'


def sequence(steps: str, extra: str = "") -> Sequence:
    return load_sequence_text("name: t\nkeywords: [GO]\n" + dedent(extra) + "steps:\n" + dedent(steps))


TWO_STEPS = """\
- id: first
  after: 0
  text: Hi
- id: second
  after: 1h
  text: Again
"""


def local(text: str, zone: ZoneInfo = NY) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=zone)


def due(seq: Sequence, step_id: str, previous: datetime, recipient: Recipient = NEW_YORKER, zone: ZoneInfo = NY) -> str:
    step = seq.step(step_id)
    assert step is not None
    return due_time(seq, step, previous, recipient).astimezone(zone).isoformat()


def test_first_step_goes_at_once_at_night():
    assert due(sequence(TWO_STEPS), "first", local("2026-03-04T23:30")) == "2026-03-04T23:30:00-05:00"


def test_first_step_due_is_utc():
    result = due_time(sequence(TWO_STEPS), sequence(TWO_STEPS).first_step, local("2026-03-04T23:30"), NEW_YORKER)
    assert result.tzinfo == timezone.utc


def test_first_step_with_delay_waits_for_window():
    seq = sequence("- id: first\n  after: 30m\n  text: Hi\n")
    assert due(seq, "first", local("2026-03-04T20:45")) == "2026-03-05T08:00:00-05:00"


def test_first_step_with_at_waits_for_window():
    seq = sequence('- id: first\n  after: 0d\n  at: "07:00"\n  text: Hi\n')
    assert due(seq, "first", local("2026-03-04T23:00")) == "2026-03-05T08:00:00-05:00"


def test_later_step_inside_window_unchanged():
    assert due(sequence(TWO_STEPS), "second", local("2026-03-04T10:15")) == "2026-03-04T11:15:00-05:00"


def test_later_step_in_quiet_hours_moves_to_morning():
    assert due(sequence(TWO_STEPS), "second", local("2026-03-04T20:30")) == "2026-03-05T08:00:00-05:00"


def test_later_step_before_morning_moves_to_eight():
    assert due(sequence(TWO_STEPS), "second", local("2026-03-04T05:00")) == "2026-03-04T08:00:00-05:00"


def test_window_end_is_exclusive():
    seq = sequence(TWO_STEPS)
    assert due(seq, "second", local("2026-03-04T19:59:59")) == "2026-03-04T20:59:59-05:00"
    assert due(seq, "second", local("2026-03-04T20:00")) == "2026-03-05T08:00:00-05:00"


def test_at_on_next_day():
    seq = sequence('- id: first\n  after: 0\n  text: Hi\n- id: second\n  after: 1d\n  at: "09:30"\n  text: Again\n')
    assert due(seq, "second", local("2026-03-03T22:00")) == "2026-03-04T09:30:00-05:00"


def test_at_three_days_later():
    seq = sequence('- id: first\n  after: 0\n  text: Hi\n- id: second\n  after: 3d\n  at: "18:00"\n  text: Again\n')
    assert due(seq, "second", local("2026-03-03T09:00")) == "2026-03-06T18:00:00-05:00"


def test_at_same_day_still_ahead():
    seq = sequence('- id: first\n  after: 0\n  text: Hi\n- id: second\n  after: 0d\n  at: "09:30"\n  text: Again\n')
    assert due(seq, "second", local("2026-03-04T08:15")) == "2026-03-04T09:30:00-05:00"


def test_at_same_day_passed_moves_to_next_day():
    seq = sequence('- id: first\n  after: 0\n  text: Hi\n- id: second\n  after: 0d\n  at: "09:30"\n  text: Again\n')
    assert due(seq, "second", local("2026-03-04T10:00")) == "2026-03-05T09:30:00-05:00"


def test_at_counts_recipient_calendar_days():
    seq = sequence('- id: first\n  after: 0\n  text: Hi\n- id: second\n  after: 1d\n  at: "09:00"\n  text: Again\n')
    # 23:30 in Los Angeles is already the next day in UTC and in New York; the day counts in Los Angeles.
    recipient = Recipient(phone=NY_NUMBER, time_zone="America/Los_Angeles")
    assert due(seq, "second", local("2026-03-04T23:30", LOS_ANGELES), recipient, LOS_ANGELES) == "2026-03-05T09:00:00-08:00"


def test_at_outside_window_moves_to_opening():
    seq = sequence('- id: first\n  after: 0\n  text: Hi\n- id: second\n  after: 1d\n  at: "07:00"\n  text: Again\n')
    assert due(seq, "second", local("2026-03-04T12:00")) == "2026-03-05T08:00:00-05:00"


# Daylight-saving time in America/New_York, 2026: clocks jump 02:00 -> 03:00 on Sunday 8 March and
# fall back 02:00 -> 01:00 on Sunday 1 November.

def test_days_keep_clock_time_over_spring_forward():
    seq = sequence("- id: first\n  after: 0\n  text: Hi\n- id: second\n  after: 1d\n  text: Again\n")
    previous = local("2026-03-07T10:00")
    step = seq.step("second")
    assert step is not None
    result = due_time(seq, step, previous, NEW_YORKER)
    assert result.astimezone(NY).isoformat() == "2026-03-08T10:00:00-04:00"
    assert result - previous == timedelta(hours=23)


def test_hours_are_elapsed_over_spring_forward():
    seq = sequence("- id: first\n  after: 0\n  text: Hi\n- id: second\n  after: 24h\n  text: Again\n")
    assert due(seq, "second", local("2026-03-07T10:00")) == "2026-03-08T11:00:00-04:00"


def test_at_in_spring_gap_moves_forward():
    seq = sequence('- id: first\n  after: 0\n  text: Hi\n- id: second\n  after: 1d\n  at: "02:30"\n  text: Again\n', ALL_DAY)
    assert due(seq, "second", local("2026-03-07T12:00")) == "2026-03-08T03:30:00-04:00"


def test_window_start_on_spring_forward_day():
    seq = sequence(TWO_STEPS)
    assert due(seq, "second", local("2026-03-08T01:30")) == "2026-03-08T08:00:00-04:00"


def test_days_keep_clock_time_over_fall_back():
    seq = sequence("- id: first\n  after: 0\n  text: Hi\n- id: second\n  after: 1d\n  text: Again\n")
    previous = local("2026-10-31T10:00")
    step = seq.step("second")
    assert step is not None
    result = due_time(seq, step, previous, NEW_YORKER)
    assert result.astimezone(NY).isoformat() == "2026-11-01T10:00:00-05:00"
    assert result - previous == timedelta(hours=25)


def test_at_repeated_in_fall_back_uses_first():
    seq = sequence('- id: first\n  after: 0\n  text: Hi\n- id: second\n  after: 1d\n  at: "01:30"\n  text: Again\n', ALL_DAY)
    assert due(seq, "second", local("2026-10-31T12:00")) == "2026-11-01T01:30:00-04:00"


def test_quiet_hours_after_fall_back():
    # 20:30 EDT on Saturday + 12h elapsed is 07:30 EST on Sunday, before the window opens.
    seq = sequence("- id: first\n  after: 0\n  text: Hi\n- id: second\n  after: 12h\n  text: Again\n")
    assert due(seq, "second", local("2026-10-31T20:30")) == "2026-11-01T08:00:00-05:00"


SPANS_MIDNIGHT = """\
allow_outside_quiet_hours: true
send_window: {start: "22:00", end: "02:00"}
"""


def test_midnight_window_waits_for_evening():
    assert due(sequence(TWO_STEPS, SPANS_MIDNIGHT), "second", local("2026-03-04T12:00")) == "2026-03-04T22:00:00-05:00"


def test_midnight_window_open_after_midnight():
    assert due(sequence(TWO_STEPS, SPANS_MIDNIGHT), "second", local("2026-03-04T23:30")) == "2026-03-05T00:30:00-05:00"


def test_midnight_window_closed_after_two():
    assert due(sequence(TWO_STEPS, SPANS_MIDNIGHT), "second", local("2026-03-05T01:30")) == "2026-03-05T22:00:00-05:00"


def test_midnight_window_counts_from_start_day():
    # Openings start on Friday only; Saturday 01:00 is still inside Friday's opening.
    extra = 'allow_outside_quiet_hours: true\nsend_window: {days: [fri], start: "22:00", end: "02:00"}\n'
    seq = sequence(TWO_STEPS, extra)
    assert due(seq, "second", local("2026-03-07T00:00")) == "2026-03-07T01:00:00-05:00"
    assert due(seq, "second", local("2026-03-07T01:30")) == "2026-03-13T22:00:00-04:00"


def test_all_day_window_sends_at_night():
    assert due(sequence(TWO_STEPS, ALL_DAY), "second", local("2026-03-04T23:30")) == "2026-03-05T00:30:00-05:00"


def test_weekday_window_skips_weekend():
    extra = 'send_window: {days: [mon, tue, wed, thu, fri], start: "09:00", end: "17:00"}\n'
    assert due(sequence(TWO_STEPS, extra), "second", local("2026-03-07T10:00")) == "2026-03-09T09:00:00-04:00"


def test_narrow_window_same_day():
    extra = 'send_window: {start: "09:00", end: "17:00"}\n'
    assert due(sequence(TWO_STEPS, extra), "second", local("2026-03-04T16:30")) == "2026-03-05T09:00:00-05:00"


def test_window_in_its_own_zone():
    extra = 'send_window: {start: "09:00", end: "17:00", time_zone: America/Los_Angeles}\n'
    # 10:00 in New York is 07:00 in Los Angeles; the window opens at 09:00 there, 12:00 in New York.
    assert due(sequence(TWO_STEPS, extra), "second", local("2026-03-04T09:00")) == "2026-03-04T12:00:00-05:00"


def test_own_zone_window_keeps_recipient_quiet_hours():
    extra = 'send_window: {start: "17:00", end: "21:00", time_zone: America/Los_Angeles}\n'
    # 17:00 in Los Angeles is 20:00 in New York: the window and the recipient's quiet hours meet until 21:00 New York time.
    seq = sequence(TWO_STEPS, extra)
    assert due(seq, "second", local("2026-03-04T19:30")) == "2026-03-04T20:30:00-05:00"
    assert due(seq, "second", local("2026-03-04T20:30")) == "2026-03-05T20:00:00-05:00"


def test_florida_number_stops_at_eight_pm():
    recipient = Recipient(phone=FLORIDA_NUMBER)
    assert due(sequence(TWO_STEPS), "second", local("2026-03-04T19:30"), recipient) == "2026-03-05T08:00:00-05:00"


def test_new_york_number_sends_until_nine_pm():
    assert due(sequence(TWO_STEPS), "second", local("2026-03-04T19:30")) == "2026-03-04T20:30:00-05:00"


def test_oklahoma_number_stops_at_eight_pm_central():
    recipient = Recipient(phone=OKLAHOMA_NUMBER)
    assert due(sequence(TWO_STEPS), "second", local("2026-03-04T19:15", CHICAGO), recipient, CHICAGO) == "2026-03-05T08:00:00-06:00"


def test_allow_flag_lifts_state_limit():
    extra = "allow_outside_quiet_hours: true\n"
    recipient = Recipient(phone=FLORIDA_NUMBER)
    assert due(sequence(TWO_STEPS, extra), "second", local("2026-03-04T19:30"), recipient) == "2026-03-04T20:30:00-05:00"


def test_window_missing_state_hours_uses_state_hours():
    extra = 'send_window: {start: "20:00", end: "21:00"}\n'
    recipient = Recipient(phone=FLORIDA_NUMBER)
    assert due(sequence(TWO_STEPS, extra), "second", local("2026-03-04T19:30"), recipient) == "2026-03-05T08:00:00-05:00"


def test_contact_time_zone_wins_over_number():
    recipient = Recipient(phone=NY_NUMBER, time_zone="America/Los_Angeles")
    # 23:30 in New York + 1h is 21:30 in Los Angeles, past quiet hours there: 08:00 Los Angeles time.
    assert due(sequence(TWO_STEPS), "second", local("2026-03-04T23:30"), recipient) == "2026-03-05T11:00:00-05:00"


def test_invalid_contact_time_zone_uses_number():
    recipient = Recipient(phone=NY_NUMBER, time_zone="Mars/Olympus_Mons")
    assert due(sequence(TWO_STEPS), "second", local("2026-03-04T20:30")) == due(sequence(TWO_STEPS), "second", local("2026-03-04T20:30"), recipient)


def test_number_zone_used_without_contact_zone():
    recipient = Recipient(phone=IDAHO_NUMBER.replace("208", "415"))  # San Francisco
    assert due(sequence(TWO_STEPS), "second", local("2026-03-04T06:00", LOS_ANGELES), recipient, LOS_ANGELES) == "2026-03-04T08:00:00-08:00"


def test_unknown_number_uses_default_zone():
    recipient = Recipient(phone=UNKNOWN_NUMBER, default_time_zone="America/Chicago")
    assert due(sequence(TWO_STEPS), "second", local("2026-03-04T06:30", CHICAGO), recipient, CHICAGO) == "2026-03-04T08:00:00-06:00"


def test_two_zone_number_waits_for_western_morning():
    recipient = Recipient(phone=IDAHO_NUMBER)
    # 07:30 in Los Angeles is 08:30 in Boise; both windows are open from 08:00 Los Angeles time.
    assert due(sequence(TWO_STEPS), "second", local("2026-03-04T06:30", LOS_ANGELES), recipient, LOS_ANGELES) == "2026-03-04T08:00:00-08:00"


def test_two_zone_number_stops_at_eastern_evening():
    recipient = Recipient(phone=IDAHO_NUMBER)
    # 20:15 in Los Angeles is 21:15 in Boise, past quiet hours there: next morning, 08:00 Los Angeles time.
    assert due(sequence(TWO_STEPS), "second", local("2026-03-04T19:15", LOS_ANGELES), recipient, LOS_ANGELES) == "2026-03-05T08:00:00-08:00"


def test_two_zone_number_at_uses_latest_zone():
    seq = sequence('- id: first\n  after: 0\n  text: Hi\n- id: second\n  after: 1d\n  at: "09:00"\n  text: Again\n')
    recipient = Recipient(phone=IDAHO_NUMBER)
    assert due(seq, "second", local("2026-03-04T12:00", DENVER), recipient, LOS_ANGELES) == "2026-03-05T09:00:00-08:00"


def test_zones_without_common_hours_use_default():
    extra = 'send_window: {start: "09:00", end: "10:00"}\n'
    recipient = Recipient(phone=TOLL_FREE_NUMBER, default_time_zone="America/Chicago")
    assert due(sequence(TWO_STEPS, extra), "second", local("2026-03-04T07:00", CHICAGO), recipient, CHICAGO) == "2026-03-04T09:00:00-06:00"


def test_naive_previous_send_rejected():
    seq = sequence(TWO_STEPS)
    step = seq.step("second")
    assert step is not None
    with pytest.raises(ValueError, match="timezone-aware"):
        due_time(seq, step, datetime(2026, 3, 4, 12, 0), NEW_YORKER)
