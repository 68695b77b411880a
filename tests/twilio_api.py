"""A local HTTP server that speaks the part of Twilio's REST API smsdrip uses: creating Messages.

Tests and benchmarks point SMSDRIP_TWILIO_API_URL at it, so the real `twilio` client does the sending.
It checks HTTP basic auth and the required fields as Twilio does, answers with Twilio's JSON shapes,
can add latency or answer chosen numbers with an error (21610 for an opted-out number, 429, 500), can
hold requests before or after accepting the message (to kill a worker at that moment), and can post
signed status callbacks back to StatusCallback.

Run standalone: python -m tests.twilio_api --port 8081 [--latency-ms 150]
"""

from __future__ import annotations

import argparse
import base64
import json
import select
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode
from urllib.request import Request, urlopen

from twilio.request_validator import RequestValidator

MESSAGES_PATH = "/2010-04-01/Accounts/{account}/Messages.json"


@dataclass
class SentMessage:
    sid: str
    to: str
    from_: str | None
    messaging_service_sid: str | None
    body: str
    status_callback: str | None
    received_at: float  # time.time() when the request arrived, before any latency or hold


@dataclass
class Failure:
    http_status: int
    code: int
    message: str
    times: int | None = None  # answer this many requests with the error, then succeed; None: always


@dataclass
class TwilioApiState:
    account_sid: str
    auth_token: str
    latency: float = 0.0  # seconds added before each answer
    callbacks: tuple[str, ...] = ()  # statuses to post to StatusCallback after each accepted message
    callback_error_code: int | None = None  # ErrorCode sent with failed and undelivered callbacks
    hold_stage: str | None = None  # "before_accept" or "after_accept": requests wait there until release()
    held: int = 0  # requests waiting at the hold
    release_event: threading.Event = field(default_factory=threading.Event)
    dropped: int = 0  # held requests whose client hung up before the message was accepted
    messages: list[SentMessage] = field(default_factory=list)
    failures: dict[str, Failure] = field(default_factory=dict)  # by To number
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle's algorithm on, the body waits for the client's
    # delayed ACK of the headers, which adds about 40 ms to every answer on a kept-alive connection.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - BaseHTTPRequestHandler's signature
        pass

    def _json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, code: int, message: str) -> None:
        self._json(status, {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status})

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        if self.path == "/_test/messages":
            state = self.server.state
            with state.lock:
                payload = [message.__dict__ for message in state.messages]
            self._json(200, payload)
            return
        self._error(404, 20404, "The requested resource was not found")

    def _hold(self, stage: str) -> None:
        state = self.server.state
        if state.hold_stage != stage:
            return
        with state.lock:
            state.held += 1
        state.release_event.wait()

    def _client_gone(self) -> bool:
        readable, _, _ = select.select([self.connection], [], [], 0)
        if not readable:
            return False
        try:
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        try:
            self._post()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client (a killed worker) is gone; nothing to answer

    def _post(self) -> None:
        state = self.server.state
        arrived_at = time.time()
        length = int(self.headers.get("Content-Length") or 0)
        form = {key: values[0] for key, values in parse_qs(self.rfile.read(length).decode(), keep_blank_values=True).items()}
        if self.path == "/_test/latency":
            # Benchmarks change the latency between runs without restarting the server or the workers.
            with state.lock:
                state.latency = float(form.get("ms") or 0) / 1000
            self._json(200, {"latency_ms": state.latency * 1000})
            return
        with state.lock:
            state.requests += 1
        if state.latency:
            time.sleep(state.latency)

        expected_path = MESSAGES_PATH.format(account=state.account_sid)
        if self.path != expected_path:
            self._error(404, 20404, f"The requested resource {self.path} was not found")
            return
        expected_auth = "Basic " + base64.b64encode(f"{state.account_sid}:{state.auth_token}".encode()).decode()
        if self.headers.get("Authorization") != expected_auth:
            self._error(401, 20003, "Authenticate")
            return
        if not form.get("To"):
            self._error(400, 21604, "A 'To' phone number is required.")
            return
        if not form.get("From") and not form.get("MessagingServiceSid"):
            self._error(400, 21603, "A 'From' phone number is required.")
            return
        if not form.get("Body"):
            self._error(400, 21602, "Message body is required.")
            return

        with state.lock:
            failure = state.failures.get(form["To"])
            if failure is not None and failure.times is not None:
                failure.times -= 1
                if failure.times <= 0:
                    del state.failures[form["To"]]
        if failure is not None:
            self._error(failure.http_status, failure.code, failure.message)
            return

        self._hold("before_accept")
        if self._client_gone():
            # A request whose sender died before the carrier took it: as if it never arrived.
            with state.lock:
                state.dropped += 1
            return

        message = SentMessage(
            sid="SM" + uuid.uuid4().hex,
            to=form["To"],
            from_=form.get("From"),
            messaging_service_sid=form.get("MessagingServiceSid"),
            body=form["Body"],
            status_callback=form.get("StatusCallback"),
            received_at=arrived_at,
        )
        with state.lock:
            state.messages.append(message)
        self._hold("after_accept")
        now = datetime.now(timezone.utc).strftime("%a, %d %b %Y %H:%M:%S +0000")
        self._json(201, {
            "sid": message.sid, "account_sid": state.account_sid, "to": message.to, "from": message.from_,
            "messaging_service_sid": message.messaging_service_sid, "body": message.body, "status": "queued",
            "num_segments": "1", "num_media": "0", "direction": "outbound-api", "api_version": "2010-04-01",
            "date_created": now, "date_updated": now, "date_sent": None, "error_code": None, "error_message": None,
            "price": None, "price_unit": "USD", "uri": f"{expected_path[:-5]}/{message.sid}.json",
        })
        if message.status_callback and state.callbacks:
            threading.Thread(target=post_callbacks, args=(state, message, state.callbacks, state.callback_error_code), daemon=True).start()


