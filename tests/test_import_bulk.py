"""The set-based CSV import: batches of new numbers, mixed files, the fallback after a database error, re-runs, round robin."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from rq.job import Job
from sqlalchemy import func, select, text

from engine.bulk_capture import NewSend, capture_one
from engine.config import get_settings
from engine.db import get_engine, session_scope
from engine.importer import ImportReport, import_leads, iter_report_lines, read_rows, row_to_lead_data
from engine.leads import parse_lead
from engine.lifecycle import current_routing
from engine.models import (
    CaptureConsent,
    ConsentRecord,
    Contact,
    DoubleOptIn,
    Enrollment,
    Event,
    RoundRobinCursor,
    ScheduledSend,
)
from tests.lead_fixtures import QUICK_DEMO, ROUTING, RoutingFile, utcnow
from tests.sequence_helpers import ANY_HOUR, library
from workers.queue import enqueue_new_sends, get_queue

CONSENT = "web_form,2025-01-10T10:00:00Z"
NEW_LEAD_EVENTS = ["contact.created", "consent.recorded", "lead.captured", "enrollment.started"]

# Run after SETUP, in which Ann and Cat were imported and Cat then opted out.
MIXED = f"""phone,first_name,company,company_size,consent_method,consent_at,status
+15550100001,Ann,Acme,,{CONSENT},
+15550100003,Cat,,,{CONSENT},
+15550100010,Dan,,,{CONSENT},
12,Bad,,,{CONSENT},
(555) 010-0010,Dan again,,,{CONSENT},
+15550100011,Eve,Big,80,{CONSENT},
+15550100012,Fay,,,{CONSENT},qualified
+15550100013,Gus,,,,,
+15550100014,Hal,,,{CONSENT},hot
"""
SETUP = f"phone,first_name,consent_method,consent_at\n+15550100001,Ann,{CONSENT}\n+15550100003,Cat,{CONSENT}\n"
MIXED_REPORT = [
    "imported 9 rows: 3 created, 1 updated, 1 unchanged, 4 rejected",
    "enrolled: 4; asked to confirm by replying YES: 0",
    "not enrolled (the contact opted out; they must text START to receive texts again): 1",
    "rejected rows:",
    "  line 5: phone: '12' is not a possible phone number: check the digits and the country code",
    "  line 6: phone: duplicate: the same number is on line 4",
    '  line 9: consent: is missing: fill in consent_method and consent_at, because smsdrip texts no one without recorded consent',
    "  line 10: status: 'hot' is not a lead status: use one of new, contacted, engaged, qualified, nurturing, converted, lost",
]


@pytest.fixture
def demo_any_hour(routing: RoutingFile, sequences_dir: Path) -> RoutingFile:
    """The routing fixture, with its quick demo sequence open all day, so first sends are due at once at any hour."""
    (sequences_dir / "demo.yaml").write_text(QUICK_DEMO + ANY_HOUR)
    return routing


def _leads_file(tmp_path: Path, text_: str, name: str = "leads.csv") -> Path:
    path = tmp_path / name
    path.write_text(text_, encoding="utf-8")
    return path


def _new_numbers(count: int, start: int = 100) -> str:
    lines = ["phone,first_name,consent_method,consent_at"]
    lines.extend(f"+1555010{start + index:04d},Lead{index},{CONSENT}" for index in range(count))
    return "\n".join(lines) + "\n"


def _import(path: Path, sequence: str | None = "demo", batch_rows: int = 3, dry_run: bool = False) -> tuple[ImportReport, list[list[NewSend]]]:
    """Import the file in-process as `smsdrip contacts import` does; returns the report and each committed batch's sends."""
    committed: list[list[NewSend]] = []
    _header, rows = read_rows(path)
    report = import_leads(rows, sequence=sequence, dry_run=dry_run, now=utcnow(), actor="import", library=library(),
                          routing=current_routing(), region=get_settings().default_region, on_commit=committed.append,
                          batch_rows=batch_rows)
    return report, committed


