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

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from engine.bulk_capture import CaptureOutcome, NewSend, capture_leads, capture_one
from engine.db import session_scope
from engine.leads import LeadInput, LeadInputError, parse_lead
from engine.library import SequenceLibrary
from engine.routing_rules import Routing

logger = logging.getLogger(__name__)

LEAD_COLUMNS = {"phone", "first_name", "last_name", "email", "company", "source", "status", "sequence", "tags"}
# Columns `smsdrip contacts export` adds that an import does not set; they are skipped, so an export imports again.
EXPORT_ONLY_COLUMNS = {"owner", "score", "last_activity_at", "opted_out", "opted_out_at", "created_at"}
CONSENT_COLUMNS = {"consent_method": "method", "consent_at": "at", "consent_proof": "proof"}
TAG_SEPARATORS = re.compile(r"[;|]")
BATCH_ROWS = 500  # rows per transaction and per set-based insert: big enough to be quick, small enough to keep locks short


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


def _for_csv(error: LeadInputError) -> str:
    """Return the error's message in the CSV's terms where the API's words would not fit a file."""
    if error.field == "consent" and error.message.startswith("is missing"):
        return "is missing: fill in consent_method and consent_at, because smsdrip texts no one without recorded consent"
    return error.message


def import_leads(
    rows: list[tuple[int, dict[str, str]]], *, sequence: str | None, dry_run: bool, now: datetime, actor: str,
    library: SequenceLibrary, routing: Routing, region: str,
    on_commit: Callable[[list[NewSend]], None], progress: Callable[[int], None] | None = None, batch_rows: int = BATCH_ROWS,
) -> ImportReport:
    """Import the rows in batches of `batch_rows`; `on_commit` gets each committed batch's sends, so it can enqueue them.

    A dry run does all the work in one transaction and rolls it back, so its report is what a real run would do.
    """
    if sequence is not None and library.get(sequence) is None:
        raise ImportFileError(f"--sequence {sequence!r} is not a sequence: use one of {', '.join(sorted(library.sequences)) or 'none'}")
    report = ImportReport(dry_run=dry_run)
    seen: dict[str, int] = {}  # phone -> line that first had it
    batches = [rows[start:start + batch_rows] for start in range(0, len(rows), batch_rows)]

    def import_batch(session: Session, batch: list[tuple[int, dict[str, str]]]) -> list[NewSend]:
        report.rows += len(batch)
        leads = _parse_batch(batch, seen, report, sequence, now, region)
        outcomes = _capture_batch(session, leads, now, actor, library, routing)
        if progress is not None:
            progress(len(batch))
        return _count_outcomes(outcomes, report)

    if dry_run:
        with session_scope() as session:
            for batch in batches:
                import_batch(session, batch)
            session.rollback()
    else:
        for batch in batches:
            with session_scope() as session:
                sends = import_batch(session, batch)
            on_commit(sends)
    logger.info("import %s: %d rows, %d created, %d updated, %d unchanged, %d enrolled, %d rejected",
                "dry run" if dry_run else "done", report.rows, report.created, report.updated, report.unchanged,
                report.enrolled, len(report.rejected))
    return report


def _parse_batch(
    batch: list[tuple[int, dict[str, str]]], seen: dict[str, int], report: ImportReport, sequence: str | None, now: datetime,
    region: str,
) -> list[tuple[int, LeadInput]]:
    """Validate the rows, reporting invalid ones and numbers already on an earlier line; returns the leads to capture."""
    leads = []
    for line, row in batch:
        try:
            lead = parse_lead(row_to_lead_data(row), region, now)
        except LeadInputError as error:
            report.rejected.append(RejectedRow(line, error.field, _for_csv(error)))
            continue
        if lead.phone in seen:
            report.rejected.append(RejectedRow(line, "phone", f"duplicate: the same number is on line {seen[lead.phone]}"))
            continue
        seen[lead.phone] = line
        leads.append((line, replace(lead, source=lead.source or "import", sequence=lead.sequence or sequence)))
    return leads


def _capture_batch(
    session: Session, leads: list[tuple[int, LeadInput]], now: datetime, actor: str, library: SequenceLibrary, routing: Routing,
) -> list[CaptureOutcome]:
    """Capture the batch set-based; after a database error, capture it again lead by lead so only the failing leads are lost."""
    if not leads:
        return []
    try:
        with session.begin_nested():
            return capture_leads(session, leads, now, actor, library, routing)
    except DBAPIError as error:
        logger.warning("import batch of lines %d to %d failed in the database (%s); importing it lead by lead",
                       leads[0][0], leads[-1][0], type(error.orig).__name__)
    return [capture_one(session, line, lead, now, actor, library, routing, reject_database_errors=True) for line, lead in leads]


def _count_outcomes(outcomes: list[CaptureOutcome], report: ImportReport) -> list[NewSend]:
    """Add the outcomes to the report; returns their sends."""
    sends = []
    for outcome in outcomes:
        if outcome.rejected is not None:
            report.rejected.append(RejectedRow(outcome.line, *outcome.rejected))
            continue
        if outcome.created:
            report.created += 1
        elif outcome.changed:
            report.updated += 1
        else:
            report.unchanged += 1
        if outcome.enrolled:
            report.enrolled += 1
        elif outcome.opt_in_requested:
            report.opt_in_requested += 1
        if outcome.not_enrolled:
            report.not_enrolled[outcome.not_enrolled] += 1
        sends.extend(outcome.sends)
    return sends


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
