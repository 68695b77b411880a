"""`smsdrip contacts import` and `export`: bad rows reported by line, idempotent re-runs, dry runs, round trips."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from sqlalchemy import func, select

from engine.db import session_scope
from engine.models import CaptureConsent, Contact, Enrollment, Event, ScheduledSend
from tests.lead_fixtures import RoutingFile

MIXED = """phone,first_name,company,company_size,consent_method,consent_at,tags,status
+15550100001,Ann,Acme,120,web_form,2025-01-10T10:00:00Z,webinar;vip,
555-010-0002,Bob,,,paper_form,2025-01-10T10:00:00-05:00,,
12,Bad,,,web_form,2025-01-10T10:00:00Z,,
(555) 010-0001,Ann again,,,web_form,2025-01-10T10:00:00Z,,
+15550100005,NoConsent,,,,,,
+15550100006,Future,,,web_form,2999-01-01T00:00:00Z,,
"+15550100007","Multi
Line",,,web_form,2025-01-10T10:00:00Z,,
+15550100008,Hot,,,web_form,2025-01-10T10:00:00Z,,hot
+15550100009,Extra,,,web_form,2025-01-10T10:00:00Z,,,surplus
"""

REJECTED = [
    "  line 4: phone: '12' is not a possible phone number: check the digits and the country code",
    "  line 5: phone: duplicate: the same number is on line 2",
    '  line 6: consent: is missing: fill in consent_method and consent_at, because smsdrip texts no one without recorded consent',
    "  line 7: consent.at: '2999-01-01T00:00:00Z' is in the future: give the time the person consented",
    "  line 10: status: 'hot' is not a lead status: use one of new, contacted, engaged, qualified, nurturing, converted, lost",
    "  line 11: row: has more values than the header has columns: quote values that contain commas",
]


def _write(tmp_path: Path, text: str, name: str = "leads.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _count(model) -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_import_reports_each_bad_row(routing: RoutingFile, run_cli, tmp_path: Path):
    result = run_cli("contacts", "import", str(_write(tmp_path, MIXED)))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "imported 9 rows: 3 created, 0 updated, 0 unchanged, 6 rejected"
    assert lines[lines.index("rejected rows:") + 1:] == REJECTED


def test_import_stores_fields_and_consent(routing: RoutingFile, run_cli, tmp_path: Path):
    run_cli("contacts", "import", str(_write(tmp_path, MIXED)))
    with session_scope() as session:
        ann = session.scalars(select(Contact).where(Contact.phone == "+15550100001")).one()
        multi = session.scalars(select(Contact).where(Contact.phone == "+15550100007")).one()
        bob_consent = session.scalars(select(CaptureConsent).join(Contact).where(Contact.phone == "+15550100002")).one()
        assert (ann.first_name, ann.company, ann.source) == ("Ann", "Acme", "import")
        assert ann.fields == {"company_size": "120", "tags": ["webinar", "vip"]}
        assert ann.score == 20  # mid-size rule in the routing file
        assert multi.first_name == "Multi\nLine"
        assert (bob_consent.method, bob_consent.given_at.isoformat()) == ("paper_form", "2025-01-10T15:00:00+00:00")
        assert bob_consent.recorded_by == "import"


def test_import_rerun_changes_nothing(routing: RoutingFile, run_cli, tmp_path: Path):
    path = _write(tmp_path, MIXED)
    run_cli("contacts", "import", str(path), "--sequence", "demo")
    counts = (_count(Contact), _count(Enrollment), _count(ScheduledSend), _count(Event), _count(CaptureConsent))

    again = run_cli("contacts", "import", str(path), "--sequence", "demo")
    lines = again.stdout.splitlines()
    assert lines[0] == "imported 9 rows: 0 created, 0 updated, 3 unchanged, 6 rejected"
    assert lines[1] == "enrolled: 0; asked to confirm by replying YES: 0"
    assert lines[2] == "not enrolled (already enrolled in this sequence before): 3"
    assert (_count(Contact), _count(Enrollment), _count(ScheduledSend), _count(Event), _count(CaptureConsent)) == counts


def test_import_with_sequence_enrolls(routing: RoutingFile, run_cli, tmp_path: Path):
    result = run_cli("contacts", "import", str(_write(tmp_path, MIXED)), "--sequence", "demo")
    assert result.stdout.splitlines()[1] == "enrolled: 3; asked to confirm by replying YES: 0"
    with session_scope() as session:
        assert session.scalars(select(ScheduledSend.step_id)).all() == ["welcome"] * 3


def test_import_dry_run_saves_nothing(routing: RoutingFile, run_cli, tmp_path: Path):
    result = run_cli("contacts", "import", str(_write(tmp_path, MIXED)), "--sequence", "demo", "--dry-run")
    lines = result.stdout.splitlines()
    assert lines[0] == "dry run, nothing saved: would import 9 rows: 3 created, 0 updated, 0 unchanged, 6 rejected"
    assert lines[1] == "enrolled: 3; asked to confirm by replying YES: 0"
    assert (_count(Contact), _count(Event), _count(ScheduledSend)) == (0, 0, 0)


def test_import_shows_progress(routing: RoutingFile, run_cli, tmp_path: Path):
    result = run_cli("contacts", "import", str(_write(tmp_path, MIXED)))
    assert "Importing" in result.stderr


def test_import_unknown_sequence_fails(routing: RoutingFile, run_cli, tmp_path: Path):
    result = run_cli("contacts", "import", str(_write(tmp_path, MIXED)), "--sequence", "nope")
    assert result.returncode == 1
    assert "--sequence 'nope' is not a sequence: use one of demo" in result.stderr
    assert _count(Contact) == 0


def test_import_without_phone_column_fails(routing: RoutingFile, run_cli, tmp_path: Path):
    result = run_cli("contacts", "import", str(_write(tmp_path, "mobile,first_name\n+15550100001,Ann\n")))
    assert result.returncode == 1
    assert "has no phone column" in result.stderr


def test_import_excel_bom_header(routing: RoutingFile, run_cli, tmp_path: Path):
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffPhone,First Name,Consent Method,Consent At\r\n+15550100001,Ann,web_form,2025-01-10T10:00:00Z\r\n".encode())
    result = run_cli("contacts", "import", str(path))
    assert result.stdout.splitlines()[0] == "imported 1 rows: 1 created, 0 updated, 0 unchanged, 0 rejected"


def test_export_has_lead_columns(routing: RoutingFile, run_cli, tmp_path: Path):
    run_cli("contacts", "import", str(_write(tmp_path, MIXED)))
    with session_scope() as session:
        bob = session.scalars(select(Contact).where(Contact.phone == "+15550100002")).one()
        bob.status, bob.owner = "qualified", "alice"
        session.scalars(select(Contact).where(Contact.phone == "+15550100007")).one().opted_out_at = bob.created_at

    result = run_cli("contacts", "export")
    assert result.returncode == 0, result.stderr
    rows = {row["phone"]: row for row in csv.DictReader(io.StringIO(result.stdout))}
    assert list(rows) == ["+15550100001", "+15550100002", "+15550100007"]
    assert (rows["+15550100001"]["score"], rows["+15550100001"]["tags"], rows["+15550100001"]["company_size"]) == ("20", "webinar;vip", "120")
    assert (rows["+15550100002"]["status"], rows["+15550100002"]["owner"]) == ("qualified", "alice")
    assert (rows["+15550100007"]["opted_out"], rows["+15550100002"]["opted_out"]) == ("yes", "no")
    assert all(row["last_activity_at"] for row in rows.values())


def test_export_filters_by_status(routing: RoutingFile, run_cli, tmp_path: Path):
    run_cli("contacts", "import", str(_write(tmp_path, MIXED)))
    with session_scope() as session:
        session.scalars(select(Contact).where(Contact.phone == "+15550100002")).one().status = "nurturing"
    result = run_cli("contacts", "export", "--status", "nurturing", "--output", str(tmp_path / "out.csv"))
    assert "exported 1 contacts" in result.stderr
    assert [row["phone"] for row in csv.DictReader((tmp_path / "out.csv").open())] == ["+15550100002"]


def test_export_imports_again_unchanged(routing: RoutingFile, run_cli, tmp_path: Path):
    run_cli("contacts", "import", str(_write(tmp_path, MIXED)))
    exported = run_cli("contacts", "export").stdout
    # Exports carry no consent columns, so add the consent each row was imported with.
    rows = list(csv.DictReader(io.StringIO(exported)))
    with (tmp_path / "again.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*rows[0], "consent_method", "consent_at"])
        writer.writeheader()
        for row in rows:
            method = "paper_form" if row["phone"] == "+15550100002" else "web_form"
            at = "2025-01-10T15:00:00Z" if method == "paper_form" else "2025-01-10T10:00:00Z"
            writer.writerow({**row, "consent_method": method, "consent_at": at})
    result = run_cli("contacts", "import", str(tmp_path / "again.csv"))
    assert result.stdout.splitlines()[0] == "imported 3 rows: 0 created, 0 updated, 3 unchanged, 0 rejected"


def test_phone_error_quotes_short_value():
    from engine.phones import InvalidPhoneNumber, to_e164

    with pytest.raises(InvalidPhoneNumber) as raised:
        to_e164("notaphone")
    assert str(raised.value) == "'notaphone' is not a phone number: use E.164 such as +12125550123"
    with pytest.raises(InvalidPhoneNumber) as masked:
        to_e164("+1 212 555 01234567")
    assert str(masked.value).startswith("'*")
