"""Importing leads from CSV: the same fields and checks as POST /api/leads, one row per lead.

Every row ends up created, updated, unchanged or rejected with its line number and reason, so
nothing is dropped silently. Re-running an import changes nothing: contacts are matched by number,
identical consent is stored once, and a lead is never enrolled twice in the same sequence by imports.
"""

from __future__ import annotations

import csv
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from engine.db import session_scope
from engine.lead_status import InvalidStatusMove
from engine.leads import LeadInputError, capture_lead, parse_lead
from engine.library import SequenceLibrary
from engine.models import ScheduledSend
from engine.routing_rules import Routing

logger = logging.getLogger(__name__)

LEAD_COLUMNS = {"phone", "first_name", "last_name", "email", "company", "source", "status", "sequence", "tags"}
# Columns `smsdrip contacts export` adds that an import does not set; they are skipped, so an export imports again.
EXPORT_ONLY_COLUMNS = {"owner", "score", "last_activity_at", "opted_out", "opted_out_at", "created_at"}
CONSENT_COLUMNS = {"consent_method": "method", "consent_at": "at", "consent_proof": "proof"}
TAG_SEPARATORS = re.compile(r"[;|]")
BATCH_ROWS = 200  # rows per transaction: big enough to be quick, small enough to keep locks short


class ImportFileError(ValueError):
    """The file cannot be imported at all (unreadable, or no phone column)."""


@dataclass(frozen=True)
class RejectedRow:
    line: int  # line number in the file, counting the header as line 1
    field: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.reason}"


@dataclass
class ImportReport:
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    enrolled: int = 0
    opt_in_requested: int = 0
    not_enrolled: Counter[str] = field(default_factory=Counter)  # reason -> rows
    rejected: list[RejectedRow] = field(default_factory=list)
    dry_run: bool = False


def normalise_header(name: str) -> str:
    return re.sub(r"\s+", "_", name.strip().lower())


