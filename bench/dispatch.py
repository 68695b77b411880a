"""Dispatch: due sends through real `smsdrip worker` processes and the `twilio` client to the local Twilio API.

Baseline: the same number of no-op RQ jobs on the same worker class and process count. Two phases per
API latency: a burst (every send due at once, for sends/s) and a paced run (sends due at a steady rate
the workers keep up with, 80% of the burst rate, for lateness = time the API received the text minus
the row's due time).

    python -m bench.dispatch [--quick] [--sends 10000] [--processes 24] [--latencies 0,150]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from datetime import timedelta
from urllib.parse import urlencode
from urllib.request import Request, urlopen

from rq import Queue
from rq.job import Job
from sqlalchemy import func, select

from bench.data import insert_contacts, insert_step_sends, phone_number, spread, utcnow
from bench.report import Figure, Report, at_least, at_most, percentile
from bench.services import (
    QUEUE_NAME,
    BenchEnvironment,
    add_common_arguments,
    apply_environment,
    bench_environment,
    redis_cpu_seconds,
    session_cpu_seconds,
    start_twilio_api,
    start_workers,
)
from engine.db import session_scope
from engine.models import ScheduledSend, SendStatus
from workers.queue import SEND_JOB, SEND_JOB_TIMEOUT, send_job_id

CAMPAIGN_MPS = 225  # messages per second of the highest-throughput 10DLC campaign tier
UNLIMITED_MPS = 1000  # SMSDRIP_MPS outside the rate-limit phase: above any rate 2 cores reach
PACED_FRACTION = 0.8  # of the burst rate at the same latency: a load the workers keep up with
TARGET_SENDS_PER_SECOND = 250
TARGET_NOOP_FRACTION = 0.6
TARGET_LATENESS_P99 = 2.0  # seconds


def enqueue_jobs(connection, func_path: str, job_ids: Sequence[str], args: Sequence[int]) -> None:  # type: ignore[no-untyped-def]
    """Enqueue all jobs in pipelined batches, so workers see them at (almost) the same moment."""
    queue = Queue(QUEUE_NAME, connection=connection)
    for start in range(0, len(job_ids), 2000):
        queue.enqueue_many([
            Queue.prepare_data(func_path, (arg,), job_id=job_id, timeout=SEND_JOB_TIMEOUT, description=job_id)
            for job_id, arg in zip(job_ids[start:start + 2000], args[start:start + 2000])
        ])


def wait_drained(connection, timeout: float) -> None:  # type: ignore[no-untyped-def]
    """Wait until the queue, the scheduled jobs and the running jobs are all empty."""
    queue = Queue(QUEUE_NAME, connection=connection)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if queue.count == 0 and queue.scheduled_job_registry.count == 0 and queue.started_job_registry.count == 0:
            return
        time.sleep(0.2)
    raise RuntimeError(f"queue {QUEUE_NAME} not drained after {timeout:.0f} s: {queue.count} queued, "
                       f"{queue.started_job_registry.count} running")


def job_rate(connection, job_ids: Sequence[str]) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    """Jobs per second from the first job's start to the last job's end, and how many jobs failed."""
    starts, ends, failed = [], [], 0
    for start in range(0, len(job_ids), 1000):
        for job in Job.fetch_many(list(job_ids[start:start + 1000]), connection=connection):
            if job is None or job.ended_at is None or job.started_at is None:
                failed += 1
                continue
            failed += job.get_status(refresh=False) != "finished"
            starts.append(job.started_at)
            ends.append(job.ended_at)
    elapsed = (max(ends) - min(starts)).total_seconds()
    return len(job_ids) / elapsed, failed


def api_messages(api_url: str) -> list[dict[str, object]]:
    with urlopen(f"{api_url}/_test/messages", timeout=60) as response:
        return json.load(response)  # type: ignore[no-any-return]


def max_per_second(times: Sequence[float]) -> int:
    """Return the maximum number of texts received within any one-second window."""
    ordered, best, low = sorted(times), 0, 0
    for high, moment in enumerate(ordered):
        while moment - ordered[low] >= 1.0:
            low += 1
        best = max(best, high - low + 1)
    return best


class CpuMeter:
    """CPU seconds used by the worker processes, the Twilio API server and Redis between start() and stop()."""

    def __init__(self, environment: BenchEnvironment, workers: int, api: int | None) -> None:
        self.environment, self.sessions = environment, {"workers": workers, **({"API server": api} if api else {})}

    def _read(self) -> dict[str, float]:
        used = {name: session_cpu_seconds(pid) for name, pid in self.sessions.items()}
        used["Redis"] = redis_cpu_seconds(self.environment.redis())
        return used

    def start(self) -> None:
        self.before = self._read()

    def stop(self, count: int) -> dict[str, float]:
        """Milliseconds of CPU per job for each part since start()."""
        after = self._read()
        return {name: (after[name] - self.before[name]) * 1000 / count for name in after}


def set_api_latency(api_url: str, latency_ms: float) -> None:
    with urlopen(Request(f"{api_url}/_test/latency", data=urlencode({"ms": latency_ms}).encode()), timeout=10) as response:
        response.read()


def noop_rate(environment: BenchEnvironment, workers: int, count: int) -> tuple[float, dict[str, float]]:
    """The baseline: `count` no-op jobs on the same workers; returns jobs/s and CPU ms per job."""
    meter = CpuMeter(environment, workers, None)
    meter.start()
    job_ids = [f"noop-{i}" for i in range(count)]
    enqueue_jobs(environment.redis(), "bench.jobs.noop", job_ids, list(range(count)))
    wait_drained(environment.redis(), timeout=300)
    cpu = meter.stop(count)
    rate, _failed = job_rate(environment.redis(), job_ids)
    return rate, cpu


def send_phases(environment: BenchEnvironment, report: Report, args: argparse.Namespace, latency_ms: float, noop: float,
                noop_cpu: dict[str, float], first_contact: int, workers: int, api: int, api_url: str) -> int:
    """Burst and paced phases at one API latency; returns the next free contact index."""
    set_api_latency(api_url, latency_ms)
    label = f"{latency_ms:g} ms API latency"

    # Burst: every send due now, enqueued at once.
    now = utcnow()
    contact_ids = insert_contacts(first_contact, args.sends, now)
    send_ids = insert_step_sends(contact_ids, [now - timedelta(seconds=1)] * len(contact_ids), now)
    job_ids = [send_job_id(send_id) for send_id in send_ids]
    meter = CpuMeter(environment, workers, api)
    meter.start()
    enqueue_jobs(environment.redis(), SEND_JOB, job_ids, send_ids)
    wait_drained(environment.redis(), timeout=600)
    cpu = meter.stop(len(job_ids))
    rate, failed = job_rate(environment.redis(), job_ids)
    with session_scope() as session:
        sent = session.scalar(select(func.count()).where(ScheduledSend.id.between(send_ids[0], send_ids[-1]),
                                                         ScheduledSend.status == SendStatus.SENT.value))
    if latency_ms == 0:
        target, met = f">= {TARGET_NOOP_FRACTION:.0%} of no-op", rate >= TARGET_NOOP_FRACTION * noop
    else:
        target, met = f">= {TARGET_SENDS_PER_SECOND}/s", at_least(rate, TARGET_SENDS_PER_SECOND)
    report.add(Figure(f"sends/s, burst of {args.sends}, {label}", rate, "/s", baseline=noop, target=target, met=met,
                      note=f"{sent} sent, {failed} failed jobs"))
    for part, milliseconds in cpu.items():
        report.add(Figure(f"CPU per send, {part}, {label}", milliseconds, "ms", baseline=noop_cpu.get(part)))

    # Paced: sends due at a steady rate, moved to the queue by RQ's scheduler when due.
    # Due faster than the burst rate, the queue would grow for the whole phase and lateness with it.
    paced_rate = args.paced_rate or min(CAMPAIGN_MPS, PACED_FRACTION * rate)
    paced_count = int(paced_rate * args.paced_seconds)
    now = utcnow()
    start_at = now + timedelta(seconds=1 + paced_count / 1000)  # after the inserts and enqueues below
    due_times = spread(start_at, paced_count, paced_rate)
    paced_contacts = insert_contacts(first_contact + args.sends, paced_count, now)
    paced_ids = insert_step_sends(paced_contacts, due_times, now)
    queue = Queue(QUEUE_NAME, connection=environment.redis())
    with environment.redis().pipeline() as pipeline:
        for send_id, due in zip(paced_ids, due_times):
            queue.enqueue_at(due, SEND_JOB, send_id, job_id=send_job_id(send_id), job_timeout=SEND_JOB_TIMEOUT,
                             description=send_job_id(send_id), pipeline=pipeline)
        pipeline.execute()
    time.sleep(max(0.0, (due_times[-1] - utcnow()).total_seconds()))
    wait_drained(environment.redis(), timeout=300)

    due_by_phone = {f"+1555{first_contact + args.sends + i:07d}": due.timestamp() for i, due in enumerate(due_times)}
    received = [m for m in api_messages(api_url) if m["to"] in due_by_phone]
    lateness = [float(m["received_at"]) - due_by_phone[str(m["to"])] for m in received]  # type: ignore[arg-type]
    p50, p99 = percentile(lateness, 0.5), percentile(lateness, 0.99)
    note = f"{len(received)} of {paced_count} due at {paced_rate:.0f}/s over {args.paced_seconds:g} s"
    report.add(Figure(f"lateness p50, paced, {label}", p50, "s", note=note))
    report.add(Figure(f"lateness p99, paced, {label}", p99, "s", target=f"<= {TARGET_LATENESS_P99:g} s",
                      met=at_most(p99, TARGET_LATENESS_P99) and len(received) == paced_count))
    peak = max_per_second([float(m["received_at"]) for m in received])  # type: ignore[arg-type]
    report.add(Figure(f"most sends in 1 s from one number, paced, {label}", peak, "",
                      target=f"SMSDRIP_MPS={UNLIMITED_MPS}, no practical limit"))

    return first_contact + args.sends + paced_count


def rate_limit_phase(environment: BenchEnvironment, report: Report, args: argparse.Namespace, first_contact: int, api_url: str) -> None:
    """A burst of `--limit-seconds` worth of sends at SMSDRIP_MPS=`--mps` (0 ms latency): the throttle must space them."""
    set_api_latency(api_url, 0)
    workers = start_workers(environment, args.processes, name="worker-limited", extra_env={"SMSDRIP_MPS": str(args.mps)},
                            args=("--worker-class", args.worker_class))
    count = int(args.mps * args.limit_seconds)
    now = utcnow()
    contact_ids = insert_contacts(first_contact, count, now)
    send_ids = insert_step_sends(contact_ids, [now - timedelta(seconds=1)] * count, now)
    enqueue_jobs(environment.redis(), SEND_JOB, [send_job_id(send_id) for send_id in send_ids], send_ids)
    wait_drained(environment.redis(), timeout=120 + 2 * args.limit_seconds)
    environment.stop(workers)

    phones = {phone_number(first_contact + i) for i in range(count)}
    times = sorted(float(m["received_at"]) for m in api_messages(api_url) if m["to"] in phones)  # type: ignore[arg-type]
    rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
    label = f"SMSDRIP_MPS={args.mps}, burst of {count}"
    report.add(Figure(f"sends/s, {label}", rate, "/s", target=f"<= {args.mps}/s", met=at_most(rate, args.mps),
                      note=f"{len(times)} of {count} sent"))
    peak = max_per_second(times)
    report.add(Figure(f"most sends in 1 s from one number, {label}", peak, "", target=f"<= {args.mps}",
                      met=at_most(peak, args.mps) and len(times) == count))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--sends", type=int, help="sends per burst (default 10000, quick 100)")
    parser.add_argument("--processes", type=int, help="worker processes (default 24, quick 12)")
    parser.add_argument("--worker-class", choices=["simple", "fork"], default="simple")
    parser.add_argument("--latencies", default="0,150", help="comma-separated API latencies in ms")
    parser.add_argument("--paced-rate", type=float, default=0.0,
                        help=f"sends per second in the paced phase (default: {PACED_FRACTION * 100:.0f}%% of the burst rate, at most {CAMPAIGN_MPS})")
    parser.add_argument("--paced-seconds", type=float, help="length of the paced phase (default 8, quick 1)")
    parser.add_argument("--mps", type=int, default=50,
                        help="SMSDRIP_MPS of the rate-limit phase, which checks no second exceeds it (default 50; 0 skips the phase)")
    parser.add_argument("--limit-seconds", type=float, help="length of the rate-limit phase at --mps (default 6, quick 1)")
    args = parser.parse_args(argv)
    args.sends = args.sends or (100 if args.quick else 10_000)
    # 24 sends in flight at 150 ms allow 160/s, more than the CPU of 2 cores sustains (see docs/benchmarks.md).
    args.processes = args.processes or (12 if args.quick else 24)
    args.paced_seconds = args.paced_seconds or (1 if args.quick else 8)
    args.limit_seconds = args.limit_seconds or (1 if args.quick else 6)
    latencies = [float(value) for value in args.latencies.split(",")]

    report = Report("Dispatch", "python -m bench.dispatch " + " ".join(argv if argv is not None else sys.argv[1:]))
    with bench_environment(args.database_url, args.redis_url) as environment:
        report.settings = {"database": environment.database_url.split(":")[0], "sends": args.sends, "processes": args.processes,
                           "worker class": args.worker_class}
        api, api_url = start_twilio_api(environment)
        environment.env["SMSDRIP_TWILIO_API_URL"] = api_url
        apply_environment(environment.env)
        # One pool for the baseline and every latency, so all phases run on the same warmed-up processes.
        workers = start_workers(environment, args.processes, extra_env={"SMSDRIP_MPS": str(UNLIMITED_MPS)},
                                args=("--worker-class", args.worker_class))
        noop, noop_cpu = noop_rate(environment, workers.pid, args.sends)
        report.add(Figure(f"no-op jobs/s (baseline), {args.sends} jobs", noop, "/s"))
        next_contact = 0
        for latency in latencies:
            next_contact = send_phases(environment, report, args, latency, noop, noop_cpu, next_contact, workers.pid, api.pid, api_url)
        if args.mps:
            environment.stop(workers)
            rate_limit_phase(environment, report, args, next_contact, api_url)
        if environment.redis_url.startswith("redis://"):
            report.notes.append("Redis CPU is the whole server's, other clients included.")
    report.notes.append(f"SMSDRIP_MPS={UNLIMITED_MPS} except in the rate-limit phase: the throttle runs on every send, "
                        "but does not slow the sends down.")
    report.print()


if __name__ == "__main__":
    main()
