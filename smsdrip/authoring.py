"""`smsdrip check` and `smsdrip simulate`: tools for the people who write sequence files."""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click

from engine.config import get_settings, read_default_time_zone
from engine.keywords import normalise
from engine.phones import InvalidPhoneNumber, to_e164
from engine.schedule import Recipient, recipient_zones
from engine.routing import check_routing_file
from engine.segments import Segments
from engine.sequence_checks import library_problems, sequence_warnings
from engine.sequence_files import Problem, SequenceFileError, load_sequence_file, sequence_paths
from engine.sequences import Sequence
from engine.simulation import Timeline, TimelineEntry, simulate as simulate_sequence
from engine.templates import SAMPLE_PHONE
from engine.timezones import find_zone


# A file with one of these names is a routing file (reps, rules, scoring), not a sequence.
ROUTING_FILE_NAMES = frozenset({"routing.yaml", "routing.yml"})


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
def check(paths: tuple[Path, ...]) -> None:
    """Check sequence files and folders (default: SMSDRIP_SEQUENCES, else ./sequences) and list every problem.

    Problems print as FILE:LINE: FIELD: MESSAGE and make the exit status 1; warnings start with
    "warning:" and do not. With no problems, each file gets a one-line summary.
    """
    if not paths:
        routing = Path(os.environ.get("SMSDRIP_ROUTING") or "routing.yaml")
        paths = (Path(os.environ.get("SMSDRIP_SEQUENCES") or "sequences"),) + ((routing,) if routing.is_file() else ())
    routing_paths = [path for path in paths if path.name in ROUTING_FILE_NAMES and path.is_file()]
    paths = tuple(path for path in paths if path not in routing_paths)
    problems: list[Problem] = []
    for path in paths:
        if not path.exists():
            problems.append(Problem(str(path), 1, "file", "does not exist: check the path"))
        elif path.is_dir() and not sequence_paths([path]):
            problems.append(Problem(str(path), 1, "file", "is a folder with no .yaml or .yml files: add a sequence file"))

    loaded: list[Sequence] = []
    for path in sequence_paths(p for p in paths if p.exists()):
        try:
            loaded.append(load_sequence_file(path))
        except SequenceFileError as error:
            problems.extend(error.problems)
    problems.extend(library_problems(loaded))
    for routing_path in routing_paths:
        problems.extend(check_routing_file(routing_path, [sequence.name for sequence in loaded] if loaded else None))
    warnings = [warning for sequence in loaded for warning in sequence_warnings(sequence)]

    for problem in sorted(problems, key=lambda problem: (problem.path, problem.line)):
        click.echo(str(problem))
    for warning in sorted(warnings, key=lambda warning: (warning.path, warning.line)):
        click.echo(f"warning: {warning}")
    if problems:
        files = len({problem.path for problem in problems})
        click.echo(f"{len(problems)} problem{'s' if len(problems) != 1 else ''} in {files} file{'s' if files != 1 else ''}: fix them and run smsdrip check again")
        sys.exit(1)
    for sequence in loaded:
        click.echo(f"{sequence.source}: ok: {_summary(sequence)}")
    for routing_path in routing_paths:
        click.echo(f"{routing_path}: ok: routing file")


def _summary(sequence: Sequence) -> str:
    keywords = ", ".join(sequence.keywords)
    numbers = f" on {', '.join(sorted(sequence.numbers))}" if sequence.numbers else ""
    steps = f"{len(sequence.steps)} step{'s' if len(sequence.steps) != 1 else ''}"
    return f"sequence {sequence.name}, {steps}, keywords {keywords}{numbers}, send window {sequence.send_window.describe()}"


class FieldParam(click.ParamType):
    name = "NAME=VALUE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[str, str]:
        name, equals, text = str(value).partition("=")
        if not equals or not name.strip():
            self.fail(f"{value!r} is not NAME=VALUE: write it like first_name=Ana", param, ctx)
        return name.strip(), text


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--start", required=True, metavar="YYYY-MM-DDTHH:MM",
              help="When the keyword text arrives, in the recipient's local time (or with a UTC offset).")
@click.option("--tz", "time_zone", default=None, metavar="ZONE",
              help="The contact's time zone (IANA name). Default: from --phone, else SMSDRIP_DEFAULT_TZ.")
@click.option("--phone", default="", help="Recipient number; sets its time zones and state quiet hours.")
@click.option("--field", "fields", multiple=True, type=FieldParam(), help="A template field, such as first_name=Ana; repeatable.")
@click.option("--reply", "replies", multiple=True, type=FieldParam(), metavar="STEP_ID=TEXT",
              help="The contact replies TEXT right after STEP_ID is sent; repeatable, used in order.")
