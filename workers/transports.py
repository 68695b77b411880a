"""Outbound transports: the Twilio Messages API through the `twilio` client, or the log for local runs."""

from __future__ import annotations

import logging
import os
import re
import threading
import uuid
from dataclasses import dataclass
from typing import Protocol
from urllib.request import getproxies

from requests import Session
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from engine.config import Settings
from engine.phones import mask

logger = logging.getLogger(__name__)

# Seconds to wait for the Messages API; the twilio client waits forever by default. Part of the send
# job's timeout (workers.queue.SEND_JOB_TIMEOUT).
TWILIO_HTTP_TIMEOUT = 30
# A phone number in E.164 form inside a text's body, such as a rep's number in a notification.
NUMBER_IN_TEXT = re.compile(r"\+\d{7,15}")
# Certificate bundle variables requests reads when it trusts the environment, in its order of precedence.
CA_BUNDLE_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


def read_environment_once(session: Session) -> None:
    """Let the requests session skip its per-request reading of the environment when no proxy is set.

    With `trust_env` on, requests looks up proxies, proxy bypass rules and certificate bundles on
    every request, which cost about 0.1 ms of CPU per text on the benchmark machine
    (docs/benchmarks.md). The proxies come from `urllib.request.getproxies()`, as in requests: the
    *_proxy variables, and the system settings on macOS and Windows. When there are none, the session
    stops trusting the environment, and a certificate bundle named in REQUESTS_CA_BUNDLE or
    CURL_CA_BUNDLE is set on the session once instead. So a change after the transport is built
    needs a worker restart.
    """
    if getproxies():
        return
    session.trust_env = False
    for name in CA_BUNDLE_VARIABLES:
        if os.environ.get(name):
            session.verify = os.environ[name]
            break


@dataclass(frozen=True)
class SendResult:
    sid: str  # MessageSid given by the carrier
    status: str  # first MessageStatus, usually "queued" or "accepted"
    from_number: str  # number or Messaging Service SID the text goes from


class Transport(Protocol):
    def send(self, to: str, body: str) -> SendResult: ...


class TwilioTransport:
    """Sends through the Messages API; the base URL can point at any Twilio-compatible API."""

    def __init__(self, settings: Settings) -> None:
        http_client = TwilioHttpClient(timeout=TWILIO_HTTP_TIMEOUT)
        assert http_client.session is not None  # built with pool_connections=True, the default
        read_environment_once(http_client.session)
        self.client = Client(settings.twilio_account_sid, settings.twilio_auth_token, http_client=http_client)
        self.client.api.base_url = settings.twilio_api_url
        self.from_number = settings.twilio_from_number
        self.messaging_service_sid = settings.twilio_messaging_service_sid
        self.status_callback = f"{settings.public_url}/twilio/status"

    def send(self, to: str, body: str) -> SendResult:
        if self.messaging_service_sid:
            message = self.client.messages.create(
                to=to, body=body, messaging_service_sid=self.messaging_service_sid, status_callback=self.status_callback
            )
        else:
            message = self.client.messages.create(to=to, body=body, from_=self.from_number, status_callback=self.status_callback)
        sender = self.messaging_service_sid or self.from_number or ""
        return SendResult(sid=str(message.sid), status=str(message.status or "queued"), from_number=str(message.from_ or sender))


class ConsoleTransport:
    """Logs each text instead of sending it, with a made-up MessageSid so the rest of the path runs as usual."""

    def __init__(self, settings: Settings) -> None:
        self.from_number = settings.twilio_from_number or settings.twilio_messaging_service_sid or "console"

    def send(self, to: str, body: str) -> SendResult:
        sid = "SM" + uuid.uuid4().hex
        masked_body = NUMBER_IN_TEXT.sub(lambda found: mask(found.group()), body)  # logs hold no full number
        logger.info("console transport: text %s to %s:\n    %s", sid, mask(to), masked_body.replace("\n", "\n    "))
        return SendResult(sid=sid, status="sent", from_number=self.from_number)


# One transport per thread: the twilio client's HTTP session is not meant to be shared between
# threads, and `smsdrip worker --threads` runs several send jobs at once in one process.
_local = threading.local()


def get_transport(settings: Settings) -> Transport:
    """Return this thread's transport, built once so the HTTP client keeps its connections."""
    transport: Transport | None = getattr(_local, "transport", None)
    if transport is None:
        transport = TwilioTransport(settings) if settings.transport == "twilio" else ConsoleTransport(settings)
        _local.transport = transport
    return transport


def reset_transport() -> None:
    """Forget this thread's transport, for tests that change the settings."""
    _local.transport = None
