"""Reading the `steps` of a sequence file: timing, text, reply words and what follows each step."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import time

import yaml

from engine.keywords import normalise
from engine.machine import TERMINAL_STATES
from engine.reserved_words import RESERVED_REPLY_WORDS
from engine.sequence_values import Delay, parse_clock, parse_duration, reserved_word
from engine.sequences import AUTHOR_END_REASONS, LEAD_STATUSES, ReplyAction, Step
from engine.templates import template_problems
from engine.yaml_reader import Entries, NodeReader, join, line_of

logger = logging.getLogger(__name__)

STEP_KEYS = {"id", "after", "at", "text", "replies", "next", "end"}
REPLY_ACTION_KEYS = {"next", "end", "status", "reply", "assign"}
# Step ids become state names stored in 100-character columns.
STEP_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")
STEP_EXAMPLE = "[{id: welcome, after: 0, text: \"Thanks for texting!\"}]"


@dataclass(frozen=True)
class _Target:
    """A `next` that names a step, checked once every step id is known."""

    node: yaml.Node
    field: str
    step_id: str


def read_steps(reader: NodeReader, node: yaml.Node) -> list[Step]:
    """Read the steps list, reporting every problem; returns only the steps that read cleanly."""
    steps: list[Step] = []
    ids: dict[str, int] = {}  # every id given, even on a step with other problems, so `next` checks stay quiet
    targets: list[_Target] = []
    for index, step_node in enumerate(reader.items(node, "steps", STEP_EXAMPLE)):
        field = f"steps[{index}]"
        entries = reader.mapping(step_node, field, "{id: welcome, after: 0, text: \"Thanks for texting!\"}")
        if entries is None:
            continue
        reader.unknown_keys(entries, STEP_KEYS, field)
        reader.require(entries, step_node, ("id", "after", "text"), field, "every step needs id, after and text")
        problems_before = len(reader.problems)

        step_id = _read_step_id(reader, entries, field, ids)
        delay = _read_after(reader, entries, field)
        at = _read_at(reader, entries, field, delay)
        text = _read_template(reader, entries["text"][1], f"{field}.text") if "text" in entries else None
        replies = _read_replies(reader, entries, field, targets)
        next_step, end = _read_flow(reader, entries, field, targets)

        if len(reader.problems) == problems_before and step_id is not None and delay is not None and text is not None:
            steps.append(Step(
                id=step_id, after=delay.duration, text=text, line=line_of(step_node), text_line=line_of(entries["text"][1]),
                calendar_days=delay.calendar_days,
                at=at, replies=replies, next=next_step, end=end,
            ))

    for target in targets:
        if target.step_id not in ids:
            choices = ", ".join(ids) or "the ids of your steps"
            reader.problem(target.node, target.field, f"no step has id {target.step_id!r}: use one of {choices}")
    if not reader.problems:
        _report_loops(reader, steps)
    return steps


def _read_step_id(reader: NodeReader, entries: Entries, field: str, ids: dict[str, int]) -> str | None:
    if "id" not in entries:
        return None
    node = entries["id"][1]
    step_id = reader.text(node, f"{field}.id", "welcome")
    if step_id is None:
        return None
    if not STEP_ID_PATTERN.match(step_id):
        reader.problem(node, f"{field}.id", f"{step_id!r} is invalid: use up to 100 letters, digits, '_' and '-', such as day-2")
        return None
    if step_id in TERMINAL_STATES:
        reader.problem(node, f"{field}.id", f"{step_id!r} is the name of an end reason: pick another id, such as {step_id}-step")
        return None
    if step_id in ids:
        reader.problem(node, f"{field}.id", f"{step_id!r} is already the id of the step on line {ids[step_id]}: give each step its own id")
        return None
    ids[step_id] = line_of(node)
    return step_id


def _read_after(reader: NodeReader, entries: Entries, field: str) -> Delay | None:
    if "after" not in entries:
        return None
    node = entries["after"][1]
    raw = reader.text(node, f"{field}.after", "1d")
    if raw is None:
        return None
    try:
        return parse_duration(raw)
    except ValueError as error:
        reader.problem(node, f"{field}.after", str(error))
        return None


def _read_at(reader: NodeReader, entries: Entries, field: str, delay: Delay | None) -> time | None:
    if "at" not in entries:
        return None
    node = entries["at"][1]
    raw = reader.text(node, f"{field}.at", '"09:30"')
    if raw is None:
        return None
    try:
        at = parse_clock(raw)
    except ValueError as error:
        reader.problem(node, f"{field}.at", str(error))
        return None
    if delay is not None and delay.calendar_days is None:
        reader.problem(node, f"{field}.at", "needs after in days, because it sets the clock time on that day: write after: 1d, or 0d for the same day")
    return at


def _read_template(reader: NodeReader, node: yaml.Node, field: str) -> str | None:
    text = reader.text(node, field, '"Hi {first_name|there}!"')
    if text is None:
        return None
    for problem in template_problems(text):
        reader.problem(node, field, problem)
    return text


def _read_replies(reader: NodeReader, entries: Entries, field: str, targets: list[_Target]) -> dict[str, ReplyAction]:
    if "replies" not in entries:
        return {}
    node = entries["replies"][1]
    reply_entries = reader.mapping(node, f"{field}.replies", "{YES: {next: call}, NO: {end: lost}}")
    if reply_entries is None:
        return {}
    if not reply_entries:
        reader.problem(node, f"{field}.replies", "is empty: add a reply word such as YES: {next: call}, or remove replies")
    replies: dict[str, ReplyAction] = {}
    word_lines: dict[str, int] = {}
    for raw_word, (word_node, action_node) in reply_entries.items():
        word_field = f"{field}.replies.{raw_word}"
        word = normalise(raw_word)
        reserved = reserved_word(word, RESERVED_REPLY_WORDS)
        if not word:
            reader.problem(word_node, word_field, f"{raw_word!r} has no letters or digits: use a word such as YES")
        elif reserved is not None:
            reader.problem(word_node, word_field, f"{raw_word!r} {reserved}: carriers keep it for opt-out, opt-in and help, so pick another word")
        elif word in replies:
            reader.problem(word_node, word_field, f"{raw_word!r} is the same reply word as the one on line {word_lines[word]}: keep one")
        action = _read_action(reader, action_node, word_field, targets, line_of(word_node))
        if action is not None and word and reserved is None and word not in replies:
            replies[word] = action
        word_lines.setdefault(word, line_of(word_node))
    return replies


def _read_action(reader: NodeReader, node: yaml.Node, field: str, targets: list[_Target], line: int) -> ReplyAction | None:
    entries = reader.mapping(node, field, "{next: call} or {end: converted, reply: \"Great!\"}")
    if entries is None:
        return None
    reader.unknown_keys(entries, REPLY_ACTION_KEYS, field)
    if not entries:
        reader.problem(node, field, f"has no action: use one or more of {', '.join(sorted(REPLY_ACTION_KEYS))}")
        return None
    next_step, end = _read_flow(reader, entries, field, targets)
    status = reader.choice(entries["status"][1], join(field, "status"), LEAD_STATUSES) if "status" in entries else None
    reply = _read_template(reader, entries["reply"][1], join(field, "reply")) if "reply" in entries else None
    assign = bool(reader.boolean(entries["assign"][1], join(field, "assign"))) if "assign" in entries else False
    return ReplyAction(next=next_step, end=end, status=status, reply=reply, assign=assign, line=line)


def _read_flow(reader: NodeReader, entries: Entries, field: str, targets: list[_Target]) -> tuple[str | None, str | None]:
    """Read `next` and `end`, which set where an enrollment goes next; a file may give one of them, not both."""
    next_step = end = None
    if "next" in entries:
        node = entries["next"][1]
        next_step = reader.text(node, join(field, "next"), "call")
        if next_step is not None:
            targets.append(_Target(node, join(field, "next"), next_step))
    if "end" in entries:
        end = reader.choice(entries["end"][1], join(field, "end"), AUTHOR_END_REASONS)
    if "next" in entries and "end" in entries:
        reader.problem(entries["end"][0], join(field, "end"), "cannot be combined with next: keep next to go on, or end to stop")
    return next_step, end


def _report_loops(reader: NodeReader, steps: list[Step]) -> None:
    """Report steps whose `next` leads back to a step already passed, so the sequence would never end by itself."""
    ids = [step.id for step in steps]
    by_id = {step.id: step for step in steps}

    def successor(step: Step) -> str | None:
        if step.end is not None:
            return None
        if step.next is not None:
            return step.next
        index = ids.index(step.id)
        return ids[index + 1] if index + 1 < len(ids) else None

    reported: set[frozenset[str]] = set()
    for start in ids:
        path: list[str] = []
        current: str | None = start
        while current is not None and current not in path:
            path.append(current)
            current = successor(by_id[current])
        if current is None:
            continue
        loop = path[path.index(current):]
        if frozenset(loop) in reported:
            continue
        reported.add(frozenset(loop))
        closing = by_id[loop[-1]]  # the step whose `next` (or position) leads back
        index = ids.index(closing.id)
        route = " -> ".join([*loop, current])
        reader.problem_at(
            closing.line, f"steps[{index}].next",
            f"{route} repeats forever: give one of these steps end: completed, or point next at a later step",
        )