@click.option("--json", "as_json", is_flag=True, help="Print the timeline as a JSON list.")
def simulate(file: Path, start: str, time_zone: str | None, phone: str, fields: tuple[tuple[str, str], ...],
             replies: tuple[tuple[str, str], ...], as_json: bool) -> None:
    """Print the timeline the engine would follow for one contact: send times, texts, segments, branches and the end."""
    try:
        sequence = load_sequence_file(file)
    except SequenceFileError as error:
        for problem in error.problems:
            click.echo(str(problem))
        sys.exit(1)

    if time_zone is not None and find_zone(time_zone) is None:
        raise click.BadParameter(f"{time_zone!r} is not a known IANA time zone: use a name such as America/New_York", param_hint="--tz")
    if phone:
        try:
            phone = to_e164(phone)
        except InvalidPhoneNumber as error:
            raise click.BadParameter(str(error), param_hint="--phone") from None
    for step_id, _text in replies:
        if sequence.step(step_id) is None:
            raise click.BadParameter(f"{step_id!r} is not a step of {sequence.name}: use one of {', '.join(s.id for s in sequence.steps)}",
                                     param_hint="--reply")

    recipient = Recipient(phone=phone, time_zone=time_zone, default_time_zone=read_default_time_zone())
    values: dict[str, Any] = {"phone": phone or SAMPLE_PHONE, "keyword": sequence.keywords[0] if sequence.keywords else None}
    values.update(dict(fields))
    if "keyword" in values:
        values["keyword"] = normalise(str(values["keyword"]))  # stored normalised, as enrollment does

    timeline = simulate_sequence(sequence, _parse_start(start, recipient), recipient, values, list(replies))
    if as_json:
        click.echo(json.dumps(timeline_json(timeline), indent=2, ensure_ascii=False))
    else:
        click.echo(timeline_text(timeline))


def _parse_start(raw: str, recipient: Recipient) -> datetime:
    try:
        start = datetime.fromisoformat(raw)
    except ValueError:
        raise click.BadParameter(f"{raw!r} is not a date and time: write it like 2026-03-07T20:55", param_hint="--start") from None
    if start.tzinfo is None:
        start = start.replace(tzinfo=recipient_zones(recipient)[0])
    return start


def timeline_json(timeline: Timeline) -> list[dict[str, Any]]:
    """Return the timeline as JSON-ready objects: one per send, then {"end": reason}."""
    items: list[dict[str, Any]] = [_entry_json(entry) for entry in timeline.entries]
    items.append({"end": timeline.end})
    return items


def _entry_json(entry: TimelineEntry) -> dict[str, Any]:
    item: dict[str, Any] = {
        "step": entry.step.id,
        "send_at_local": entry.send_at.astimezone(entry.zone).isoformat(),
        "send_at_utc": entry.send_at.astimezone(timezone.utc).isoformat(),
        "time_zone": entry.zone.key,
        "text": entry.text,
        "encoding": entry.segments.encoding,
        "segments": entry.segments.count,
    }
    if entry.step.replies:
        item["replies"] = {word: _action_json(action) for word, action in entry.step.replies.items()}
    if entry.reply is not None:
        item["reply"] = {
            "text": entry.reply.text,
            "matched": entry.reply.word,
            "outcome": entry.reply.outcome,
            "answer": entry.reply.answer,
        }
    return item


def _action_json(action: Any) -> dict[str, Any]:
    fields = {"next": action.next, "end": action.end, "status": action.status, "reply": action.reply, "assign": action.assign or None}
    return {key: value for key, value in fields.items() if value is not None}


def timeline_text(timeline: Timeline) -> str:
    sequence = timeline.sequence
    lines = [f"{sequence.name} ({sequence.source}): enrolled {_local(timeline.start, timeline)}, times in {timeline.zone.key}"]
    for entry in timeline.entries:
        local = _local(entry.send_at, timeline)
        utc = entry.send_at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        lines.append(f"{entry.step.id}: {local} ({utc}), {_segments_text(entry.segments)}")
        lines.extend(f"    {line}" for line in entry.text.splitlines() or [""])
        for word, action in entry.step.replies.items():
            lines.append(f"    reply {word}: {_action_text(action)}")
        if entry.reply is not None:
            matched = f"matches {entry.reply.word}" if entry.reply.word else "matches no reply word"
            lines.append(f"    -> contact replies {entry.reply.text!r}: {matched}, {entry.reply.outcome}")
            if entry.reply.answer is not None:
                lines.append(f"       answered at once: {entry.reply.answer}")
    lines.append(f"end: {timeline.end}")
    return "\n".join(lines)


def _local(moment: datetime, timeline: Timeline) -> str:
    return moment.astimezone(timeline.zone).strftime("%a %Y-%m-%d %H:%M %Z")


def _segments_text(segments: Segments) -> str:
    return f"{segments.encoding}, {segments.count} segment{'s' if segments.count != 1 else ''}"


def _action_text(action: Any) -> str:
    parts = []
    if action.next:
        parts.append(f"next {action.next}")
    if action.end:
        parts.append(f"end {action.end}")
    if action.status:
        parts.append(f"status {action.status}")
    if action.assign:
        parts.append("assign to a person")
    if action.reply:
        parts.append(f"answer {action.reply!r}")
    return ", ".join(parts)


@click.command("apply-edits")
def apply_edits() -> None:
    """Apply edited sequence files to texts already waiting: move them to the new timing, end enrollments on removed steps."""
    from engine.db import session_scope
    from engine.library import load_library
    from engine.live_edits import apply_sequence_edits
    from engine.schema import check_schema

    settings = get_settings()
    check_schema()
    try:
        library = load_library(settings.sequences_dir)
    except SequenceFileError as error:
        for problem in error.problems:
            click.echo(str(problem))
        click.echo("sequence files have problems: fix them (see smsdrip check) and run apply-edits again")
        sys.exit(1)
    with session_scope() as session:
        result = apply_sequence_edits(session, library, datetime.now(timezone.utc))
    moved = f"{result.rescheduled} waiting send{'s' if result.rescheduled != 1 else ''} moved to the new timing"
    ended = f"{result.ended} enrollment{'s' if result.ended != 1 else ''} ended as sequence_changed"
    click.echo(f"{moved}, {ended}")
