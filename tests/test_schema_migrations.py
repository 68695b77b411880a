"""Schema changes through Alembic on SQLite and PostgreSQL, and start-up refusing a database behind the code."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import text

from engine.config import reset_settings
from engine.db import get_engine, reset_engine
from engine.schema import SchemaOutOfDate, alembic_config, check_schema, current_revision, head_revision


@pytest.fixture
def empty_database(monkeypatch: pytest.MonkeyPatch, database_url: str, sequences_dir: Path) -> Iterator[str]:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("SMSDRIP_SEQUENCES", str(sequences_dir))
    monkeypatch.setenv("SMSDRIP_TRANSPORT", "console")
    reset_settings()
    reset_engine()
    yield database_url
    reset_engine()
    reset_settings()


def test_old_schema_refused_at_start(empty_database: str):
    command.upgrade(alembic_config(), "0001")
    with pytest.raises(SchemaOutOfDate, match=r"revision 0001 but this code needs .*run `smsdrip db upgrade` first"):
        check_schema()


def test_worker_refuses_old_schema(empty_database: str, tmp_path: Path):
    command.upgrade(alembic_config(), "0001")
    reset_engine()
    result = subprocess.run([sys.executable, "-m", "smsdrip.cli", "worker", "--burst"], env=dict(os.environ), cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "run `smsdrip db upgrade` first" in result.stderr


def test_upgrade_keeps_contacts(empty_database: str):
    command.upgrade(alembic_config(), "0001")
    with get_engine().begin() as connection:
        connection.execute(text(
            "INSERT INTO contacts (phone, fields, status, created_at, updated_at) "
            "VALUES ('+15550100001', '{}', 'new', '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
        ))

    command.upgrade(alembic_config(), "head")

    assert current_revision() == head_revision()
    check_schema()
    with get_engine().connect() as connection:
        row = connection.execute(text("SELECT phone, delivery_failures, opted_out_at FROM contacts")).one()
    assert tuple(row) == ("+15550100001", 0, None)


def test_downgrade_then_upgrade_again(empty_database: str):
    command.upgrade(alembic_config(), "head")
    with get_engine().begin() as connection:
        # An enrollment points at the contact, so rebuilding the contacts table must keep foreign keys intact.
        connection.execute(text(
            "INSERT INTO contacts (id, phone, fields, status, delivery_failures, created_at, updated_at) "
            "VALUES (1, '+15550100001', '{}', 'new', 2, '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
        ))
        connection.execute(text(
            "INSERT INTO enrollments (contact_id, sequence_name, state, enrolled_at) VALUES (1, 'demo', 'welcome', '2026-01-01 00:00:00')"
        ))

    command.downgrade(alembic_config(), "0001")
    assert current_revision() == "0001"
    command.upgrade(alembic_config(), "head")
    assert current_revision() == head_revision()
    with get_engine().connect() as connection:
        enrollments = connection.execute(text("SELECT contact_id FROM enrollments")).all()
        failures = connection.execute(text("SELECT delivery_failures FROM contacts")).scalar_one()
    assert [tuple(row) for row in enrollments] == [(1,)]
    assert failures == 0  # the column came back with its default


def test_db_upgrade_command(empty_database: str, tmp_path: Path):
    command.upgrade(alembic_config(), "0001")
    reset_engine()
    result = subprocess.run([sys.executable, "-m", "smsdrip.cli", "db", "upgrade"], env=dict(os.environ), cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    reset_engine()
    assert current_revision() == head_revision()
    check_schema()
