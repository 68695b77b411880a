"""Inbound webhook: signed Twilio form posts through gunicorn on loopback, load from another process.

Scenarios: a keyword from a new number (contact, enrollment and first send enqueued) and a reply from
an enrolled contact (ends its enrollment). Baseline: a bare Flask endpoint (bench/bare_app.py) that parses
the same form and returns empty TwiML, on the same gunicorn settings. Each scenario runs closed-loop
for the maximum rate, then open-loop at 70% of that rate for the latency target.

    python -m bench.webhook [--quick] [--web-workers 1] [--duration 10]
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

from sqlalchemy import func, select

from bench.data import phone_number
from bench.loadgen import signed_request, write_plan
from bench.report import Figure, Report, at_least, at_most
from bench.services import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    OUR_NUMBER,
    QUEUE_NAME,
    REPO,
    BenchEnvironment,
    add_common_arguments,
    bench_environment,
    free_port,
)
from engine.db import session_scope
from engine.models import Contact, Enrollment

TARGET_BASELINE_FRACTION = 0.5
TARGET_RPS_PER_CORE = 500
TARGET_P99_MS = 50
LOAD_FRACTION = 0.7  # of the maximum rate, for the latency target
MAX_RATE_GUESS = 4000  # requests/s; sizes the prepared plans so a closed run never runs out
SMS_PATH = "/twilio/sms"


class Plans:
    """Prepared signed requests; every keyword request comes from a number never seen before."""

    def __init__(self, environment: BenchEnvironment, port: int) -> None:
        self.environment, self.port = environment, port
        self.public_url = f"http://127.0.0.1:{port}"
        self.next_contact = 0
        self.files = 0

    def _params(self, from_number: str, body: str) -> dict[str, str]:
        return {"MessageSid": "SM" + uuid.uuid4().hex, "AccountSid": ACCOUNT_SID, "From": from_number, "To": OUR_NUMBER,
                "Body": body, "NumMedia": "0", "ApiVersion": "2010-04-01"}

    def _write(self, requests: list[bytes]) -> Path:
        self.files += 1
        path = self.environment.folder / f"plan-{self.files}.json"
        write_plan(path, "127.0.0.1", self.port, requests)
        return path

    def keywords(self, count: int) -> Path:
        first, self.next_contact = self.next_contact, self.next_contact + count
        return self._write([signed_request("127.0.0.1", self.port, self.public_url, SMS_PATH,
                                           self._params(phone_number(i), "demo"), AUTH_TOKEN) for i in range(first, first + count)])

    def replies(self, count: int, enrolled: int) -> Path:
        """Replies from the first `enrolled` contacts in turn; a contact's second reply finds no live enrollment."""
        return self._write([signed_request("127.0.0.1", self.port, self.public_url, SMS_PATH,
                                           self._params(phone_number(i % enrolled), "Sounds good, what does it cost?"), AUTH_TOKEN)
                            for i in range(count)])


def start_gunicorn(environment: BenchEnvironment, app: str, port: int, workers: int, name: str) -> subprocess.Popen[bytes]:
    """Start gunicorn as the Procfile does (sync workers, no access log) and wait until it accepts connections."""
    process = environment.start(name, ["-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
                                       "--worker-class", "sync", "--timeout", "30", app])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            # Any HTTP response (404 here) means a worker has loaded the app; the master listens before that.
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(b"GET /bench-ready HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                if sock.recv(16).startswith(b"HTTP/"):
                    return process
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"gunicorn {app} did not start:\n{environment.log_path(name).read_text(errors='replace')[-3000:]}")


def load(plan: Path, mode: str, duration: float, concurrency: int, rate: float = 0.0) -> dict[str, object]:
    """Run bench.loadgen in its own process and return its JSON result."""
    output = subprocess.run([sys.executable, "-m", "bench.loadgen", str(plan), "--mode", mode, "--duration", str(duration),
                             "--concurrency", str(concurrency), "--rate", str(rate)],
                            cwd=REPO, check=True, capture_output=True, text=True)
    return json.loads(output.stdout)  # type: ignore[no-any-return]


def ok_count(result: dict[str, object]) -> int:
    return int(result["statuses"].get("200", 0))  # type: ignore[attr-defined]