def post_callbacks(state: TwilioApiState, message: SentMessage, statuses: tuple[str, ...], error_code: int | None = None) -> list[int]:
    """Post signed status callbacks for `message`, in the given order; returns the HTTP status of each."""
    answers = []
    for status in statuses:
        params = {"MessageSid": message.sid, "MessageStatus": status, "AccountSid": state.account_sid,
                  "To": message.to, "From": message.from_ or "", "ApiVersion": "2010-04-01"}
        if error_code is not None and status in ("failed", "undelivered"):
            params["ErrorCode"] = str(error_code)
        assert message.status_callback is not None
        signature = RequestValidator(state.auth_token).compute_signature(message.status_callback, params)
        request = Request(message.status_callback, data=urlencode(params).encode(), headers={"X-Twilio-Signature": signature})
        with urlopen(request, timeout=10) as response:
            answers.append(response.status)
    return answers


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: TwilioApiState


class TwilioApiServer:
    """Runs the local Messages API on 127.0.0.1 in a background thread."""

    def __init__(self, account_sid: str = "AC" + "1" * 32, auth_token: str = "test-auth-token", port: int = 0, latency: float = 0.0) -> None:
        self.state = TwilioApiState(account_sid=account_sid, auth_token=auth_token, latency=latency)
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.state = self.state
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def messages(self) -> list[SentMessage]:
        with self.state.lock:
            return list(self.state.messages)

    def fail(self, to: str, http_status: int, code: int, message: str, times: int | None = None) -> None:
        """Answer sends to `to` with this error (`times` requests, or always)."""
        with self.state.lock:
            self.state.failures[to] = Failure(http_status, code, message, times)

    def hold(self, stage: str) -> None:
        """Make requests wait before the message is accepted ("before_accept") or before the answer ("after_accept")."""
        assert stage in ("before_accept", "after_accept"), stage
        with self.state.lock:
            self.state.release_event.clear()
            self.state.hold_stage = stage

    def release(self) -> None:
        """Let held and later requests go on."""
        with self.state.lock:
            self.state.hold_stage = None
        self.state.release_event.set()

    def wait_held(self, count: int = 1, timeout: float = 20.0) -> bool:
        """Wait until `count` requests wait at the hold."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.state.held >= count:
                return True
            time.sleep(0.02)
        return False

    def wait_for(self, count: int, timeout: float = 20.0) -> list[SentMessage]:
        """Wait until at least `count` messages arrived; returns them all (fewer on timeout)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            messages = self.messages
            if len(messages) >= count:
                return messages
            time.sleep(0.05)
        return self.messages

    def start(self) -> TwilioApiServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def running_twilio_api(**options: Any) -> Iterator[TwilioApiServer]:
    server = TwilioApiServer(**options).start()
    try:
        yield server
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="Local Twilio Messages API for tests and benchmarks.")
    parser.add_argument("--port", type=int, default=8081, help="TCP port on 127.0.0.1")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="milliseconds added to each answer")
    parser.add_argument("--account-sid", default="AC" + "1" * 32)
    parser.add_argument("--auth-token", default="test-auth-token")
    args = parser.parse_args()
    server = TwilioApiServer(args.account_sid, args.auth_token, args.port, args.latency_ms / 1000)
    print(f"Twilio API on {server.url} (account {args.account_sid})", flush=True)
    server._server.serve_forever()


if __name__ == "__main__":
    main()
