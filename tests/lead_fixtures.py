"""Fixtures for the lead tests: a routing file, an API key, an API client, a loopback webhook receiver.

tests/conftest.py loads this module as a plugin, so every test module can use its fixtures.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from engine.config import reset_settings
from engine.routing import reset_routing_cache

ROUTING = """
reps:
  - {name: alice, phone: "+15550100101", email: alice@example.com}
  - {name: bob, phone: "+15550100102", email: bob@example.com}
pools:
  sales: {strategy: round_robin, reps: [alice, bob]}
rules:
  - name: web
    match: {source: web_form}
    sequence: demo
  - name: everyone
    pool: sales
scoring:
  assign_at: 30
  rules:
    - {name: replied, on: replied, points: 10}
    - {name: texted-demo, on: keyword, keyword: DEMO, points: 5}
    - {name: mid-size, when: {company_size: ">=50"}, points: 20}
notify:
  text: false
"""

QUICK_DEMO = """
name: demo
keywords: [DEMO]
steps:
  - id: welcome
    after: 0
    text: "Hi {first_name|there}, thanks for your interest! Reply STOP to opt out."
  - id: tips
    after: 1h
    text: "Tip one: reply with a question anytime."
"""


def consent(at: str = "2025-01-31T14:05:00Z", **proof: Any) -> dict[str, Any]:
    return {"method": "web_form", "at": at, **proof}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class RoutingFile:
    path: Path

    def write(self, text: str) -> None:
        self.path.write_text(text)
        reset_routing_cache()


@pytest.fixture
def routing(smsdrip_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sequences_dir: Path) -> Iterator[RoutingFile]:
    """A routing file (ROUTING unless a test rewrites it) named by SMSDRIP_ROUTING, and a quick demo sequence."""
    (sequences_dir / "demo.yaml").write_text(QUICK_DEMO)
    path = tmp_path / "routing.yaml"
    path.write_text(ROUTING)
    monkeypatch.setenv("SMSDRIP_ROUTING", str(path))
    smsdrip_env["SMSDRIP_ROUTING"] = str(path)  # worker processes get it too
    reset_settings()
    reset_routing_cache()
    yield RoutingFile(path)
    reset_routing_cache()


@pytest.fixture
def api_key(routing: RoutingFile) -> str:
    from engine.apikeys import create_api_key
    from engine.db import session_scope

    with session_scope() as session:
        _row, key = create_api_key(session, "website", utcnow())
    return key


@dataclass
class ApiClient:
    client: FlaskClient
    key: str

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def post(self, path: str, body: Any = None) -> Any:
        return self.client.post(path, json=body if body is not None else {}, headers=self._headers())

    def get(self, path: str, **params: Any) -> Any:
        return self.client.get(path, query_string=params, headers=self._headers())


@pytest.fixture
def api(routing: RoutingFile, api_key: str) -> ApiClient:
    from webhooks.app import create_app

    app = create_app()
    app.testing = True
    return ApiClient(app.test_client(), api_key)


@dataclass
class WebhookReceiver:
    """Records JSON POSTs on 127.0.0.1 and responds to each with `status`."""

    server: ThreadingHTTPServer
    received: list[dict[str, Any]] = field(default_factory=list)
    status: int = 204

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/hooks/smsdrip"


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    holder: dict[str, WebhookReceiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - BaseHTTPRequestHandler's signature
            pass

        def do_POST(self) -> None:  # noqa: N802 - http.server naming
            receiver = holder["receiver"]
            length = int(self.headers.get("Content-Length") or 0)
            receiver.received.append(json.loads(self.rfile.read(length)))
            self.send_response(receiver.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder["receiver"] = WebhookReceiver(server)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield holder["receiver"]
    server.shutdown()
    server.server_close()


def zone_where_local_hour(hours: range) -> str:
    """An IANA zone whose local hour is now in `hours`, so send-window tests do not depend on when they run."""
    from zoneinfo import ZoneInfo, available_timezones

    now = utcnow()
    for name in sorted(available_timezones()):
        if name.startswith(("Etc/", "SystemV/")) or "/" not in name:
            continue
        if now.astimezone(ZoneInfo(name)).hour in hours:
            return name
    raise AssertionError(f"no time zone has a local hour in {hours} now")


INSIDE_WINDOW_HOURS = range(10, 18)  # well inside 08:00-21:00, even if the test runs for minutes
OUTSIDE_WINDOW_HOURS = range(0, 7)


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def run_cli(smsdrip_env: dict[str, str], tmp_path: Path) -> Any:
    """Run `smsdrip ARGS...` as a separate process on the test environment."""
    import os
    import subprocess
    import sys

    def run(*args: str, input: str | None = None) -> CliResult:  # noqa: A002 - mirrors subprocess.run
        env = {**os.environ, **smsdrip_env, "SMSDRIP_LOG_LEVEL": "WARNING"}
        completed = subprocess.run([sys.executable, "-m", "smsdrip.cli", *args], env=env, cwd=tmp_path, input=input,
                                   capture_output=True, text=True, timeout=120)
        return CliResult(completed.returncode, completed.stdout, completed.stderr)

    return run
