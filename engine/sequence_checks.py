"""Checks that look past one field: clashes between files, and warnings about texts and timing that still load."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from engine.keywords import KeywordIndex, KeywordRule
from engine.segments import count_segments, describe_character, non_gsm7_characters
from engine.send_window import STATE_QUIET_HOURS
from engine.sequences import Sequence, SendWindow, Step
from engine.templates import TemplateError, field_name_hints, render_sample
from engine.yaml_reader import Problem

logger = logging.getLogger(__name__)

MAX_SEGMENTS = 3


def keyword_rules(sequences: Iterable[Sequence]) -> list[KeywordRule]:
    return [
        KeywordRule(keyword=keyword, sequence_name=sequence.name, match=sequence.match, numbers=sequence.numbers)
        for sequence in sequences
        for keyword in sequence.keywords
    ]


def library_problems(sequences: list[Sequence]) -> list[Problem]:
    """Return the problems between files: a name used twice, a keyword two sequences claim, a reply word a keyword hides.

    A keyword limited to some numbers may share its word with a keyword for every number: the limited
    one wins on its numbers. Two claims clash when both cover every number or share a number.
    """
    problems: list[Problem] = []
    names: dict[str, Sequence] = {}
    for sequence in sequences:
        if sequence.name in names:
            other = names[sequence.name]
            problems.append(Problem(sequence.source, sequence.lines.get("name", 1), "name",
                                    f"{sequence.name!r} is already the name of {other.source}: give each sequence its own name"))
        else:
            names[sequence.name] = sequence

    claims: dict[str, list[Sequence]] = {}
    for sequence in sequences:
        for keyword in sequence.keywords:
            for other in claims.get(keyword, []):
                shared = sequence.numbers & other.numbers
                if sequence.numbers and other.numbers and not shared:
                    continue
                if bool(sequence.numbers) != bool(other.numbers):
                    continue
                where = f"on {', '.join(sorted(shared))}" if shared else "on every number"
                problems.append(Problem(
                    sequence.source, sequence.lines.get(f"keywords.{keyword}", 1), "keywords",
                    f"{keyword!r} is already a keyword of sequence {other.name!r} ({other.source}:{other.lines.get(f'keywords.{keyword}', 1)})"
                    f" {where}: pick another word, or give the two sequences different numbers",
                ))
            claims.setdefault(keyword, []).append(sequence)

    index = KeywordIndex(keyword_rules(sequences))
    all_numbers = {""}.union(*(sequence.numbers for sequence in sequences))
    for sequence in sequences:
        for position, step in enumerate(sequence.steps):
            for word, action in step.replies.items():
                for number in sorted(sequence.numbers or all_numbers):
                    rule = index.match(word, number)
                    if rule is None:
                        continue
                    problems.append(Problem(
                        sequence.source, action.line, f"steps[{position}].replies.{word}",
                        f"{word!r} is also a keyword of sequence {rule.sequence_name!r}, and keywords are matched first,"
                        " so this reply word would never run: pick another reply word",
                    ))
                    break
    return problems


def sequence_warnings(sequence: Sequence) -> list[Problem]:
    """Return what is allowed but likely unintended: long or UCS-2 texts, misspelt fields, unreachable steps, windows that never open."""
    warnings: list[Problem] = []
    keyword = max(sequence.keywords, key=len, default="DEMO")
    for position, step in enumerate(sequence.steps):
        field = f"steps[{position}]"
        warnings += _text_warnings(sequence, step.text_line or step.line, f"{field}.text", step.text, keyword)
        for word, action in step.replies.items():
            if action.reply is not None:
                warnings += _text_warnings(sequence, action.line, f"{field}.replies.{word}.reply", action.reply, keyword)
        if step.at is not None and sequence.send_window.time_zone is None and not _clock_inside(sequence.send_window, step):
            warnings.append(Problem(sequence.source, step.line, f"{field}.at",
                                    f"{step.at:%H:%M} is outside the send window {sequence.send_window.describe()}, so the step waits for its next opening"))

    reachable = _reachable_steps(sequence)
    for position, step in enumerate(sequence.steps):
        if step.id not in reachable:
            warnings.append(Problem(sequence.source, step.line, f"steps[{position}]",
                                    f"{step.id!r} is never sent: no step goes on to it and no reply word has next: {step.id}; remove it or point a next at it"))

    window = sequence.send_window
    if not sequence.allow_outside_quiet_hours and window.time_zone is None and not window.spans_midnight:
        for state in STATE_QUIET_HOURS:
            if window.start >= state.end or window.end <= state.start:
                warnings.append(Problem(
                    sequence.source, sequence.lines.get("send_window", 1), "send_window",
                    f"{window.start:%H:%M}-{window.end:%H:%M} never opens for numbers in {state.name}, where texts may go out only"
                    f" {state.start:%H:%M}-{state.end:%H:%M}; steps to them wait for those hours instead",
                ))
    return warnings


def _text_warnings(sequence: Sequence, line: int, field: str, template: str, keyword: str) -> list[Problem]:
    try:
        sample = render_sample(template, keyword)
        hints = field_name_hints(template)
    except TemplateError:
        return []  # reported as an error by the loader
    warnings = [Problem(sequence.source, line, field, hint) for hint in hints]
    segments = count_segments(sample)
    ucs2 = non_gsm7_characters(sample)
    if ucs2:
        names = ", ".join(describe_character(char) for char in ucs2)
        warnings.append(Problem(sequence.source, line, field,
                                f"{names} {'force' if len(ucs2) > 1 else 'forces'} UCS-2 encoding, which fits 70 characters per segment instead of 160"
                                f" ({segments.count} segment{'s' if segments.count != 1 else ''} now):"
                                " use straight quotes ' and \" and leave out emoji"))
    if segments.count > MAX_SEGMENTS:
        warnings.append(Problem(sequence.source, line, field,
                                f"is {segments.count} segments ({segments.encoding}, {segments.units} characters with optional fields"
                                f" at their defaults): texts over {MAX_SEGMENTS} segments cost more per send; shorten it"))
    return warnings


def _clock_inside(window: SendWindow, step: Step) -> bool:
    assert step.at is not None
    if window.spans_midnight:
        return step.at >= window.start or step.at < window.end
    return window.start <= step.at < window.end


def _reachable_steps(sequence: Sequence) -> set[str]:
    """Return the ids of the steps an enrollment can reach from the first step."""
    seen: set[str] = set()
    pending = [sequence.first_step.id]
    while pending:
        step_id = pending.pop()
        if step_id in seen or sequence.step(step_id) is None:
            continue
        seen.add(step_id)
        step = sequence.step(step_id)
        assert step is not None
        pending.append(sequence.after_send(step_id))
        pending.extend(action.next for action in step.replies.values() if action.next is not None)
    return seen
