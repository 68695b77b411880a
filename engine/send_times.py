"""When an engine-initiated text outside a sequence (a broadcast, a double opt-in request) may go out.

TODO: switch `window_due_at` to the send-window function of engine.schedule / engine.send_window once
that lands, so that broadcasts and sequence steps share one window. Until then this applies a fixed
09:00-20:00 window in the contact's local time.
"""

from __future__ import annotations

import logging
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as number_time_zones

from engine.models import Contact

logger = logging.getLogger(__name__)

WINDOW_OPENS = time(9, 0)  # local time
WINDOW_CLOSES = time(20, 0)  # local time; a text is due strictly before this
# Used when neither the contact record nor its number gives a time zone, because US businesses are the main users.
FALLBACK_TIME_ZONE = "America/New_York"


def contact_time_zones(contact: Contact) -> list[ZoneInfo]:
    """Return the contact's IANA zone, else every zone its number may be in, else the fallback zone."""
    names: tuple[str, ...] = ()
    if contact.time_zone:
        names = (contact.time_zone,)
    else:
        try:
            names = number_time_zones.time_zones_for_number(phonenumbers.parse(contact.phone))
        except phonenumbers.NumberParseException:
            names = ()
    zones = []
    for name in names:
        try:
            zones.append(ZoneInfo(name))
        except (ZoneInfoNotFoundError, ValueError):
            continue
    return zones or [ZoneInfo(FALLBACK_TIME_ZONE)]


def _next_open(moment: datetime, zone: ZoneInfo) -> datetime:
    local = moment.astimezone(zone)
    if WINDOW_OPENS <= local.time() < WINDOW_CLOSES:
        return moment
    day = local.date() if local.time() < WINDOW_OPENS else local.date() + timedelta(days=1)
    return datetime.combine(day, WINDOW_OPENS, tzinfo=zone).astimezone(moment.tzinfo)


def window_due_at(contact: Contact, now: datetime) -> datetime:
    """Return `now` if it is inside the send window in every zone the contact may be in, else when it next is."""
    zones = contact_time_zones(contact)
    due = now
    # Each pass moves `due` to the next opening in a zone where it is outside the window. The zones of one
    # number overlap for most of the window, so this settles within a few passes.
    for _attempt in range(len(zones) * 3):
        moved = False
        for zone in zones:
            opening = _next_open(due, zone)
            if opening != due:
                due, moved = opening, True
        if not moved:
            return due
    logger.warning("contact %s: no common send window in zones %s; using %s", contact.id, [str(z) for z in zones], due.isoformat())
    return due
