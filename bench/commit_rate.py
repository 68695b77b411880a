"""Database commit rate on this machine, the floor under every figure that writes.

SQLite with its default rollback journal (synchronous=FULL) against WAL with synchronous=NORMAL (what
engine/db.py sets), and PostgreSQL with synchronous_commit on against off; each with one row per commit
and with 100 rows per commit. Raw drivers (sqlite3, psycopg), one connection, one small table.

    python -m bench.commit_rate [--quick] [--postgres-url postgresql://postgres@127.0.0.1:5432/bench_commit]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse, urlunparse

from bench.report import Figure, Report

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/bench_commit"
PAYLOAD = "x" * 100  # bytes per row, about a scheduled send's size


def rate(commit: Callable[[int], None], rows_per_commit: int, seconds: float) -> tuple[float, float]:
    """Commits/s and rows/s for `seconds` of back-to-back commits of `rows_per_commit` rows."""
    commits = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        commit(rows_per_commit)
        commits += 1
    elapsed = time.perf_counter() - start
    return commits / elapsed, commits * rows_per_commit / elapsed


def sqlite_runs(folder: Path, seconds: float) -> dict[tuple[str, int], tuple[float, float]]:
    results = {}
    for mode, pragmas in (("default journal", []), ("WAL, synchronous=NORMAL", ["PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL"])):
        path = folder / f"commit-{len(results)}.db"
        connection = sqlite3.connect(path, isolation_level=None)
        for pragma in pragmas:
            connection.execute(pragma)
        connection.execute("CREATE TABLE rows (id INTEGER PRIMARY KEY, payload TEXT)")

        def commit(rows: int) -> None:
            connection.execute("BEGIN")
            connection.executemany("INSERT INTO rows (payload) VALUES (?)", [(PAYLOAD,)] * rows)
            connection.execute("COMMIT")

        for rows in (1, 100):
            results[(mode, rows)] = rate(commit, rows, seconds)
        connection.close()
    return results


def postgres_runs(url: str, seconds: float) -> dict[tuple[str, int], tuple[float, float]]:
    import psycopg

    _create_database(url)
    results = {}
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("DROP TABLE IF EXISTS bench_commit_rows")
        connection.execute("CREATE TABLE bench_commit_rows (id bigserial PRIMARY KEY, payload text)")
        for setting in ("on", "off"):
            connection.execute(f"SET synchronous_commit = {setting}")

            def commit(rows: int) -> None:
                with connection.transaction(), connection.cursor() as cursor:
                    cursor.executemany("INSERT INTO bench_commit_rows (payload) VALUES (%s)", [(PAYLOAD,)] * rows)

            for rows in (1, 100):
                results[(f"synchronous_commit={setting}", rows)] = rate(commit, rows, seconds)
        connection.execute("DROP TABLE bench_commit_rows")
    return results


def _create_database(url: str) -> None:
    """Create the benchmark database through the server's `postgres` database when it does not exist yet."""
    import psycopg

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    if not name.startswith(("bench", "test")):
        raise SystemExit(f"--postgres-url names database {name!r}: use one named bench_* or test_*, which this benchmark may create")
    with psycopg.connect(urlunparse(parsed._replace(path="/postgres")), autocommit=True) as connection:
        if connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            connection.execute(f'CREATE DATABASE "{name}"')


def add_figures(report: Report, database: str, results: dict[tuple[str, int], tuple[float, float]]) -> None:
    baseline_key = next(iter(results))  # the default setting, one row per commit
    base_commits, _base_rows = results[baseline_key]
    for (mode, rows), (commits, rows_per_second) in results.items():
        report.add(Figure(f"{database}, {mode}, {rows} {'row' if rows == 1 else 'rows'} per commit: commits/s", commits, "/s",
                          baseline=base_commits, note=f"{rows_per_second:,.0f} rows/s"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="0.25 s per measurement instead of 3 s")
    parser.add_argument("--postgres-url", default=os.environ.get("BENCH_POSTGRES_URL", DEFAULT_POSTGRES_URL),
                        help=f"PostgreSQL database named bench_* or test_* (created if missing); default {DEFAULT_POSTGRES_URL} or BENCH_POSTGRES_URL")
    parser.add_argument("--folder", type=Path, default=Path.cwd(), help="where the SQLite files go (default: the current folder's disk)")
    args = parser.parse_args(argv)
    seconds = 0.25 if args.quick else 3.0

    report = Report("Database commit rate", "python -m bench.commit_rate " + " ".join(argv if argv is not None else sys.argv[1:]))
    report.settings = {"seconds per measurement": seconds, "row": f"{len(PAYLOAD)}-byte text plus id"}
    folder = Path(tempfile.mkdtemp(prefix=".bench-commit-", dir=args.folder))
    try:
        add_figures(report, "SQLite", sqlite_runs(folder, seconds))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    try:
        add_figures(report, "PostgreSQL", postgres_runs(args.postgres_url.replace("postgresql+psycopg://", "postgresql://"), seconds))
    except ImportError:
        report.notes.append("PostgreSQL skipped: psycopg is not installed (pip install -e '.[postgres]').")
    except Exception as error:  # noqa: BLE001 - any connection failure means "no PostgreSQL here", reported below
        report.notes.append(f"PostgreSQL skipped: {args.postgres_url} is not reachable ({str(error).splitlines()[0]}).")
    report.notes.append("baseline of each line: the same database's default setting with one row per commit")
    report.print()


if __name__ == "__main__":
    main()
