"""Lead commands: `smsdrip apikey`, `smsdrip contacts import|export`, `smsdrip report` and `smsdrip broadcast`."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone
from pathlib import Path

import click

from engine.config import get_settings

logger = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _ready() -> None:
    """Stop with a clear message when the database schema is missing or old."""
    from engine.schema import SchemaOutOfDate, check_schema

    try:
        check_schema()
    except SchemaOutOfDate as error:
        raise click.ClickException(str(error)) from None


@click.group()
def apikey() -> None:
    """Create, list and revoke keys for the HTTP API."""


@apikey.command("create")
@click.argument("name")
def apikey_create(name: str) -> None:
    """Create a key called NAME (such as website) and print it once."""
    from engine.apikeys import ApiKeyError, create_api_key
    from engine.db import session_scope

    _ready()
    try:
        with session_scope() as session:
            row, key = create_api_key(session, name, _utcnow())
            key_id = row.id
    except ApiKeyError as error:
        raise click.ClickException(str(error)) from None
    click.echo(key)
    click.echo(f"API key {key_id} ({name}) created. Store it now: only its hash is kept, so it cannot be shown again.", err=True)


@apikey.command("list")
def apikey_list() -> None:
    """List keys with their prefix, creation, last use and revocation times."""
    from engine.apikeys import list_api_keys
    from engine.db import session_scope

    _ready()
    with session_scope() as session:
        keys = list_api_keys(session)
        rows = [(str(k.id), k.name, k.prefix + "...", _day(k.created_at), _day(k.last_used_at), "revoked " + _day(k.revoked_at) if k.revoked_at else "active")
                for k in keys]
    if not rows:
        click.echo("no API keys yet: create one with `smsdrip apikey create NAME`")
        return
    _table(["id", "name", "key", "created", "last used", "state"], rows)


@apikey.command("revoke")
@click.argument("name_or_id")
def apikey_revoke(name_or_id: str) -> None:
    """Revoke the active key with this name or id; requests using it get 401 from now on."""
    from engine.apikeys import ApiKeyError, revoke_api_key
    from engine.db import session_scope

    _ready()
    try:
        with session_scope() as session:
            row = revoke_api_key(session, name_or_id, _utcnow())
            label = f"{row.id} ({row.name})"
    except ApiKeyError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"API key {label} revoked")


def _day(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment is not None else "-"


def _table(header: list[str], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(str(row[i])) for row in [tuple(header), *rows]) for i in range(len(header))]
    for row in [tuple(header), *rows]:
        click.echo("  ".join(str(value).ljust(width) for value, width in zip(row, widths)).rstrip())


@click.group()
def contacts() -> None:
    """Import and export contacts as CSV."""


@contacts.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--sequence", default=None, help="Enroll imported leads in this sequence (rows with a sequence column use theirs).")
@click.option("--dry-run", is_flag=True, help="Check every row and report what would happen, without saving anything.")
def contacts_import(file: Path, sequence: str | None, dry_run: bool) -> None:
    """Import leads from FILE.csv: phone, first_name, last_name, email, company, source, status, tags,
    consent_method, consent_at, consent_proof, and any other column as a custom field."""
    from engine.importer import ImportFileError, import_leads, iter_report_lines, read_rows
    from engine.library import get_library
    from engine.lifecycle import current_routing
    from engine.routing import RoutingFileError
    from workers.notifications import install_enqueue_on_commit
    from workers.queue import enqueue_new_sends

    settings = get_settings()
    _ready()
    install_enqueue_on_commit()
    try:
        routing = current_routing()
        _header, rows = read_rows(file)
        with click.progressbar(length=len(rows), label="Checking" if dry_run else "Importing", file=sys.stderr) as bar:
            report = import_leads(
                rows, sequence=sequence, dry_run=dry_run, now=_utcnow(), actor="import", library=get_library(settings.sequences_dir),
                routing=routing, region=settings.default_region, on_commit=enqueue_new_sends, progress=bar.update,
            )
    except (ImportFileError, RoutingFileError) as error:
        raise click.ClickException(str(error)) from None
    for line in iter_report_lines(report):
        click.echo(line)


@contacts.command("export")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None, help="File to write (default: standard output).")
@click.option("--status", default=None, help="Only contacts with this lead status.")
@click.option("--owner", default=None, help="Only contacts owned by this rep.")
@click.option("--sequence", default=None, help="Only contacts ever enrolled in this sequence.")
def contacts_export(output: Path | None, status: str | None, owner: str | None, sequence: str | None) -> None:
    """Write contacts as CSV with status, owner, score, last activity and opt-out state."""
    from engine.contact_queries import contacts_query
    from engine.db import session_scope
    from engine.exporter import export_contacts
    from engine.lead_status import UnknownStatus, parse_status

    _ready()
    try:
        status = parse_status(status).value if status else None
    except UnknownStatus as error:
        raise click.BadParameter(str(error), param_hint="--status") from None
    query = contacts_query(status=status, owner=owner, sequence=sequence)
    with session_scope() as session:
        if output is None:
            count = export_contacts(session, query, sys.stdout)
        else:
            with output.open("w", encoding="utf-8", newline="") as handle:
                count = export_contacts(session, query, handle)
    click.echo(f"exported {count} contacts" + (f" to {output}" if output else ""), err=True)


@click.command()
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d"]), default=None, help="Only enrollments from this day on (YYYY-MM-DD, UTC).")
@click.option("--sequence", default=None, help="Only this sequence.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def report(since: datetime | None, sequence: str | None, as_json: bool) -> None:
    """Show the funnel per sequence, the delivery rate and how fast reps respond to leads."""
    from engine.db import session_scope
    from engine.library import get_library
    from engine.reports import format_report, funnel_report

    _ready()
    library = get_library(get_settings().sequences_dir)
    since_utc = since.replace(tzinfo=timezone.utc) if since is not None else None
    with session_scope() as session:
        result = funnel_report(session, library, since=since_utc, sequence=sequence)
    click.echo(json.dumps(result.as_dict(), indent=2) if as_json else format_report(result))


@click.command()
@click.option("--segment", required=True, help='Who gets it: conditions joined by commas, such as "status=nurturing,tag=webinar".')
@click.option("--text", required=True, help="The message; placeholders such as {first_name|there} are filled per contact.")
@click.option("--dry-run", is_flag=True, help="Show how many contacts it would reach and send nothing.")
@click.option("--yes", is_flag=True, help="Send without asking for confirmation.")
def broadcast(segment: str, text: str, dry_run: bool, yes: bool) -> None:
    """Send one text to every contact in a segment, through the usual throttled, opt-out-checked path."""
    from engine.audiences import SegmentError, parse_segment
    from engine.broadcasts import create_broadcast, plan_broadcast
    from engine.db import session_scope
    from workers.queue import enqueue_sends

    _ready()
    try:
        parsed = parse_segment(segment)
    except SegmentError as error:
        raise click.BadParameter(str(error), param_hint="--segment") from None
    with session_scope() as session:
        plan = plan_broadcast(session, parsed, text)
        reach, opted_out = len(plan.recipients), plan.audience.opted_out
        example = next(iter(plan.bodies.values()), None)
    click.echo(f"segment {parsed.text!r}: the text will reach {reach} contacts ({opted_out} more match but opted out)")
    if example is not None:
        click.echo(f"first message: {example}")
    if plan.problems:
        for problem in plan.problems:
            click.echo(f"cannot send: {problem}", err=True)
        sys.exit(1)
    if dry_run or reach == 0:
        click.echo("dry run: nothing sent" if dry_run else "nothing to send")
        return
    if not yes:
        click.confirm(f"Send to {reach} contacts?", abort=True)

    now = _utcnow()
    with session_scope() as session:
        # Planned again in this transaction, so contacts who opted out since the count are left out.
        plan = plan_broadcast(session, parsed, text)
        if plan.problems:
            raise click.ClickException("; ".join(plan.problems))
        record, sends = create_broadcast(session, plan, "cli", now)
        broadcast_id = record.id
    enqueue_sends(sends)
    waiting = sum(1 for send in sends if send.due_at > now)
    click.echo(f"broadcast {broadcast_id}: {len(sends)} texts scheduled, {len(sends) - waiting} now and {waiting} when their send window opens")
