"""Send-time arithmetic: pure functions shared by the engine and `simulate`, so the preview is what happens.

Nothing here reads the clock or the database: the caller passes the previous send time and what is
known about the recipient.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from engine.config import DEFAULT_TIME_ZONE
from engine.send_window import earliest_common_time, quiet_hours_for
from engine.sequences import Sequence, SendWindow, Step
from engine.timezones import find_zone, number_time_zones, wall_clock

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recipient:
    """The facts about a text's recipient that scheduling uses."""

    phone: str  # E.164; may be empty when unknown (simulate without --phone)
    time_zone: str | None = None  # IANA name from the contact record; None: derive from the number
    default_time_zone: str = DEFAULT_TIME_ZONE  # SMSDRIP_DEFAULT_TZ, for numbers that cannot be placed


def recipient_zones(recipient: Recipient) -> tuple[ZoneInfo, ...]:
    """Return the zones the recipient may be in: the contact's own, else the number's, else the default."""
    if recipient.time_zone:
        zone = find_zone(recipient.time_zone)
        if zone is not None:
            return (zone,)
        logger.warning("contact time zone %r is not a known IANA name; using the number's zones instead", recipient.time_zone)
    zones = tuple(ZoneInfo(name) for name in number_time_zones(recipient.phone))
    return zones or (default_zone(recipient),)


def default_zone(recipient: Recipient) -> ZoneInfo:
    zone = find_zone(recipient.default_time_zone)
    if zone is None:
        raise ValueError(f"default time zone {recipient.default_time_zone!r} is not a known IANA name")
    return zone


def due_time(sequence: Sequence, step: Step, previous_send: datetime, recipient: Recipient) -> datetime:
    """Return when `step` is due (in UTC), counted from `previous_send`: the previous step's send, the enrollment or a reply.

    A first step with `after: 0` replies to the text that enrolled the prospect, so it is due at once
    at any hour. Every other step waits for the send window and the recipient's quiet hours.
    """
    if previous_send.tzinfo is None:
        raise ValueError("previous_send must be timezone-aware")
    if step.id == sequence.first_step.id and step.immediate:
        return previous_send.astimezone(timezone.utc)

    zones = recipient_zones(recipient)
    due = _plan(sequence, step, previous_send, recipient, zones)
    fallback = (default_zone(recipient),)
    if due is None and zones != fallback:
        # The number spans zones whose windows never overlap: use SMSDRIP_DEFAULT_TZ alone.
        due = _plan(sequence, step, previous_send, recipient, fallback)
    if due is None:
        # Only reachable when the file's window and a state's quiet hours never overlap (`check` warns
        # about it); the state law wins over the author's window.
        logger.warning("sequence %s step %s: send window %s never meets the recipient's quiet hours; using quiet hours alone",
                       sequence.name, step.id, sequence.send_window.describe())
        due = _plan(sequence, step, previous_send, recipient, fallback, use_file_window=False)
    assert due is not None, "quiet hours open every day"
    return due


def nominal_time(step: Step, previous_send: datetime, zones: tuple[ZoneInfo, ...]) -> datetime:
    """Return when `step` falls before any window applies.

    Seconds, minutes and hours are elapsed time. Days count on the recipient's calendar, so `1d` keeps
    the clock time across a DST change. `at` sets the clock time on that day, or on the day after when
    that moment is already past. With several zones the latest result wins, so nobody gets it early.
    """
    if step.calendar_days is None:
        # In UTC, because adding to a datetime in a zone with DST adds wall-clock time, not elapsed time.
        return previous_send.astimezone(timezone.utc) + step.after
    candidates: list[datetime] = []
    for zone in zones:
        local = previous_send.astimezone(zone)
        day = local.date() + timedelta(days=step.calendar_days)
        clock = step.at if step.at is not None else local.time()
        moment = wall_clock(day, clock, zone)
        if step.at is not None and moment < previous_send:
            moment = wall_clock(day + timedelta(days=1), clock, zone)
        candidates.append(moment)
    return max(candidates)


def window_constraints(
    sequence: Sequence, recipient: Recipient, zones: tuple[ZoneInfo, ...], use_file_window: bool = True
) -> list[tuple[SendWindow, ZoneInfo]]:
    """Return each (window, zone) pair that must be open for a step of `sequence` to go out."""
    constraints: list[tuple[SendWindow, ZoneInfo]] = []
    if use_file_window:
        window = sequence.send_window
        window_zone = find_zone(window.time_zone) if window.time_zone else None
        constraints.extend((window, zone) for zone in ((window_zone,) if window_zone else zones))
    if not sequence.allow_outside_quiet_hours:
        quiet = quiet_hours_for(recipient.phone)
        constraints.extend((quiet, zone) for zone in zones)
    return constraints


def _plan(
    sequence: Sequence, step: Step, previous_send: datetime, recipient: Recipient, zones: tuple[ZoneInfo, ...],
    use_file_window: bool = True,
) -> datetime | None:
    nominal = nominal_time(step, previous_send, zones)
    constraints = window_constraints(sequence, recipient, zones, use_file_window)
    if not constraints:
        return nominal
    return earliest_common_time(constraints, nominal)


def quiet_hours_due(moment: datetime, recipient: Recipient) -> datetime:
    """Return `moment`, or the next time after it that is inside the recipient's quiet hours in every zone they may be in.

    For texts outside a sequence (broadcasts, double opt-in requests): the same rules as steps, without a file's window.
    """
    quiet = quiet_hours_for(recipient.phone)
    zones = recipient_zones(recipient)
    due = earliest_common_time([(quiet, zone) for zone in zones], moment)
    if due is None:
        due = earliest_common_time([(quiet, default_zone(recipient))], moment)
    assert due is not None, "quiet hours open every day"
    return due.astimezone(timezone.utc)
