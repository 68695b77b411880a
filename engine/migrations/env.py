"""Alembic environment: runs migrations on smsdrip's own engine."""

from alembic import context

from engine.db import get_engine
from engine.models import Base

target_metadata = Base.metadata


def run_migrations_online() -> None:
    with get_engine().connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # Batch migrations rebuild a SQLite table by copying it and dropping the old one, which
            # enforced foreign keys would refuse while other tables point at it. The pragma only
            # takes effect outside a transaction, so it goes to the driver connection before BEGIN.
            connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
        # render_as_batch lets ALTER TABLE migrations work on SQLite too.
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
            if sqlite:
                problems = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                if problems:
                    raise RuntimeError(f"migration left rows pointing at missing rows (table, rowid, parent, key): {problems[:10]}")
        if sqlite:
            # End the transaction the connection may have begun again since, so the pragma applies.
            connection.commit()
            connection.connection.driver_connection.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported: run `smsdrip db upgrade` against the database")
run_migrations_online()
