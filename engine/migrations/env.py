"""Alembic environment: runs migrations on smsdrip's own engine."""

from alembic import context

from engine.db import get_engine
from engine.models import Base

target_metadata = Base.metadata


def run_migrations_online() -> None:
    with get_engine().connect() as connection:
        # render_as_batch lets ALTER TABLE migrations work on SQLite too.
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported: run `smsdrip db upgrade` against the database")
run_migrations_online()
