"""Loading sequence YAML files, with every problem reported as `file:line: field: what, fix`."""

from __future__ import annotations

import difflib
import functools
import logging
import re
import zoneinfo
from collections.abc import Iterable
from datetime import time
from pathlib import Path

import yaml

from engine.keywords import MATCH_MODES, normalise
from engine.phones import InvalidPhoneNumber, to_e164
from engine.reserved_words import RESERVED_KEYWORDS
from engine.send_window import is_within_quiet_hours
from engine.sequence_steps import read_steps
from engine.sequence_values import parse_clock, parse_duration, reserved_word
from engine.sequences import (
    ALL_DAYS, LEAD_STATUSES, ON_REPLY_CHOICES, QUIET_HOURS, RE_ENROLL_CHOICES, WEEKDAYS, Sequence, SendWindow,
)
from engine.timezones import find_zone
from engine.yaml_reader import Entries, NodeReader, Problem, SequenceFileError, line_of

logger = logging.getLogger(__name__)

__all__ = ["Problem", "SequenceFileError", "load_sequence_file", "load_sequence_text", "parse_clock", "parse_duration", "sequence_paths"]

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]*$")
SEQUENCE_KEYS = {
    "name", "description", "keywords", "match", "numbers", "steps", "send_window", "allow_outside_quiet_hours",
    "on_reply", "re_enroll", "lead", "double_opt_in",
}
WINDOW_KEYS = {"days", "start", "end", "time_zone"}
LEAD_KEYS = {"status"}
FULL_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
DAY_NAMES = {name: index for names in (WEEKDAYS, FULL_DAY_NAMES) for index, name in enumerate(names)}


def load_sequence_text(text: str, path: str = "<string>") -> Sequence:
    """Parse one sequence file's text, raising SequenceFileError with every problem found."""
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        parts = [getattr(error, "context", None), getattr(error, "problem", None)]
        detail = ", ".join(part for part in parts if part) or str(error)
        raise SequenceFileError([Problem(path, line, "yaml", f"invalid YAML ({detail}): check indentation and quoting")]) from None
    if root is None:
        raise SequenceFileError([Problem(path, 1, "file", "is empty: add name, keywords and steps")])

    reader = NodeReader(path)
    entries = reader.mapping(root, "", "name: demo")
    if entries is None:
        raise SequenceFileError(reader.problems)
    reader.unknown_keys(entries, SEQUENCE_KEYS, "")
    reader.require(entries, root, ("name", "keywords", "steps"), "", "every sequence needs name, keywords and steps")
    lines = {key: line_of(value) for key, (_key_node, value) in entries.items()}

    name = _read_name(reader, entries)
    description = ""
    if "description" in entries:
        description = reader.text(entries["description"][1], "description", "Demo nurture") or ""
    match = _optional_choice(reader, entries, "match", MATCH_MODES) or MATCH_MODES[0]
    keywords = _read_keywords(reader, entries, lines)
    numbers = _read_numbers(reader, entries)
    allow_outside = _optional_bool(reader, entries, "allow_outside_quiet_hours")
    window = _read_send_window(reader, entries, allow_outside)
    on_reply = _optional_choice(reader, entries, "on_reply", ON_REPLY_CHOICES) or ON_REPLY_CHOICES[0]
    re_enroll = _optional_choice(reader, entries, "re_enroll", RE_ENROLL_CHOICES) or RE_ENROLL_CHOICES[0]
    lead_status = _read_lead(reader, entries)
    double_opt_in = _optional_bool(reader, entries, "double_opt_in")
    steps = read_steps(reader, entries["steps"][1]) if "steps" in entries else []

    if reader.problems:
        raise SequenceFileError(sorted(reader.problems, key=lambda problem: problem.line))
    return Sequence(
        name=name,
        keywords=tuple(keywords),
        steps=tuple(steps),
        description=description,
        source=path,
        match=match,
        numbers=frozenset(numbers),
        send_window=window,
        allow_outside_quiet_hours=allow_outside,
        on_reply=on_reply,
        re_enroll=re_enroll,
        lead_status=lead_status,
        double_opt_in=double_opt_in,
        lines=lines,
    )


def _read_name(reader: NodeReader, entries: Entries) -> str:
    if "name" not in entries:
        return ""
    node = entries["name"][1]
    name = reader.text(node, "name", "demo") or ""
    if name and not NAME_PATTERN.match(name):
        reader.problem(node, "name", f"{name!r} is invalid: use lower-case letters, digits and '-', such as spring-demo")
    return name


def _optional_choice(reader: NodeReader, entries: Entries, key: str, choices: tuple[str, ...]) -> str | None:
    return reader.choice(entries[key][1], key, choices) if key in entries else None


def _optional_bool(reader: NodeReader, entries: Entries, key: str) -> bool:
    return bool(reader.boolean(entries[key][1], key)) if key in entries else False


def _read_keywords(reader: NodeReader, entries: Entries, lines: dict[str, int]) -> list[str]:
    if "keywords" not in entries:
        return []
    keywords: list[str] = []
    for item in reader.items(entries["keywords"][1], "keywords", "[DEMO]"):
        raw = reader.text(item, "keywords", "DEMO")
        if raw is None:
            continue
        keyword = normalise(raw)
        reserved = reserved_word(keyword, RESERVED_KEYWORDS)
        if not keyword:
            reader.problem(item, "keywords", f"{raw!r} has no letters or digits: use a word such as DEMO")
        elif reserved is not None:
            reader.problem(item, "keywords", f"{raw!r} {reserved}: carriers keep it for opt-out, opt-in and help, so pick another word")
        elif keyword in keywords:
            reader.problem(item, "keywords", f"{raw!r} is listed twice: keep one")
        else:
            keywords.append(keyword)
            lines[f"keywords.{keyword}"] = line_of(item)
    return keywords


