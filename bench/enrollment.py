"""Enrollment growth: enroll 10^3, 10^4 and 10^5 new contacts into the five-step bench sequence.

Measured path: `enroll_contacts` below, the engine's per-contact functions (find_or_create_contact,
enroll) in batched transactions. NOTE: when `smsdrip contacts import` (CSV) lands, point
`enroll_contacts` at it; the rest of the benchmark stays as it is. Baseline: one transaction that
bulk-inserts the same rows (contact, its contact.created event, enrollment, first scheduled send and
enrollment.started event) with executemany. Each run starts from an empty database.

    python -m bench.enrollment [--quick] [--sizes 1000,10000,100000]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import func, insert, select

from bench.data import phone_number, utcnow
from bench.report import Figure, Report, at_most
from bench.services import add_common_arguments, bench_environment
from engine.config import get_settings
from engine.contacts import find_or_create_contact
from engine.db import session_scope
from engine.enrollment import enroll
from engine.library import get_library
from engine.models import Contact, Enrollment, Event, ScheduledSend, SendKind, SendStatus

BATCH = 500  # contacts per transaction on the engine path
TARGET_GROWTH = 11.0  # the 10x larger run may take at most this many times as long
TARGET_BASELINE_RATIO = 3.0


def enroll_contacts(phones: Sequence[str], now: datetime) -> None:
    """The engine's bulk path: find or create each contact and enroll it, BATCH contacts per transaction."""
    sequence = get_library(get_settings().sequences_dir).get("bench")
    assert sequence is not None
    for start in range(0, len(phones), BATCH):
        with session_scope() as session:
            for phone in phones[start:start + BATCH]:
                contact, _created = find_or_create_contact(session, phone, source="import")
                enroll(session, contact, sequence, keyword=None, now=now, actor="import")


def bulk_insert(phones: Sequence[str], now: datetime) -> None:
    """The baseline: the same rows in one transaction, each table in one executemany."""
    first_due = now  # the first step is due at once, as in the bench sequence
    with session_scope() as session:
        contact_ids = list(session.scalars(insert(Contact).returning(Contact.id, sort_by_parameter_order=True),
                                           [{"phone": phone, "fields": {}, "status": "new", "created_at": now, "updated_at": now} for phone in phones]))
        enrollment_ids = list(session.scalars(insert(Enrollment).returning(Enrollment.id, sort_by_parameter_order=True),
                                              [{"contact_id": c, "sequence_name": "bench", "keyword": None, "state": "welcome",
                                                "enrolled_at": now} for c in contact_ids]))
        session.execute(insert(ScheduledSend), [
            {"kind": SendKind.STEP.value, "contact_id": c, "enrollment_id": e, "step_id": "welcome", "actor": "engine",
             "due_at": first_due, "status": SendStatus.PENDING.value, "created_at": now}
            for c, e in zip(contact_ids, enrollment_ids)
        ])
        session.execute(insert(Event), [
            {"contact_id": c, "kind": "contact.created", "actor": "engine", "data": {"source": "import"}, "created_at": now}
            for c in contact_ids
        ] + [
            {"contact_id": c, "kind": "enrollment.started", "actor": "import",
             "data": {"enrollment_id": e, "sequence": "bench", "keyword": None}, "created_at": now}
            for c, e in zip(contact_ids, enrollment_ids)
        ])


def timed_run(args: argparse.Namespace, size: int, path: str) -> float:
    """Seconds for one path to store `size` contacts in a fresh database; checks every row is there."""
    phones = [phone_number(i) for i in range(size)]
    with bench_environment(args.database_url, args.redis_url):
        now = utcnow()
        start = time.perf_counter()
        (enroll_contacts if path == "engine" else bulk_insert)(phones, now)
        seconds = time.perf_counter() - start
        with session_scope() as session:
            stored = session.scalar(select(func.count()).select_from(ScheduledSend).where(ScheduledSend.due_at <= now + timedelta(seconds=1)))
        if stored != size:
            raise RuntimeError(f"{path} path stored {stored} first sends for {size} contacts")
    return seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--sizes", help="comma-separated contact counts (default 1000,10000,100000; quick 100,1000)")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in (args.sizes or ("100,1000" if args.quick else "1000,10000,100000")).split(",")]

    report = Report("Enrollment growth", "python -m bench.enrollment " + " ".join(argv if argv is not None else sys.argv[1:]))
    report.settings = {"database": (args.database_url or "sqlite").split(":")[0], "engine batch": f"{BATCH} contacts per transaction",
                       "sequence": "5 steps"}
    previous: float | None = None
    previous_size = 0
    for size in sizes:
        baseline = timed_run(args, size, "baseline")
        engine = timed_run(args, size, "engine")
        per_contact, per_contact_baseline = engine / size * 1e6, baseline / size * 1e6
        report.add(Figure(f"{size:,} contacts: total", engine, "s", baseline=baseline))
        report.add(Figure(f"{size:,} contacts: per contact", per_contact, "µs", baseline=per_contact_baseline,
                          target=f"<= {TARGET_BASELINE_RATIO:g}x baseline", met=at_most(per_contact, TARGET_BASELINE_RATIO * per_contact_baseline)))
        if previous is not None:
            growth = engine / previous
            # Linear growth with 10% slack: 11x the time for 10x the contacts.
            allowed = TARGET_GROWTH * (size / previous_size) / 10
            report.add(Figure(f"{size:,} contacts: time / time for {previous_size:,}", growth, "x", target=f"<= {allowed:g}x",
                              met=at_most(growth, allowed)))
        previous, previous_size = engine, size
    report.print()


if __name__ == "__main__":
    main()
