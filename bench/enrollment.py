"""Enrollment growth: import 10^3, 10^4 and 10^5 new leads from CSV into the five-step bench sequence.

Measured path: the engine's bulk path, as `smsdrip contacts import FILE --sequence bench` runs it
(engine.importer.read_rows and import_leads, with each committed batch's first sends put on the RQ
queue). Each lead gets a contact, its consent record, timeline events, an enrollment and its first
scheduled send. Baseline: one transaction that inserts exactly the rows the import stored (read back
from the database after the import), one executemany per table. Each run starts from an empty database.

    python -m bench.enrollment [--quick] [--sizes 1000,10000,100000]
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Table, func, insert, select

from bench.data import phone_number, utcnow
from bench.report import Figure, Report, at_most
from bench.services import BenchEnvironment, add_common_arguments, bench_environment
from engine.bulk_capture import NewSend
from engine.config import get_settings
from engine.db import get_engine, session_scope
from engine.importer import BATCH_ROWS, import_leads, read_rows
from engine.library import get_library
from engine.lifecycle import current_routing
from engine.models import Base, Enrollment, ScheduledSend
from workers.queue import enqueue_new_sends

TARGET_GROWTH = 11.0  # the 10x larger run may take at most this many times as long
TARGET_BASELINE_RATIO = 3.0
CONSENT_AT = "2026-11-30T15:00:00Z"

Rows = dict[str, tuple[list[str], list[tuple[Any, ...]]]]  # table name -> column names, rows


def write_csv(path: Path, size: int) -> None:
    """Write a lead file as a web form export would have it: number, name, and how and when consent was given."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["phone", "first_name", "consent_method", "consent_at"])
        for index in range(size):
            writer.writerow([phone_number(index), f"Lead{index}", "web_form", CONSENT_AT])


def engine_import(environment: BenchEnvironment, size: int) -> tuple[float, float, Rows]:
    """Import `size` leads; returns the seconds for the whole import, the part spent enqueueing, and every stored row."""
    path = environment.folder / f"leads-{size}.csv"
    write_csv(path, size)
    settings = get_settings()
    library, routing = get_library(settings.sequences_dir), current_routing()
    enqueue_seconds = 0.0

    def enqueue(sends: list[NewSend]) -> None:
        nonlocal enqueue_seconds
        start = time.perf_counter()
        enqueue_new_sends(sends)
        enqueue_seconds += time.perf_counter() - start

    start = time.perf_counter()
    _header, rows = read_rows(path)
    report = import_leads(rows, sequence="bench", dry_run=False, now=utcnow(), actor="import", library=library,
                          routing=routing, region=settings.default_region, on_commit=enqueue)
    seconds = time.perf_counter() - start
    with session_scope() as session:
        enrollments = session.scalar(select(func.count()).select_from(Enrollment))
        sends = session.scalar(select(func.count()).select_from(ScheduledSend))
    if report.enrolled != size or enrollments != size or sends != size or report.rejected:
        raise RuntimeError(f"import of {size} leads: {report.enrolled} enrolled, {enrollments} enrollments, {sends} sends, "
                           f"{len(report.rejected)} rejected")
    return seconds, enqueue_seconds, stored_rows()


def stored_rows() -> Rows:
    """Return every row of every table that has any, in the order foreign keys need."""
    rows: Rows = {}
    with get_engine().connect() as connection:
        for table in Base.metadata.sorted_tables:
            result = connection.execute(select(table))
            data = [tuple(row) for row in result]
            if data:
                rows[table.name] = (list(result.keys()), data)
    return rows


def bulk_insert(rows: Rows) -> float:
    """The baseline: the same rows in one transaction, one executemany per table; returns its seconds."""
    tables: dict[str, Table] = {table.name: table for table in Base.metadata.sorted_tables}
    start = time.perf_counter()
    with get_engine().begin() as connection:
        for name, (columns, data) in rows.items():
            connection.execute(insert(tables[name]), [dict(zip(columns, row)) for row in data])
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--sizes", help="comma-separated lead counts (default 1000,10000,100000; quick 100,1000)")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in (args.sizes or ("100,1000" if args.quick else "1000,10000,100000")).split(",")]

    report = Report("Enrollment growth", "python -m bench.enrollment " + " ".join(argv if argv is not None else sys.argv[1:]))
    report.settings = {"database": (args.database_url or "sqlite").split(":")[0], "import batch": f"{BATCH_ROWS} rows per transaction",
                       "sequence": "5 steps, the first due at once"}
    previous: float | None = None
    previous_size = 0
    for size in sizes:
        with bench_environment(args.database_url, args.redis_url) as environment:
            engine, enqueue, rows = engine_import(environment, size)
        with bench_environment(args.database_url, args.redis_url):
            baseline = bulk_insert(rows)
        stored = sum(len(data) for _columns, data in rows.values())
        del rows
        per_contact, per_contact_baseline = engine / size * 1e6, baseline / size * 1e6
        report.add(Figure(f"{size:,} leads: total", engine, "s", baseline=baseline,
                          note=f"{stored / size:.1f} rows per lead; {enqueue:.2f} s of it putting first sends on Redis"))
        report.add(Figure(f"{size:,} leads: per lead", per_contact, "µs", baseline=per_contact_baseline,
                          target=f"<= {TARGET_BASELINE_RATIO:g}x baseline", met=at_most(per_contact, TARGET_BASELINE_RATIO * per_contact_baseline)))
        if previous is not None:
            growth = engine / previous
            label = f"{size:,} leads: time / time for {previous_size:,}"
            if size == sizes[-1]:
                # Linear growth with 10% slack between the two largest sizes: 11x the time for 10x the leads.
                # Smaller steps are shown without a target, since one-time costs weigh on the smallest size.
                allowed = TARGET_GROWTH * (size / previous_size) / 10
                report.add(Figure(label, growth, "x", target=f"<= {allowed:g}x", met=at_most(growth, allowed)))
            else:
                report.add(Figure(label, growth, "x"))
        previous, previous_size = engine, size
    report.print()


if __name__ == "__main__":
    main()
