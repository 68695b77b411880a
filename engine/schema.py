"""Database schema versions, managed by Alembic migrations in engine/migrations."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from engine.config import get_settings
from engine.db import get_engine

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


class SchemaOutOfDate(RuntimeError):
    """The database is behind (or ahead of) the code; `smsdrip db upgrade` fixes the first case."""


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", get_settings().database_url.replace("%", "%%"))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision() -> str | None:
    with get_engine().connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade_database() -> None:
    """Apply every migration the database lacks."""
    before = current_revision()
    command.upgrade(alembic_config(), "head")
    logger.info("database schema upgraded from %s to %s", before or "empty", head_revision())


def check_schema() -> None:
    """Refuse to start on a database whose schema is not the one this code was written for."""
    current, head = current_revision(), head_revision()
    if current != head:
        raise SchemaOutOfDate(
            f"database schema is at revision {current or 'none (empty database)'} but this code needs {head}: "
            "run `smsdrip db upgrade` first"
        )
