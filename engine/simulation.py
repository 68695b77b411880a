"""Previewing a sequence: the timeline the engine would follow for one contact, from the same scheduling and machine code."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from engine.machine import TERMINAL_STATES, machine_for
from engine.replies import match_reply_word
from engine.schedule import Recipient, due_time, recipient_zones
from engine.segments import Segments, count_segments
from engine.sequences import ReplyAction, Sequence, Step
from engine.templates import TemplateError, render

logger = logging.getLogger(__name__)

# A sequence whose replies jump back and forth could go on forever; a preview stops here.
MAX_SENDS = 100


@dataclass(frozen=True)
class SimulatedReply:
    """A reply the author scripted with --reply, and what the engine does with it."""

    text: str
    word: str | None  # the reply word it matched, or None
    action: ReplyAction | None
    answer: str | None  # rendered reply text sent back at once
    outcome: str  # "next STEP", "end REASON", "continue", "stop"


@dataclass(frozen=True)
class TimelineEntry:
    step: Step
    send_at: datetime  # UTC
    zone: ZoneInfo  # the recipient's zone used to show local times
    text: str  # rendered
    segments: Segments
    reply: SimulatedReply | None = None


@dataclass
class Timeline:
    sequence: Sequence
    start: datetime
    zone: ZoneInfo
    entries: list[TimelineEntry] = field(default_factory=list)
    end: str = "completed"  # why the enrollment ends; "preview stopped" when MAX_SENDS was reached


@dataclass
class _PreviewEnrollment:
    """Stands in for an Enrollment row: the shared machine only reads and writes `state`."""

    state: str


def simulate(
    sequence: Sequence, start: datetime, recipient: Recipient, fields: Mapping[str, Any], replies: list[tuple[str, str]]
) -> Timeline:
    """Return the timeline of one enrollment that starts at `start`; each (step id, text) in `replies` arrives right after that step's send.

    Replies are used in order, each once, so a loop through the same step takes the next reply for it.
    """
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    machine = machine_for(sequence)
    enrollment = _PreviewEnrollment(state=machine.initial)
    scripted = list(replies)
    timeline = Timeline(sequence=sequence, start=start, zone=recipient_zones(recipient)[0])

    step, previous = sequence.first_step, start
    for _count in range(MAX_SENDS):
        send_at = due_time(sequence, step, previous, recipient)
        text = _render(step.text, fields)
        reply_text = _take_reply(scripted, step.id)
        reply = _apply_reply(sequence, step, reply_text, fields) if reply_text is not None else None
        timeline.entries.append(TimelineEntry(step, send_at, timeline.zone, text, count_segments(text), reply))

        if reply is not None and reply.outcome.startswith("next "):
            step = _require_step(sequence, machine.go_to(enrollment, reply.outcome.removeprefix("next ")))
            previous = send_at
            continue
        if reply is not None and reply.outcome.startswith("end "):
            timeline.end = reply.outcome.removeprefix("end ")
            return timeline
        if reply is not None and reply.outcome == "stop":
            timeline.end = "replied"
            return timeline

        state = machine.advance(enrollment)
        if state in TERMINAL_STATES:
            timeline.end = state
            return timeline
        step, previous = _require_step(sequence, state), send_at
    timeline.end = "preview stopped"
    logger.info("preview of %s stopped after %d texts", sequence.name, MAX_SENDS)
    return timeline


def _require_step(sequence: Sequence, step_id: str) -> Step:
    step = sequence.step(step_id)
    assert step is not None, f"{step_id!r} is a state of {sequence.name!r} but not a step"
    return step


def _take_reply(scripted: list[tuple[str, str]], step_id: str) -> str | None:
    for index, (reply_step, text) in enumerate(scripted):
        if reply_step == step_id:
            del scripted[index]
            return text
    return None


def _apply_reply(sequence: Sequence, step: Step, text: str, fields: Mapping[str, Any]) -> SimulatedReply:
    matched = match_reply_word(sequence, step, text)
    if matched is None:
        outcome = "continue" if sequence.on_reply == "continue" else "stop"
        return SimulatedReply(text=text, word=None, action=None, answer=None, outcome=outcome)
    word, action = matched
    answer = _render(action.reply, fields) if action.reply is not None else None
    if action.next is not None:
        outcome = f"next {action.next}"
    elif action.end is not None:
        outcome = f"end {action.end}"
    else:
        outcome = "continue"
    return SimulatedReply(text=text, word=word, action=action, answer=answer, outcome=outcome)


def _render(template: str, fields: Mapping[str, Any]) -> str:
    try:
        return render(template, fields)
    except TemplateError as error:
        # `check` rejects such templates; show the problem in place of the text.
        return f"<cannot render: {error}>"
