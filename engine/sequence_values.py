"""Parsing the scalar values of sequence files: delays, clock times and reserved-word checks."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import time, timedelta

DURATION_PATTERN = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
CLOCK_PATTERN = re.compile(r"^(\d{1,2}):(\d{2})$")


@dataclass(frozen=True)
class Delay:
    """A step's `after`: elapsed time, and the number of calendar days when given in days."""

    duration: timedelta
    calendar_days: int | None


def parse_duration(value: str) -> Delay:
    """Parse `0` or a whole number with unit s, m, h or d ("90s", "1d")."""
    if value.strip() == "0":
        return Delay(timedelta(0), None)
    match = DURATION_PATTERN.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a delay: use 0 or a whole number with s, m, h or d, such as 30m or 1d")
    amount, unit = int(match.group(1)), match.group(2)
    return Delay(timedelta(**{DURATION_UNITS[unit]: amount}), amount if unit == "d" else None)


def parse_clock(value: str) -> time:
    """Parse a 24-hour local time "HH:MM"."""
    match = CLOCK_PATTERN.match(value.strip())
    if not match or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        raise ValueError(f"{value!r} is not a time of day: write 24-hour HH:MM in quotes, such as \"09:30\"")
    return time(int(match.group(1)), int(match.group(2)))


def reserved_word(word: str, reserved: frozenset[str]) -> str | None:
    """Return how a normalised word collides with a reserved one, or None when it does not.

    A word that only starts with a reserved word ("STOP NOW") collides too, because the opt-out
    and help handling reads the first word before any keyword or reply word is matched.
    """
    if word in reserved:
        return "is a reserved word"
    first = word.split(" ", 1)[0]
    if first in reserved:
        return f"starts with the reserved word {first}"
    return None