def read_rows(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Read the CSV (UTF-8, with or without a byte-order mark) into its header and (line number, row) pairs."""
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as error:
        raise ImportFileError(f"cannot open {path}: {error.strerror}") from None
    with handle:
        try:
            reader = csv.reader(handle)
            header_row = next(reader, None)
            if header_row is None:
                raise ImportFileError(f"{path} is empty: the first line must name the columns, such as phone,first_name,consent_method,consent_at")
            header = [normalise_header(name) for name in header_row]
            duplicates = sorted({name for name in header if header.count(name) > 1 and name})
            if duplicates:
                raise ImportFileError(f"{path}: column {duplicates[0]!r} appears twice in the header: keep one")
            if "phone" not in header:
                raise ImportFileError(f"{path} has no phone column: the header must include phone")
            rows = []
            line = reader.line_num
            for values in reader:
                start, line = line + 1, reader.line_num
                if not any(value.strip() for value in values):
                    continue
                row = {name: value for name, value in zip(header, values) if name}
                if len(values) > len(header):
                    row["__extra__"] = ",".join(values[len(header):])
                rows.append((start, row))
        except UnicodeDecodeError:
            raise ImportFileError(f"{path} is not UTF-8 text: save it as CSV UTF-8") from None
        except csv.Error as error:
            raise ImportFileError(f"{path} line {reader.line_num}: invalid CSV ({error})") from None
    return header, rows


def row_to_lead_data(row: dict[str, str]) -> dict[str, Any]:
    """Turn one CSV row into the JSON shape POST /api/leads takes; unknown columns become custom fields."""
    if "__extra__" in row:
        raise LeadInputError("row", "has more values than the header has columns: quote values that contain commas")
    data: dict[str, Any] = {}
    consent: dict[str, Any] = {}
    fields: dict[str, str] = {}
    for name, raw in row.items():
        value = raw.strip()
        if not value or name in EXPORT_ONLY_COLUMNS:
            continue
        if name in CONSENT_COLUMNS:
            consent[CONSENT_COLUMNS[name]] = value
        elif name == "tags":
            data["tags"] = [tag.strip() for tag in TAG_SEPARATORS.split(value) if tag.strip()]
        elif name in LEAD_COLUMNS:
            data[name] = value
        else:
            fields[name] = value
    if consent:
        data["consent"] = consent
    if fields:
        data["fields"] = fields
    return data


def import_leads(
    rows: list[tuple[int, dict[str, str]]], *, sequence: str | None, dry_run: bool, now: datetime, actor: str,
    library: SequenceLibrary, routing: Routing, region: str,
    on_commit: Callable[[list[ScheduledSend]], None], progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import the rows in batches; `on_commit` gets each committed batch's sends, so it can enqueue them.

    A dry run does all the work in one transaction and rolls it back, so its report is what a real run would do.
    """
    if sequence is not None and library.get(sequence) is None:
        raise ImportFileError(f"--sequence {sequence!r} is not a sequence: use one of {', '.join(sorted(library.sequences)) or 'none'}")
    report = ImportReport(dry_run=dry_run)
    seen: dict[str, int] = {}  # phone -> line that first had it
    batches = [rows] if dry_run else [rows[start:start + BATCH_ROWS] for start in range(0, len(rows), BATCH_ROWS)]
    for batch in batches:
        sends: list[ScheduledSend] = []
        with session_scope() as session:
            for line, row in batch:
                report.rows += 1
                _import_row(session, line, row, seen, report, sends, sequence, now, actor, library, routing, region)
                if progress is not None:
                    progress(1)
            if dry_run:
                session.rollback()
        if not dry_run:
            on_commit(sends)
    logger.info("import %s: %d rows, %d created, %d updated, %d unchanged, %d enrolled, %d rejected",
                "dry run" if dry_run else "done", report.rows, report.created, report.updated, report.unchanged,
                report.enrolled, len(report.rejected))
    return report


def _import_row(
    session: Session, line: int, row: dict[str, str], seen: dict[str, int], report: ImportReport, sends: list[ScheduledSend],
    sequence: str | None, now: datetime, actor: str, library: SequenceLibrary, routing: Routing, region: str,
) -> None:
    try:
        lead = parse_lead(row_to_lead_data(row), region, now)
    except LeadInputError as error:
        report.rejected.append(RejectedRow(line, error.field, error.message))
        return
    if lead.phone in seen:
        report.rejected.append(RejectedRow(line, "phone", f"duplicate: the same number is on line {seen[lead.phone]}"))
        return
    seen[lead.phone] = line
    lead = replace(lead, source=lead.source or "import", sequence=lead.sequence or sequence)

    try:
        # A savepoint per row, so a row that fails half-way leaves nothing behind and the batch goes on.
        with session.begin_nested():
            result = capture_lead(session, lead, now, actor, library, routing, enroll_once=True)
    except (LeadInputError, InvalidStatusMove) as error:
        field_name = error.field if isinstance(error, LeadInputError) else "status"
        report.rejected.append(RejectedRow(line, field_name, getattr(error, "message", str(error))))
        return

    if result.created:
        report.created += 1
    elif result.changed:
        report.updated += 1
    else:
        report.unchanged += 1
    if result.enrollment is not None:
        report.enrolled += 1
    elif result.opt_in_requested and result.sends:
        report.opt_in_requested += 1
    if result.not_enrolled and not (result.opt_in_requested and result.sends):
        report.not_enrolled[result.not_enrolled] += 1
    sends.extend(result.sends)


def iter_report_lines(report: ImportReport) -> Iterator[str]:
    """Yield the import summary, then every rejected row with its line number and reason."""
    prefix = "dry run, nothing saved: would import" if report.dry_run else "imported"
    yield (f"{prefix} {report.rows} rows: {report.created} created, {report.updated} updated, {report.unchanged} unchanged, "
           f"{len(report.rejected)} rejected")
    yield f"enrolled: {report.enrolled}; asked to confirm by replying YES: {report.opt_in_requested}"
    for reason, count in sorted(report.not_enrolled.items()):
        yield f"not enrolled ({reason}): {count}"
    if report.rejected:
        yield "rejected rows:"
        for rejected in sorted(report.rejected, key=lambda row: row.line):
            yield f"  {rejected}"
