"""Send windows: the local hours a text may go out, including state quiet-hour laws, and finding the next opening."""

from __future__ import annotations

import logging
from collections.abc import Sequence as Seq
from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import phonenumbers
from phonenumbers import geocoder

from engine.sequences import QUIET_HOURS, SendWindow
from engine.timezones import wall_clock

logger = logging.getLogger(__name__)

# How far past the due time to look for an opening before giving up on a set of windows. Every
# window opens at least once a week, so finding nothing within two weeks means they never overlap.
SEARCH_HORIZON = timedelta(days=15)
MAX_ROUNDS = 100


@dataclass(frozen=True)
class StateQuietHours:
    """A US state whose law allows marketing texts in a narrower local window than QUIET_HOURS."""

    code: str  # USPS code, as phonenumbers writes it in "Miami, FL"
    name: str  # as phonenumbers writes it when it can place the number only in the state
    start: time
    end: time


# Florida and Oklahoma allow telephone solicitation only until 20:00 local time. Add a row to cover
# another state; the window is applied wherever phonenumbers places a number in that state.
STATE_QUIET_HOURS = (
    StateQuietHours("FL", "Florida", time(8, 0), time(20, 0)),
    StateQuietHours("OK", "Oklahoma", time(8, 0), time(20, 0)),
)


def us_state(phone: str) -> StateQuietHours | None:
    """Return the row of STATE_QUIET_HOURS for the state phonenumbers places a US number in, if any."""
    if not phone:
        return None
    try:
        parsed = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return None
    if phonenumbers.region_code_for_number(parsed) != "US":
        return None
    # English descriptions are "Florida" when only the state is known, else "Miami, FL".
    description = geocoder.description_for_number(parsed, "en")
    place = description.rsplit(", ", 1)[-1]
    for state in STATE_QUIET_HOURS:
        if place in (state.code, state.name):
            return state
    return None


def quiet_hours_for(phone: str) -> SendWindow:
    """Return the quiet-hours window for a recipient: the stricter state rule where one applies."""
    state = us_state(phone)
    if state is None:
        return QUIET_HOURS
    return replace(QUIET_HOURS, start=max(QUIET_HOURS.start, state.start), end=min(QUIET_HOURS.end, state.end))


def is_within_quiet_hours(window: SendWindow) -> bool:
    """Return whether a window stays inside 08:00-21:00, so that it needs no allow_outside_quiet_hours."""
    return not window.spans_midnight and window.start >= QUIET_HOURS.start and window.end <= QUIET_HOURS.end


def next_opening(window: SendWindow, zone: ZoneInfo, moment: datetime) -> datetime | None:
    """Return `moment` if the window is open then in `zone`, else the start of its next opening."""
    local_day = moment.astimezone(zone).date()
    # Start a day early: an opening that spans midnight may still be open on the morning of `local_day`.
    for offset in range(-1, 9):
        day = local_day + timedelta(days=offset)
        if day.weekday() not in window.days:
            continue
        start = wall_clock(day, window.start, zone)
        end = wall_clock(day + timedelta(days=1) if window.spans_midnight else day, window.end, zone)
        if moment < start:
            return start
        if moment < end:
            return moment
    return None


def earliest_common_time(constraints: Seq[tuple[SendWindow, ZoneInfo]], moment: datetime) -> datetime | None:
    """Return the first time at or after `moment` when every window is open in its zone, or None if none within SEARCH_HORIZON."""
    candidate = moment
    for _round in range(MAX_ROUNDS):
        openings = [next_opening(window, zone, candidate) for window, zone in constraints]
        if any(opening is None for opening in openings):
            return None
        latest = max(opening for opening in openings if opening is not None)
        if latest == candidate:
            return candidate
        if latest - moment > SEARCH_HORIZON:
            return None
        candidate = latest
    return None
