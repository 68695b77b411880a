"""A small HTTP load generator, run in its own process so it does not share the server's interpreter.

It sends prepared raw requests (signed Twilio form posts) over a new connection each, since gunicorn's
sync workers close the connection after every response. Two modes:

- closed: `--concurrency` threads send back to back for `--duration` seconds (the maximum rate);
- open: requests start at a fixed `--rate`, whether or not earlier ones finished, and latency is
  measured from the planned start, so a stalled server shows up in the percentiles.

Input is a JSON file made by `write_plan`; output is one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
import time
from collections import Counter
from itertools import count
from pathlib import Path
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

from bench.report import percentile

CONNECT_TIMEOUT = 10.0  # seconds


def signed_request(host: str, port: int, public_url: str, path: str, params: dict[str, str], auth_token: str) -> bytes:
    """A complete HTTP/1.1 POST with the X-Twilio-Signature Twilio would compute for `public_url + path`."""
    body = urlencode(params).encode()
    signature = RequestValidator(auth_token).compute_signature(public_url + path, params)
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\nX-Twilio-Signature: {signature}\r\nConnection: close\r\n\r\n")
    return head.encode() + body


def write_plan(path: Path, host: str, port: int, requests: list[bytes]) -> None:
    path.write_text(json.dumps({"host": host, "port": port, "requests": [r.decode("latin-1") for r in requests]}))


def send_one(host: str, port: int, raw: bytes) -> int:
    """Send one request on a new connection and read until the server closes it; returns the HTTP status."""
    with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT) as sock:
        sock.sendall(raw)
        response = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            response += chunk
    return int(response[9:12]) if response.startswith(b"HTTP/") else 0


def run(host: str, port: int, requests: list[bytes], mode: str, duration: float, concurrency: int, rate: float) -> dict[str, object]:
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    indexes = count()
    start = time.perf_counter()
    deadline = start + duration

    def worker() -> None:
        while True:
            index = next(indexes)
            if index >= len(requests):
                return
            if mode == "open":
                planned = start + index / rate
                if planned >= deadline:
                    return
                delay = planned - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            else:
                planned = time.perf_counter()
                if planned >= deadline:
                    return
            try:
                status = send_one(host, port, requests[index])
            except OSError:
                status = 0
            finished = time.perf_counter()
            with lock:
                latencies.append(finished - planned)
                statuses[status] += 1

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    done = sum(statuses.values())
    return {
        "requests": done,
        "elapsed": elapsed,
        "rps": done / elapsed if elapsed else 0.0,
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "max_ms": max(latencies, default=0.0) * 1000,
        "statuses": {str(status): n for status, n in statuses.items()},
        "ran_out": done >= len(requests),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="Send prepared HTTP requests and report rate and latency as JSON.")
    parser.add_argument("plan", type=Path, help="JSON file written by bench.loadgen.write_plan")
    parser.add_argument("--mode", choices=["closed", "open"], default="closed")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds to send for")
    parser.add_argument("--concurrency", type=int, default=8, help="threads (closed: requests in flight)")
    parser.add_argument("--rate", type=float, default=0.0, help="requests per second in open mode")
    parser.add_argument("--skip", type=int, default=0, help="start at this request of the plan")
    args = parser.parse_args()
    plan = json.loads(args.plan.read_text())
    requests = [r.encode("latin-1") for r in plan["requests"]][args.skip:]
    result = run(plan["host"], plan["port"], requests, args.mode, args.duration, args.concurrency, args.rate)
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()
