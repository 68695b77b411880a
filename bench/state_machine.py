"""State machine cost: 10^5 enrollments loaded from the database and advanced one step.

smsdrip: Enrollment rows loaded as ORM objects and advanced through the sequence's shared
`transitions.Machine` (engine.machine). Baseline: plain objects with a `state` string, loaded from the
same rows (every column) and advanced with a dict lookup. A third line, plain objects advanced through the shared
machine, separates the machine's cost from the ORM's. Memory is what tracemalloc counts as allocated for the
loaded, advanced objects; time per transition is measured in a separate pass without tracemalloc.

    python -m bench.state_machine [--quick] [--enrollments 100000]
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
import tracemalloc
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import select
from transitions import Machine

from bench.data import insert_contacts, insert_step_sends, utcnow
from bench.report import Figure, Report, at_most
from bench.services import BENCH_SEQUENCE, add_common_arguments, bench_environment
from engine.config import get_settings
from engine.db import session_scope
from engine.library import get_library
from engine.machine import machine_for
from engine.models import Enrollment

TARGET_MEMORY_RATIO = 2.0
TARGET_TRANSITION_US = 50.0


class PlainEnrollment:
    """The baseline: an enrollment as a plain object whose state is a string, with the same columns as the row."""

    def __init__(self, values: dict[str, object]) -> None:
        self.__dict__.update(values)


def load_orm() -> list[object]:
    with session_scope() as session:
        enrollments = list(session.scalars(select(Enrollment)))
        session.expunge_all()  # keep the objects, as a worker holding them after its transaction would
    return enrollments  # type: ignore[return-value]


def load_plain() -> list[object]:
    with session_scope() as session:
        rows = session.execute(select(*Enrollment.__table__.columns)).mappings().all()
    return [PlainEnrollment(dict(row)) for row in rows]


def count_machines() -> int:
    return sum(1 for candidate in gc.get_objects() if isinstance(candidate, Machine))


def measure(load: Callable[[], list[object]], advance: Callable[[object], object]) -> tuple[float, float, int]:
    """Bytes per enrollment loaded and advanced, µs per transition, and Machines created during the run."""
    gc.collect()
    machines_before = count_machines()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    enrollments = load()
    for enrollment in enrollments:
        advance(enrollment)
    memory = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    machines_created = count_machines() - machines_before
    del enrollments
    gc.collect()

    enrollments = load()
    start = time.perf_counter()
    for enrollment in enrollments:
        advance(enrollment)
    seconds = time.perf_counter() - start
    return memory / len(enrollments), seconds / len(enrollments) * 1e6, machines_created


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--enrollments", type=int, help="enrollments to load and advance (default 100000, quick 5000)")
    args = parser.parse_args(argv)
    count = args.enrollments or (5_000 if args.quick else 100_000)

    report = Report("State machine cost", "python -m bench.state_machine " + " ".join(argv if argv is not None else sys.argv[1:]))
    with bench_environment(args.database_url, args.redis_url) as environment:
        report.settings = {"database": environment.database_url.split(":")[0], "enrollments": count,
                           "sequence": f"{BENCH_SEQUENCE.count('- id:')} steps, all enrollments at the first"}
        now = utcnow()
        insert_step_sends(insert_contacts(0, count, now), [now + timedelta(days=1)] * count, now)
        sequence = get_library(get_settings().sequences_dir).get("bench")
        assert sequence is not None
        following = {step.id: next_step.id for step, next_step in zip(sequence.steps, sequence.steps[1:])}

        def advance_plain(enrollment: object) -> None:
            enrollment.state = following[enrollment.state]  # type: ignore[attr-defined]

        def advance_machine(enrollment: object) -> None:
            machine_for(sequence).advance(enrollment)  # type: ignore[arg-type]

        base_memory, base_time, _ = measure(load_plain, advance_plain)
        orm_memory, orm_time, orm_machines = measure(load_orm, advance_machine)
        plain_memory, plain_time, plain_machines = measure(load_plain, advance_machine)

    report.add(Figure("memory per enrollment, ORM rows + shared machine", orm_memory, "B", baseline=base_memory,
                      target=f"<= {TARGET_MEMORY_RATIO:g}x baseline", met=at_most(orm_memory, TARGET_MEMORY_RATIO * base_memory)))
    report.add(Figure("memory per enrollment, plain objects + shared machine", plain_memory, "B", baseline=base_memory,
                      target=f"<= {TARGET_MEMORY_RATIO:g}x baseline", met=at_most(plain_memory, TARGET_MEMORY_RATIO * base_memory)))
    report.add(Figure("time per transition, ORM rows + shared machine", orm_time, "µs", baseline=base_time,
                      target=f"<= {TARGET_TRANSITION_US:g} µs", met=at_most(orm_time, TARGET_TRANSITION_US)))
    report.add(Figure("time per transition, plain objects + shared machine", plain_time, "µs", baseline=base_time,
                      target=f"<= {TARGET_TRANSITION_US:g} µs", met=at_most(plain_time, TARGET_TRANSITION_US)))
    report.add(Figure("Machines created while advancing all enrollments", max(orm_machines, plain_machines), "",
                      target="<= 1 (one per sequence)", met=max(orm_machines, plain_machines) <= 1))
    report.notes.append("baseline: plain objects advanced with a dict lookup of the next step id")
    report.print()


if __name__ == "__main__":
    main()
