"""Profile one send: workers.jobs.send_scheduled called in this process, without RQ, under pyinstrument.

It prints the CPU milliseconds per send, the SQL statements and transactions per send, and pyinstrument's
call tree, to show where a send's time goes (docs/benchmarks.md, dispatch). The local Twilio API runs in
its own process, so its CPU is not counted.
Needs the bench extra: pip install -e '.[bench]'.

    python -m bench.profile_send [--sends 1000] [--database-url URL]
"""

from __future__ import annotations

import argparse
import time
from datetime import timedelta

from bench.data import insert_contacts, insert_step_sends, utcnow
from bench.services import add_common_arguments, apply_environment, bench_environment, start_twilio_api

WARM_UP = 50  # sends before measuring: imports, connection pools, the sequence library
COUNTED_SENDS = 200  # sends whose SQL statements and transactions are counted


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--sends", type=int, default=1000, help="sends to measure (default 1000)")
    args = parser.parse_args(argv)
    from pyinstrument import Profiler

    with bench_environment(args.database_url, args.redis_url) as environment:
        _api, api_url = start_twilio_api(environment)
        environment.env.update({"SMSDRIP_TWILIO_API_URL": api_url, "SMSDRIP_MPS": "1000"})
        apply_environment(environment.env)
        from engine.db import count_statements, get_engine
        from workers.jobs import send_scheduled

        now = utcnow()
        count = WARM_UP + args.sends
        send_ids = insert_step_sends(insert_contacts(0, count, now), [now - timedelta(seconds=1)] * count, now)
        for send_id in send_ids[:WARM_UP]:
            send_scheduled(send_id)

        start = time.process_time()
        for send_id in send_ids[WARM_UP:]:
            send_scheduled(send_id)
        cpu_ms = (time.process_time() - start) * 1000 / args.sends

        counted_ids = insert_step_sends(insert_contacts(count, COUNTED_SENDS, now), [now - timedelta(seconds=1)] * COUNTED_SENDS, now)
        with count_statements(get_engine()) as counted:
            for send_id in counted_ids:
                send_scheduled(send_id)
        count += COUNTED_SENDS

        profiler = Profiler(interval=0.0005)
        more_ids = insert_step_sends(insert_contacts(count, args.sends, now), [now - timedelta(seconds=1)] * args.sends, now)
        with profiler:
            for send_id in more_ids:
                send_scheduled(send_id)
    print(f"{cpu_ms:.2f} ms CPU per send ({args.sends} sends, {environment.database_url.split(':')[0]}, without profiler)")
    kinds = ", ".join(f"{number / COUNTED_SENDS:g} {kind}" for kind, number in counted.statements.most_common())
    print(f"{counted.total / COUNTED_SENDS:g} SQL statements ({kinds}) and {counted.commits / COUNTED_SENDS:g} transactions "
          f"per send (over {COUNTED_SENDS} sends)")
    print(profiler.output_text(unicode=False, color=False))


if __name__ == "__main__":
    main()