def _count(model: Any) -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _table_counts() -> tuple[int, ...]:
    return tuple(_count(model) for model in (Contact, CaptureConsent, ConsentRecord, Event, Enrollment, ScheduledSend))


def _contact(phone: str) -> Contact:
    with session_scope() as session:
        return session.scalars(select(Contact).where(Contact.phone == phone)).one()


def test_import_new_numbers_in_batches(demo_any_hour: RoutingFile, tmp_path: Path, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO, logger="engine.bulk_capture")
    report, committed = _import(_leads_file(tmp_path, _new_numbers(10)), batch_rows=4)

    assert (report.rows, report.created, report.enrolled, report.rejected) == (10, 10, 10, [])
    assert [len(sends) for sends in committed] == [4, 4, 2]
    assert [record.message for record in caplog.records if "in one batch" in record.message][0].endswith("in one batch of 4, 4 enrolled")
    assert _table_counts() == (10, 10, 10, 40, 10, 10)
    with session_scope() as session:
        contacts = session.scalars(select(Contact).order_by(Contact.id)).all()
        assert [contact.phone for contact in contacts] == [f"+1555010{100 + index:04d}" for index in range(10)]
        assert {(contact.status, contact.source, contact.score) for contact in contacts} == {("new", "import", 0)}
        events = session.scalars(select(Event).where(Event.contact_id == contacts[5].id).order_by(Event.id)).all()
        assert [event.kind for event in events] == NEW_LEAD_EVENTS
        enrollment = session.scalars(select(Enrollment).where(Enrollment.contact_id == contacts[5].id)).one()
        assert (enrollment.sequence_name, enrollment.state, enrollment.ended_at) == ("demo", "welcome", None)
        assert events[3].data == {"enrollment_id": enrollment.id, "sequence": "demo", "keyword": None}
        sends = session.scalars(select(ScheduledSend).order_by(ScheduledSend.id)).all()
        assert {(send.step_id, send.status) for send in sends} == {("welcome", "pending")}
        record = session.scalars(select(ConsentRecord).where(ConsentRecord.contact_id == contacts[5].id)).one()
        assert (record.action, record.method, record.source) == ("opt_in", "import", "import: web_form")

    assert sum(enqueue_new_sends(batch) for batch in committed) == 10
    queue = get_queue()
    assert queue.job_ids == [f"send-{send.id}" for send in sends]
    job = Job.fetch(f"send-{sends[7].id}", connection=queue.connection)
    assert (job.func_name, job.args, job.timeout, job.get_status()) == ("workers.jobs.send_scheduled", (sends[7].id,), 90, "queued")
    # The same sends again: every job id is taken, so nothing is added.
    assert enqueue_new_sends([send for batch in committed for send in batch]) == 0
    assert queue.count == 10


def test_import_mixed_file_report(demo_any_hour: RoutingFile, tmp_path: Path):
    _import(_leads_file(tmp_path, SETUP, "setup.csv"), sequence=None)
    with session_scope() as session:
        cat = session.scalars(select(Contact).where(Contact.phone == "+15550100003")).one()
        cat.opted_out_at = utcnow()
    path = _leads_file(tmp_path, MIXED)
    counts = _table_counts()

    dry_run, _committed = _import(path, dry_run=True)
    assert list(iter_report_lines(dry_run)) == [MIXED_REPORT[0].replace("imported", "dry run, nothing saved: would import"),
                                                *MIXED_REPORT[1:]]
    assert _table_counts() == counts

    report, committed = _import(path)
    assert list(iter_report_lines(report)) == MIXED_REPORT
    assert sum(len(sends) for sends in committed) == 4
    assert (_contact("+15550100001").company, _contact("+15550100011").score) == ("Acme", 20)
    assert (_contact("+15550100012").status, _contact("+15550100012").owner) == ("qualified", "alice")
    with session_scope() as session:
        enrolled = session.scalars(select(Contact.phone).join(Enrollment).order_by(Contact.phone)).all()
    assert enrolled == ["+15550100001", "+15550100010", "+15550100011", "+15550100012"]


