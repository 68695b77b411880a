"""Profile the inbound webhook in this process: signed keyword posts through Flask's test client, under pyinstrument.

It prints the CPU milliseconds per request for a keyword from a new number and for a reply, then
pyinstrument's call tree of the keyword requests (docs/benchmarks.md, inbound webhook). Without
gunicorn and sockets, the figures are the application's own cost. Needs the bench extra:
pip install -e '.[bench]'.

    python -m bench.profile_webhook [--requests 500] [--database-url URL]
"""

from __future__ import annotations

import argparse
import time
import uuid

from twilio.request_validator import RequestValidator

from bench.data import phone_number
from bench.services import ACCOUNT_SID, AUTH_TOKEN, OUR_NUMBER, add_common_arguments, bench_environment

PUBLIC_URL = "http://localhost"  # the host Flask's test client puts in the URL the signature covers
WARM_UP = 50  # requests before measuring


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--requests", type=int, default=500, help="requests to measure per kind (default 500)")
    args = parser.parse_args(argv)
    from pyinstrument import Profiler

    with bench_environment(args.database_url, args.redis_url, public_url=PUBLIC_URL):
        from webhooks.app import create_app

        client = create_app().test_client()
        validator = RequestValidator(AUTH_TOKEN)

        def post(contact: int, body: str) -> None:
            params = {"MessageSid": "SM" + uuid.uuid4().hex, "AccountSid": ACCOUNT_SID, "From": phone_number(contact),
                      "To": OUR_NUMBER, "Body": body, "NumMedia": "0"}
            signature = validator.compute_signature(f"{PUBLIC_URL}/twilio/sms", params)
            response = client.post("/twilio/sms", data=params, headers={"X-Twilio-Signature": signature})
            if response.status_code != 200:
                raise RuntimeError(f"webhook returned HTTP {response.status_code}: {response.get_data(as_text=True)[:300]}")

        for contact in range(WARM_UP):
            post(contact, "demo")
        first, last = WARM_UP, WARM_UP + args.requests
        start = time.process_time()
        for contact in range(first, last):
            post(contact, "demo")
        keyword_ms = (time.process_time() - start) * 1000 / args.requests
        start = time.process_time()
        for contact in range(first, last):
            post(contact, "Sounds good, what does it cost?")
        reply_ms = (time.process_time() - start) * 1000 / args.requests

        profiler = Profiler(interval=0.0005)
        with profiler:
            for contact in range(last, last + args.requests):
                post(contact, "demo")
    print(f"{keyword_ms:.2f} ms CPU per keyword request, {reply_ms:.2f} ms per reply ({args.requests} each, without profiler)")
    print(profiler.output_text(unicode=False, color=False))


if __name__ == "__main__":
    main()
