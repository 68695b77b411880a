"""Twilio transport: the requests session reads proxies and certificate bundles from the environment only when it must."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import requests

from engine.config import Settings
from tests.conftest import ACCOUNT_SID, AUTH_TOKEN, OUR_NUMBER
from tests.twilio_api import TwilioApiServer
from workers.transports import CA_BUNDLE_VARIABLES, TwilioTransport

PROSPECT = "+12125550123"


@pytest.fixture
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Remove every proxy and certificate bundle variable, in both cases, so each test sets its own."""
    for name in list(os.environ):
        if name.lower().endswith("_proxy") or name in CA_BUNDLE_VARIABLES:
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.fixture
def settings(twilio_api: TwilioApiServer, tmp_path: Path) -> Settings:
    (tmp_path / "sequences").mkdir()
    return Settings.from_env({
        "SMSDRIP_SEQUENCES": str(tmp_path / "sequences"),
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_FROM_NUMBER": OUR_NUMBER,
        "SMSDRIP_TWILIO_API_URL": twilio_api.url,
    })


def _session(transport: TwilioTransport) -> requests.Session:
    session = transport.client.http_client.session  # type: ignore[attr-defined]
    assert isinstance(session, requests.Session)
    return session


def _closed_port() -> int:
    """Return a local port nothing listens on, so a request through a proxy there fails to connect."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_unset_proxies_skip_environment(clean_environ, settings, twilio_api):
    transport = TwilioTransport(settings)
    assert _session(transport).trust_env is False
    assert _session(transport).verify is True

    # Set after the transport was built, the proxy is not looked up, so the text goes straight to the API.
    clean_environ.setenv("HTTP_PROXY", f"http://127.0.0.1:{_closed_port()}")
    result = transport.send(PROSPECT, "Hello")
    assert result.sid.startswith("SM")
    assert [message.to for message in twilio_api.messages] == [PROSPECT]


@pytest.mark.parametrize("name", ["HTTP_PROXY", "http_proxy", "ALL_PROXY"])
def test_proxy_variable_keeps_environment(clean_environ, settings, twilio_api, name):
    clean_environ.setenv(name, f"http://127.0.0.1:{_closed_port()}")
    transport = TwilioTransport(settings)
    assert _session(transport).trust_env is True

    with pytest.raises(requests.exceptions.ProxyError):
        transport.send(PROSPECT, "Hello")
    assert twilio_api.messages == []


def test_no_proxy_list_keeps_environment(clean_environ, settings):
    clean_environ.setenv("no_proxy", "api.twilio.com")
    assert _session(TwilioTransport(settings)).trust_env is True


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"REQUESTS_CA_BUNDLE": "/etc/bundle-a.pem"}, "/etc/bundle-a.pem"),
        ({"CURL_CA_BUNDLE": "/etc/bundle-b.pem"}, "/etc/bundle-b.pem"),
        ({"REQUESTS_CA_BUNDLE": "/etc/bundle-a.pem", "CURL_CA_BUNDLE": "/etc/bundle-b.pem"}, "/etc/bundle-a.pem"),
    ],
    ids=["requests", "curl", "requests-first"],
)
def test_ca_bundle_variable_sets_verify(clean_environ, settings, variables, expected):
    for name, value in variables.items():
        clean_environ.setenv(name, value)
    session = _session(TwilioTransport(settings))
    assert session.trust_env is False
    assert session.verify == expected
    # What requests passes to the adapter for a request, as it would with the environment trusted.
    merged = session.merge_environment_settings("https://api.twilio.com/2010-04-01", {}, None, None, None)
    assert merged["verify"] == expected
