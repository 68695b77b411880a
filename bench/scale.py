"""Scheduling scale: 10^4, 10^5 and 10^6 future sends, with 10^4 sends due now.

Each size runs in a fresh database and Redis. It measures the drain rate of the due sends (workers and
the local Twilio API at 0 ms), the periodic job's time per run with two schedulers running it, and Redis
memory, and checks that no text went out twice. Future sends are due between 1 hour and 30 days ahead, beyond the
10-minute horizon within which sends are put on Redis.

    python -m bench.scale [--quick] [--sizes 10000,100000,1000000] [--due 10000]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from collections import Counter
from datetime import timedelta

from sqlalchemy import func, select

from bench.data import insert_contacts, insert_manual_sends, insert_step_sends, utcnow
from bench.dispatch import api_messages
from bench.report import Figure, Report, at_most, percentile
from bench.services import BenchEnvironment, add_common_arguments, apply_environment, bench_environment, start_twilio_api, start_workers
from engine.db import session_scope
from engine.models import ScheduledSend, SendStatus

TARGET_DRAIN_SPREAD = 0.2  # largest drain rate at most 20% above the smallest
FUTURE_FROM, FUTURE_TO = timedelta(hours=1), timedelta(days=30)


def peak_memory(environment: BenchEnvironment, stop: threading.Event, samples: list[int]) -> None:
    client = environment.redis()
    while not stop.is_set():
        samples.append(int(client.info("memory")["used_memory"]))
        time.sleep(0.2)


def run_size(args: argparse.Namespace, future: int) -> dict[str, float]:
    with bench_environment(args.database_url, args.redis_url) as environment:
        now = utcnow()
        rng = random.Random(future)
        span = (FUTURE_TO - FUTURE_FROM).total_seconds()
        setup_start = time.perf_counter()
        [owner] = insert_contacts(10**6, 1, now)
        insert_manual_sends(owner, [now + FUTURE_FROM + timedelta(seconds=rng.random() * span) for _ in range(future)], now)
        contact_ids = insert_contacts(0, args.due, now)
        insert_step_sends(contact_ids, [now - timedelta(seconds=1)] * args.due, now)
        setup_seconds = time.perf_counter() - setup_start

        client = environment.redis()
        memory_empty = int(client.info("memory")["used_memory"])
        api, api_url = start_twilio_api(environment, 0)
        environment.env["SMSDRIP_TWILIO_API_URL"] = api_url
        apply_environment(environment.env)
        workers = start_workers(environment, args.processes, extra_env={"SMSDRIP_MPS": "1000"})

        samples: list[int] = []
        stop = threading.Event()
        sampler = threading.Thread(target=peak_memory, args=(environment, stop, samples), daemon=True)
        sampler.start()
        sweep_logs = [environment.folder / f"sweeps-{i}.jsonl" for i in range(2)]
        sweepers = [environment.start(f"sweeper-{i}", ["-m", "bench.sweeper", "--interval", "1", "--output", str(path)])
                    for i, path in enumerate(sweep_logs)]

        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            with session_scope() as session:
                left = session.scalar(select(func.count()).where(ScheduledSend.status.in_([SendStatus.PENDING.value, SendStatus.CLAIMED.value]),
                                                                 ScheduledSend.due_at <= utcnow()))
            if left == 0:
                break
            time.sleep(0.2)
        drained_at = time.time()
        time.sleep(1.2)  # let each scheduler run at least once more with nothing due (they run every second)
        environment.stop_all(sweepers)
        stop.set()
        sampler.join()

        # A sweeper killed while writing leaves its last line cut short; each complete line ends in "}".
        runs = [json.loads(line) for path in sweep_logs for line in path.read_text().splitlines() if line.endswith("}")]
        # A run that ends before the last due send went out had rows to look at; later runs had nothing due.
        busy = [run["seconds"] for run in runs if run["at"] < drained_at]
        idle = [run["seconds"] for run in runs if run["at"] - run["seconds"] > drained_at]
        received = api_messages(api_url)
        per_number = Counter(str(message["to"]) for message in received)
        times = sorted(float(message["received_at"]) for message in received)  # type: ignore[arg-type]
        environment.stop_all([workers, api])
        return {
            "future": future,
            "setup_seconds": setup_seconds,
            "drain_rate": len(times) / (times[-1] - times[0]) if len(times) > 1 else 0.0,
            "sent": len(received),
            "duplicates": sum(n - 1 for n in per_number.values() if n > 1),
            "sweep_busy_p50": percentile(busy, 0.5),
            "sweep_busy_max": max(busy, default=0.0),
            "sweep_idle_p50": percentile(idle, 0.5),
            "sweeps": len(runs),
            "memory_peak": (max(samples) - memory_empty) / 2**20,
            "memory_end": (samples[-1] - memory_empty) / 2**20,
            "left": left or 0,
        }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--sizes", help="comma-separated numbers of future sends (default 10000,100000,1000000; quick 1000,10000)")
    parser.add_argument("--due", type=int, help="sends due now (default 10000, quick 100)")
    parser.add_argument("--processes", type=int, help="worker processes (default 8, quick 4)")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in (args.sizes or ("1000,10000" if args.quick else "10000,100000,1000000")).split(",")]
    args.processes = args.processes or (4 if args.quick else 8)
    args.due = args.due or (100 if args.quick else 10_000)

    report = Report("Scheduling scale", "python -m bench.scale " + " ".join(argv if argv is not None else sys.argv[1:]))
    results = [run_size(args, size) for size in sizes]
    report.settings = {"database": (args.database_url or "sqlite").split(":")[0], "due now": args.due,
                       "worker processes": args.processes, "schedulers": "2 sweep loops, 1 s apart"}
    smallest = results[0]
    rates = [result["drain_rate"] for result in results]
    memories = [result["memory_peak"] for result in results]
    for result in results:
        size = f"{result['future']:,.0f} future"
        report.add(Figure(f"drain rate, {size}", result["drain_rate"], "/s", baseline=smallest["drain_rate"],
                          note=f"{result['sent']:.0f} sent of {args.due}"))
        report.add(Figure(f"periodic job, run while draining (p50), {size}", result["sweep_busy_p50"] * 1000, "ms",
                          baseline=smallest["sweep_busy_p50"] * 1000, note=f"max {result['sweep_busy_max'] * 1000:.0f} ms, {result['sweeps']:.0f} runs"))
        report.add(Figure(f"periodic job, run with nothing due (p50), {size}", result["sweep_idle_p50"] * 1000, "ms",
                          baseline=smallest["sweep_idle_p50"] * 1000))
        report.add(Figure(f"Redis memory peak above empty, {size}", result["memory_peak"], "MiB", baseline=smallest["memory_peak"],
                          note=f"{result['memory_end']:.1f} MiB at the end"))
        report.add(Figure(f"duplicate sends, {size}", result["duplicates"], "", target="0", met=result["duplicates"] == 0 and result["left"] == 0))
        report.add(Figure(f"set-up time (not measured), {size}", result["setup_seconds"], "s"))
    spread = max(rates) / min(rates) - 1 if min(rates) > 0 else float("inf")
    report.add(Figure("drain rate spread across sizes", spread * 100, "%", target=f"<= {TARGET_DRAIN_SPREAD:.0%}",
                      met=at_most(spread, TARGET_DRAIN_SPREAD)))
    memory_spread = max(memories) / min(memories) - 1 if min(memories) > 0 else float("inf")
    report.add(Figure("Redis memory spread across sizes", memory_spread * 100, "%", target="independent of future sends (<= 20%)",
                      met=at_most(memory_spread, 0.2)))
    report.print()


if __name__ == "__main__":
    main()