def test_bulk_stores_rows_like_capture_lead(demo_any_hour: RoutingFile, tmp_path: Path, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO, logger="engine.bulk_capture")
    row = "Ann,Lee,ann@example.com,Acme,80,webinar;vip,web_form,2025-01-10T10:00:00Z,https://example.com/form"
    header = "phone,first_name,last_name,email,company,company_size,tags,consent_method,consent_at,consent_proof"
    now = utcnow()
    _header, rows = read_rows(_leads_file(tmp_path, f"{header}\n+15550100001,{row}\n+15550100002,{row}\n"))

    committed: list[list[NewSend]] = []
    import_leads(rows[:1], sequence="demo", dry_run=False, now=now, actor="import", library=library(), routing=current_routing(),
                 region=get_settings().default_region, on_commit=committed.append)
    batch_lines = [record.message for record in caplog.records if record.name == "engine.bulk_capture"]
    assert [line.split(" created from ")[1] for line in batch_lines] == ["import in one batch of 1, 1 enrolled"]
    lead = parse_lead(row_to_lead_data(rows[1][1]), get_settings().default_region, now)
    with session_scope() as session:
        outcome = capture_one(session, 3, replace(lead, source="import", sequence="demo"), now, "import", library(), current_routing())
    assert (outcome.created, outcome.enrolled, len(outcome.sends)) == (True, True, 1)

    bulk, per_row = _stored_rows("+15550100001"), _stored_rows("+15550100002")
    assert bulk == per_row
    assert bulk["contact"][-2:] == (20, "new")  # score from the mid-size rule, status
    assert [kind for kind, _actor, _data in bulk["events"]] == ["contact.created", "consent.recorded", "lead.captured",
                                                              "score.changed", "enrollment.started"]


def _stored_rows(phone: str) -> dict[str, Any]:
    """Return the rows stored for one contact, without ids and the times the database set."""
    with session_scope() as session:
        contact = session.scalars(select(Contact).where(Contact.phone == phone)).one()
        consent = session.scalars(select(CaptureConsent).where(CaptureConsent.contact_id == contact.id)).one()
        record = session.scalars(select(ConsentRecord).where(ConsentRecord.contact_id == contact.id)).one()
        enrollment = session.scalars(select(Enrollment).where(Enrollment.contact_id == contact.id)).one()
        send = session.scalars(select(ScheduledSend).where(ScheduledSend.contact_id == contact.id)).one()
        events = session.scalars(select(Event).where(Event.contact_id == contact.id).order_by(Event.id)).all()
        ids = {"consent_id": consent.id, "enrollment_id": enrollment.id}
        return {
            "contact": (contact.first_name, contact.last_name, contact.email, contact.company, contact.fields, contact.source,
                        contact.owner, contact.time_zone, contact.score_reasons, contact.score, contact.status),
            "consent": (consent.method, consent.given_at, consent.proof, consent.recorded_by),
            "record": (record.action, record.method, record.keyword, record.message_sid, record.source, record.created_at),
            "enrollment": (enrollment.sequence_name, enrollment.keyword, enrollment.state, enrollment.enrolled_at, enrollment.ended_at),
            "send": (send.kind, send.step_id, send.body, send.actor, send.due_at, send.status, send.created_at),
            "events": [(event.kind, event.actor, {key: ("id" if ids.get(key) == value else value) for key, value in event.data.items()})
                       for event in events],
        }