def _read_numbers(reader: NodeReader, entries: Entries) -> list[str]:
    if "numbers" not in entries:
        return []
    numbers: list[str] = []
    for item in reader.items(entries["numbers"][1], "numbers", '["+15550100000"]'):
        raw = reader.text(item, "numbers", '"+15550100000"')
        if raw is None:
            continue
        try:
            number = to_e164(raw)
        except InvalidPhoneNumber:
            reader.problem(item, "numbers", f"{raw!r} is not a possible phone number: write one of our numbers in E.164, such as +15550100000")
            continue
        if number != raw.strip():
            reader.problem(item, "numbers", f"{raw!r} is not in E.164 form: write {number!r}")
        elif number in numbers:
            reader.problem(item, "numbers", f"{raw!r} is listed twice: keep one")
        else:
            numbers.append(number)
    return numbers


def _read_send_window(reader: NodeReader, entries: Entries, allow_outside: bool) -> SendWindow:
    if "send_window" not in entries:
        return QUIET_HOURS
    node = entries["send_window"][1]
    window_entries = reader.mapping(node, "send_window", "{days: [mon, tue, wed, thu, fri], start: \"09:00\", end: \"17:00\"}")
    if window_entries is None:
        return QUIET_HOURS
    reader.unknown_keys(window_entries, WINDOW_KEYS, "send_window")

    days = _read_days(reader, window_entries["days"][1]) if "days" in window_entries else ALL_DAYS
    clocks: dict[str, time | None] = {"start": QUIET_HOURS.start, "end": QUIET_HOURS.end}
    for key in ("start", "end"):
        if key in window_entries:
            value_node = window_entries[key][1]
            raw = reader.text(value_node, f"send_window.{key}", '"09:00"')
            clocks[key] = None
            if raw is not None:
                try:
                    clocks[key] = parse_clock(raw)
                except ValueError as error:
                    reader.problem(value_node, f"send_window.{key}", str(error))
    time_zone = None
    if "time_zone" in window_entries:
        zone_node = window_entries["time_zone"][1]
        time_zone = reader.text(zone_node, "send_window.time_zone", "America/Chicago")
        if time_zone is not None and find_zone(time_zone) is None:
            reader.problem(zone_node, "send_window.time_zone", f"{time_zone!r} is not a known IANA time zone: {_zone_hint(time_zone)}")
            time_zone = None

    start, end = clocks["start"], clocks["end"]
    if days is None or start is None or end is None:
        return QUIET_HOURS
    window = SendWindow(days=days, start=start, end=end, time_zone=time_zone)
    if not allow_outside and not is_within_quiet_hours(window):
        reader.problem(
            node, "send_window",
            f"{start:%H:%M}-{end:%H:%M} reaches outside the quiet hours {QUIET_HOURS.start:%H:%M}-{QUIET_HOURS.end:%H:%M}:"
            " narrow it, or add allow_outside_quiet_hours: true if these texts may go out at those hours",
        )
    return window


def _read_days(reader: NodeReader, node: yaml.Node) -> frozenset[int] | None:
    """Return the weekday numbers listed, or None when any item is invalid."""
    days: set[int] = set()
    valid = True
    for item in reader.items(node, "send_window.days", "[mon, tue, wed, thu, fri]"):
        raw = reader.text(item, "send_window.days", "mon")
        if raw is None:
            valid = False
            continue
        word = raw.strip().lower()
        day = DAY_NAMES.get(word)
        if day is None:
            reader.problem(item, "send_window.days", f"{raw!r} is not a day: use {', '.join(WEEKDAYS)}")
            valid = False
        elif day in days:
            reader.problem(item, "send_window.days", f"{raw!r} is listed twice: keep one")
        else:
            days.add(day)
    return frozenset(days) if days and valid else None


@functools.lru_cache(maxsize=1)
def _zone_names() -> tuple[str, ...]:
    return tuple(sorted(zoneinfo.available_timezones()))


def _zone_hint(name: str) -> str:
    close = difflib.get_close_matches(name, _zone_names(), n=1)
    return f"did you mean {close[0]}?" if close else "use a name such as America/New_York"


def _read_lead(reader: NodeReader, entries: Entries) -> str | None:
    if "lead" not in entries:
        return None
    lead_entries = reader.mapping(entries["lead"][1], "lead", "{status: contacted}")
    if lead_entries is None:
        return None
    reader.unknown_keys(lead_entries, LEAD_KEYS, "lead")
    if "status" not in lead_entries:
        reader.problem(entries["lead"][1], "lead.status", f"is missing: use one of {', '.join(LEAD_STATUSES)}")
        return None
    return reader.choice(lead_entries["status"][1], "lead.status", LEAD_STATUSES)


def load_sequence_file(path: Path) -> Sequence:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise SequenceFileError([Problem(str(path), 1, "file", f"cannot be read ({error}): save it as UTF-8 text")]) from None
    return load_sequence_text(text, str(path))


def sequence_paths(paths: Iterable[Path]) -> list[Path]:
    """Expand folders to the .yaml and .yml files inside them, sorted for stable output."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file()))
        else:
            found.append(path)
    return found
