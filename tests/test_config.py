"""Settings from the environment: defaults, and a message naming the variable for each invalid value."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from engine.config import ConfigError, Settings
from workers.transports import ConsoleTransport


@pytest.fixture
def base_env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "sequences").mkdir()
    return {"SMSDRIP_SEQUENCES": str(tmp_path / "sequences")}


def test_defaults_are_sqlite_embedded_redis_console(base_env, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env(base_env)
    assert settings.database_url == f"sqlite:///{tmp_path / 'smsdrip.db'}"
    assert settings.redis_url is None
    assert settings.transport == "console"
    assert settings.verify_signatures is True
    assert settings.public_url == "http://localhost:5000"


def test_twilio_credentials_select_twilio_transport(base_env):
    env = {**base_env, "TWILIO_ACCOUNT_SID": "AC" + "2" * 32, "TWILIO_AUTH_TOKEN": "token", "TWILIO_FROM_NUMBER": "+15550100000"}
    assert Settings.from_env(env).transport == "twilio"


def test_postgres_url_gets_psycopg_driver(base_env):
    settings = Settings.from_env({**base_env, "DATABASE_URL": "postgres://u@db.example/prod"})
    assert settings.database_url == "postgresql+psycopg://u@db.example/prod"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SMSDRIP_TRANSPORT", "carrier-pigeon"),
        ("REDIS_URL", "http://localhost:6379"),
        ("DATABASE_URL", "mysql://localhost/db"),
        ("SMSDRIP_PUBLIC_URL", "sms.example.com"),
        ("SMSDRIP_TWILIO_API_URL", "ftp://api"),
        ("SMSDRIP_VERIFY_SIGNATURES", "maybe"),
        ("SMSDRIP_SEQUENCES", "/nonexistent/folder"),
    ],
)
def test_invalid_value_names_variable(base_env, name, value):
    with pytest.raises(ConfigError) as error:
        Settings.from_env({**base_env, name: value})
    assert str(error.value).startswith(f"{name}=")
    assert value in str(error.value)


def test_twilio_transport_without_sender_is_rejected(base_env):
    env = {**base_env, "TWILIO_ACCOUNT_SID": "AC" + "2" * 32, "TWILIO_AUTH_TOKEN": "token"}
    with pytest.raises(ConfigError, match="TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID"):
        Settings.from_env(env)


def test_twilio_transport_without_token_is_rejected(base_env):
    with pytest.raises(ConfigError, match="needs TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN"):
        Settings.from_env({**base_env, "SMSDRIP_TRANSPORT": "twilio"})


def test_console_transport_masks_numbers_in_body(base_env, caplog):
    transport = ConsoleTransport(Settings.from_env(base_env))
    with caplog.at_level(logging.INFO, logger="workers.transports"):
        result = transport.send("+15550100001", "Call Dana at +12125550199 or reply STOP.\nSee you!")
    assert result.sid.startswith("SM")
    assert result.status == "sent"
    assert caplog.messages == [f"console transport: text {result.sid} to *******0001:\n"
                               "    Call Dana at *******0199 or reply STOP.\n    See you!"]