def test_import_batch_database_error_falls_back(demo_any_hour: RoutingFile, tmp_path: Path, caplog: pytest.LogCaptureFixture):
    # A real constraint that one row of the batch violates: the set-based insert fails, and the batch is imported lead by lead.
    with get_engine().begin() as connection:
        connection.execute(text("CREATE UNIQUE INDEX uq_test_first_name ON contacts (first_name)"))
    names = ["Ann", "Bob", "Dup", "Dan", "Eve", "Dup"]
    lines = ["phone,first_name,consent_method,consent_at"]
    lines.extend(f"+1555010{index:04d},{name},{CONSENT}" for index, name in enumerate(names, start=1))

    report, committed = _import(_leads_file(tmp_path, "\n".join(lines) + "\n"), batch_rows=500)

    assert (report.rows, report.created, report.enrolled) == (6, 5, 5)
    assert [(rejected.line, rejected.field) for rejected in report.rejected] == [(7, "row")]
    assert report.rejected[0].reason.startswith("the database rejected it: ")
    assert any("importing it lead by lead" in record.message for record in caplog.records)
    assert [len(sends) for sends in committed] == [5]
    with session_scope() as session:
        assert session.scalars(select(Contact.first_name).order_by(Contact.id)).all() == names[:5]
    assert (_count(Enrollment), _count(ScheduledSend), _count(Event)) == (5, 5, 20)


def test_import_rerun_changes_nothing(demo_any_hour: RoutingFile, tmp_path: Path):
    path = _leads_file(tmp_path, _new_numbers(7))
    _report, committed = _import(path)
    assert sum(enqueue_new_sends(batch) for batch in committed) == 7
    counts = _table_counts()

    again, committed_again = _import(path)

    assert list(iter_report_lines(again))[:3] == [
        "imported 7 rows: 0 created, 0 updated, 7 unchanged, 0 rejected",
        "enrolled: 0; asked to confirm by replying YES: 0",
        "not enrolled (already enrolled in this sequence before): 7",
    ]
    assert committed_again == [[], [], []]
    assert _table_counts() == counts
    assert get_queue().count == 7


def test_import_round_robin_across_batches(routing: RoutingFile, tmp_path: Path):
    # Leads reach a rep by their status or by their score (company_size adds 20 points), in file order.
    routing.write(ROUTING.replace("assign_at: 30", "assign_at: 20"))
    rows = ["phone,first_name,company_size,status,consent_method,consent_at"]
    kinds = ["qualified", "score", "plain", "score", "qualified", "plain", "score", "qualified"]
    for index, kind in enumerate(kinds, start=1):
        size, status = ("80" if kind == "score" else ""), ("qualified" if kind == "qualified" else "")
        rows.append(f"+1555010{index:04d},Lead{index},{size},{status},{CONSENT}")

    report, _committed = _import(_leads_file(tmp_path, "\n".join(rows) + "\n"), sequence=None, batch_rows=3)

    assert (report.created, report.rejected) == (8, [])
    owners = [_contact(f"+1555010{index:04d}").owner for index in range(1, 9)]
    assert owners == ["alice", "bob", None, "alice", "bob", None, "alice", "bob"]
    with session_scope() as session:
        assert session.get_one(RoundRobinCursor, "sales").position == 6


def test_import_double_opt_in_requests(demo_any_hour: RoutingFile, sequences_dir: Path, tmp_path: Path):
    # New leads for a sequence with double opt-in take capture_lead's path: one confirmation text each, no enrollment.
    (sequences_dir / "confirm.yaml").write_text(QUICK_DEMO.replace("name: demo", "name: confirm").replace("[DEMO]", "[CONFIRM]")
                                                + "double_opt_in: true\n" + ANY_HOUR)
    path = _leads_file(tmp_path, _new_numbers(4))

    report, committed = _import(path, sequence="confirm")
    again, _committed = _import(path, sequence="confirm")

    assert list(iter_report_lines(report))[:2] == ["imported 4 rows: 4 created, 0 updated, 0 unchanged, 0 rejected",
                                                   "enrolled: 0; asked to confirm by replying YES: 4"]
    assert [len(sends) for sends in committed] == [3, 1]
    assert list(iter_report_lines(again))[2] == "not enrolled (already enrolled in this sequence before): 4"
    assert (_count(Enrollment), _count(DoubleOptIn)) == (0, 4)
    with session_scope() as session:
        assert set(session.scalars(select(ScheduledSend.kind)).all()) == {"manual"}