def measure(report: Report, label: str, plans: Plans, make_plan, args: argparse.Namespace, baseline: dict[str, float] | None) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Closed-loop maximum, then open-loop at 70% of it; add the figures and return the closed-loop result."""
    concurrency = 4 * args.web_workers
    load(make_plan(100), "closed", min(0.5, args.duration / 2), concurrency)  # warm-up: imports, connection pools, caches
    closed = load(make_plan(int(MAX_RATE_GUESS * args.duration)), "closed", args.duration, concurrency)
    rate = LOAD_FRACTION * float(closed["rps"])  # type: ignore[arg-type]
    opened = load(make_plan(int(rate * args.duration) + 10), "open", args.duration, 64, rate)

    errors = {status: n for result in (closed, opened) for status, n in result["statuses"].items() if status != "200"}  # type: ignore[attr-defined]
    note = f"errors {errors}" if errors else ""
    rps = float(closed["rps"])  # type: ignore[arg-type]
    per_core = rps / args.web_workers
    if baseline is None:
        report.add(Figure(f"{label}: requests/s", rps, "/s", note=note))
        report.add(Figure(f"{label}: requests/s per web core", per_core, "/s"))
    else:
        report.add(Figure(f"{label}: requests/s", rps, "/s", baseline=baseline["rps"], target=f">= {TARGET_BASELINE_FRACTION:.0%} of baseline",
                          met=at_least(rps, TARGET_BASELINE_FRACTION * baseline["rps"]) and not errors, note=note))
        report.add(Figure(f"{label}: requests/s per web core", per_core, "/s", baseline=baseline["rps"] / args.web_workers,
                          target=f">= {TARGET_RPS_PER_CORE}/s", met=at_least(per_core, TARGET_RPS_PER_CORE)))
    base = baseline or {}
    report.add(Figure(f"{label}: p50 at max load ({concurrency} in flight)", float(closed["p50_ms"]), "ms", baseline=base.get("p50_max")))  # type: ignore[arg-type]
    report.add(Figure(f"{label}: p99 at max load", float(closed["p99_ms"]), "ms", baseline=base.get("p99_max")))  # type: ignore[arg-type]
    report.add(Figure(f"{label}: p50 at {LOAD_FRACTION:.0%} load ({rate:.0f}/s)", float(opened["p50_ms"]), "ms", baseline=base.get("p50_open")))  # type: ignore[arg-type]
    p99 = float(opened["p99_ms"])  # type: ignore[arg-type]
    report.add(Figure(f"{label}: p99 at {LOAD_FRACTION:.0%} load", p99, "ms", baseline=base.get("p99_open"),
                      target=f"<= {TARGET_P99_MS} ms" if baseline is not None else "", met=at_most(p99, TARGET_P99_MS) if baseline is not None else None))
    return {"rps": rps, "p50_max": float(closed["p50_ms"]), "p99_max": float(closed["p99_ms"]),  # type: ignore[arg-type]
            "p50_open": float(opened["p50_ms"]), "p99_open": p99, "ok": ok_count(closed) + ok_count(opened)}  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--web-workers", type=int, default=1, help="gunicorn sync workers, one web core each (default 1)")
    parser.add_argument("--duration", type=float, help="seconds per load run (default 10, quick 0.75)")
    args = parser.parse_args(argv)
    args.duration = args.duration or (0.75 if args.quick else 10.0)

    report = Report("Inbound webhook", "python -m bench.webhook " + " ".join(argv if argv is not None else sys.argv[1:]))
    port = free_port()
    with bench_environment(args.database_url, args.redis_url, public_url=f"http://127.0.0.1:{port}") as environment:
        report.settings = {"database": environment.database_url.split(":")[0], "gunicorn sync workers": args.web_workers,
                           "run length": f"{args.duration:g} s", "load generator": "bench.loadgen, one process"}
        plans = Plans(environment, port)

        bare = start_gunicorn(environment, "bench.bare_app:app", port, args.web_workers, "gunicorn-bare")
        baseline = measure(report, "baseline (bare Flask)", plans, plans.keywords, args, None)
        environment.stop(bare)
        plans.next_contact = 0  # the bare app stored nothing, so its numbers are still new

        app = start_gunicorn(environment, "webhooks.app:create_app()", port, args.web_workers, "gunicorn-smsdrip")
        keyword = measure(report, "keyword, new contact", plans, plans.keywords, args, baseline)
        with session_scope() as session:
            contacts = session.scalar(select(func.count()).select_from(Contact)) or 0
            enrollments = session.scalar(select(func.count()).select_from(Enrollment)) or 0
        queued = environment.redis().llen(f"rq:queue:{QUEUE_NAME}")
        report.notes.append(f"keyword runs: {keyword['ok']:.0f} answered 200 (plus warm-up); {contacts} contacts, "
                            f"{enrollments} enrollments, {queued} first sends queued in Redis")
        measure(report, "reply, enrolled contact", plans, lambda n: plans.replies(n, max(1, contacts)), args, baseline)
        environment.stop(app)
    report.print()


if __name__ == "__main__":
    main()
