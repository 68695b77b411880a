"""Sequence definitions: the in-memory form of the YAML files in the sequences folder."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time, timedelta

logger = logging.getLogger(__name__)

# Lead statuses a sequence may set (on enrollment or from a reply), in the order a lead usually moves.
LEAD_STATUSES = ("new", "contacted", "engaged", "qualified", "nurturing", "converted", "lost")
# Reasons an author may end a sequence with; the engine adds others (replied, opted_out, ...).
AUTHOR_END_REASONS = ("completed", "converted", "lost")
ON_REPLY_CHOICES = ("stop", "continue")
RE_ENROLL_CHOICES = ("ignore", "restart")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # index = datetime.weekday()
ALL_DAYS = frozenset(range(7))


@dataclass(frozen=True)
class SendWindow:
    """Local hours during which steps may go out; a step due outside waits for the next opening."""

    days: frozenset[int]  # datetime.weekday() numbers (0 = Monday) on which an opening starts
    start: time
    end: time  # not after start: the opening spans midnight and ends on the next day (equal: open all day)
    time_zone: str | None = None  # IANA name; None: the recipient's time zone

    @property
    def spans_midnight(self) -> bool:
        return self.end <= self.start

    def describe(self) -> str:
        """Render the window for humans, such as "mon-fri 09:00-17:00 (America/Chicago)"."""
        days = sorted(self.days)
        if days == list(range(7)):
            day_text = "every day"
        elif days == list(range(days[0], days[-1] + 1)):
            day_text = f"{WEEKDAYS[days[0]]}-{WEEKDAYS[days[-1]]}"
        else:
            day_text = ",".join(WEEKDAYS[day] for day in days)
        zone = f" ({self.time_zone})" if self.time_zone else ""
        return f"{day_text} {self.start:%H:%M}-{self.end:%H:%M}{zone}"


# The usual US quiet-hours rule: texts only from 08:00 to 21:00 in the recipient's local time.
QUIET_HOURS = SendWindow(days=ALL_DAYS, start=time(8, 0), end=time(21, 0))


@dataclass(frozen=True)
class ReplyAction:
    """Actions a reply word runs: any combination, except `next` together with `end`."""

    next: str | None = None  # step to jump to, scheduled from the moment of the reply
    end: str | None = None  # one of AUTHOR_END_REASONS
    status: str | None = None  # lead status to set on the contact
    reply: str | None = None  # template sent back at once, in the response to the reply
    assign: bool = False  # hand the lead to a person
    line: int = 0  # line of the reply word in its file


@dataclass(frozen=True)
class Step:
    id: str
    after: timedelta  # from the previous step's send; from enrollment for the first step
    text: str
    line: int = 0  # line of the step in its file, for error messages
    text_line: int = 0  # line of the step's text, for warnings about the text
    # Set when `after` was given in days: the delay then counts calendar days on the recipient's clock.
    calendar_days: int | None = None
    at: time | None = None  # recipient-local clock time on the day `after` lands on
    replies: Mapping[str, ReplyAction] = field(default_factory=dict)  # normalised reply word -> actions
    next: str | None = None  # step sent after this one; None: the step listed next
    end: str | None = None  # end reason once this step is sent, instead of going on

    @property
    def immediate(self) -> bool:
        return self.after == timedelta(0) and self.at is None


@dataclass(frozen=True)
class Sequence:
    name: str
    keywords: tuple[str, ...]  # normalised
    steps: tuple[Step, ...]
    description: str = ""
    source: str = ""  # file the sequence was loaded from
    match: str = "first_word"
    numbers: frozenset[str] = field(default_factory=frozenset)  # E.164; empty: every number
    send_window: SendWindow = QUIET_HOURS
    allow_outside_quiet_hours: bool = False
    on_reply: str = "stop"  # what any reply that is no reply word does
    re_enroll: str = "ignore"  # what texting the keyword again while enrolled does
    lead_status: str | None = None  # lead status set on enrollment
    double_opt_in: bool = False
    lines: Mapping[str, int] = field(default_factory=dict)  # "keywords.DEMO", "name", ... -> line, for errors

    def step(self, step_id: str) -> Step | None:
        for step in self.steps:
            if step.id == step_id:
                return step
        return None

    def step_after(self, step_id: str) -> Step | None:
        """Return the step listed after `step_id`, or None after the last one."""
        ids = [step.id for step in self.steps]
        index = ids.index(step_id)
        return self.steps[index + 1] if index + 1 < len(self.steps) else None

    def after_send(self, step_id: str) -> str:
        """Return what follows once `step_id` is sent: a step id or an end reason."""
        step = self.step(step_id)
        if step is None:
            raise KeyError(f"sequence {self.name!r} has no step {step_id!r}")
        if step.end is not None:
            return step.end
        if step.next is not None:
            return step.next
        following = self.step_after(step_id)
        return following.id if following is not None else "completed"

    @property
    def first_step(self) -> Step:
        return self.steps[0]
