"""Time zones: looking up IANA names, a phone number's zones, and wall-clock times across DST changes."""

from __future__ import annotations

import functools
import logging
from datetime import date, datetime, time, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as number_timezone

logger = logging.getLogger(__name__)

# Zone name phonenumbers returns for a number it cannot place.
UNKNOWN_ZONE = "Etc/Unknown"


@functools.lru_cache(maxsize=512)
def find_zone(name: str) -> ZoneInfo | None:
    """Return the zone for an IANA name such as America/New_York, or None when tzdata does not know it."""
    if not name or name != name.strip():
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def number_time_zones(phone: str) -> tuple[str, ...]:
    """Return the IANA zones phonenumbers places an E.164 number in; empty when it cannot place it."""
    if not phone:
        return ()
    try:
        parsed = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return ()
    names = number_timezone.time_zones_for_number(parsed)
    return tuple(name for name in names if name != UNKNOWN_ZONE and find_zone(name) is not None)


def wall_clock(day: date, clock: time, zone: ZoneInfo) -> datetime:
    """Return, in UTC, the moment the clocks in `zone` show `clock` on `day`.

    A clock time skipped when DST starts moves forward by the gap (02:30 becomes 03:30 in New York).
    One that happens twice when DST ends is its first occurrence. Both follow from zoneinfo reading
    `fold=0` as the offset in force before the change.
    """
    return datetime.combine(day, clock, tzinfo=zone).astimezone(timezone.utc)
