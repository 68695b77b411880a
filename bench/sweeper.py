"""Runs the periodic job (workers.jobs.enqueue_due_sends) in a loop and logs each run's time as JSON lines.

The scale benchmark starts two of these to play two schedulers. RQ's cron runs the same function every
30 seconds; a 1-second interval lets a benchmark see many runs.
"""

from __future__ import annotations

import argparse
import json
import signal
import time

from workers.jobs import enqueue_due_sends


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between the end of one run and the next")
    parser.add_argument("--output", required=True, help="file to append one JSON line per run to")
    args = parser.parse_args()

    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    with open(args.output, "a") as output:
        while not stopping:
            start = time.perf_counter()
            enqueued = enqueue_due_sends()
            seconds = time.perf_counter() - start
            output.write(json.dumps({"at": time.time(), "seconds": seconds, "enqueued": enqueued}) + "\n")
            output.flush()
            time.sleep(args.interval)


if __name__ == "__main__":
    main()
