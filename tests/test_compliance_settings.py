"""Settings for compliance and delivery: defaults, and invalid values named in the error."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.compliance import help_answer, opt_in_confirmation, opt_out_confirmation
from engine.config import ConfigError, Settings


def _settings(tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env({"SMSDRIP_SEQUENCES": str(tmp_path), **env})


def test_compliance_defaults(tmp_path: Path):
    settings = _settings(tmp_path)
    assert (settings.opt_out_replies, settings.mps, settings.undeliverable_after) == ("engine", 1.0, 3)
    assert settings.retry_delays == (2, 10, 60)
    assert settings.sweep_interval == 30


def test_sender_prefers_messaging_service(tmp_path: Path):
    settings = _settings(tmp_path, TWILIO_FROM_NUMBER="+15550100000", TWILIO_MESSAGING_SERVICE_SID="MG" + "0" * 32)
    assert settings.sender == "MG" + "0" * 32


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("SMSDRIP_OPT_OUT_REPLIES", "twilio", "use engine"),
        ("SMSDRIP_MPS", "0", "greater than 0"),
        ("SMSDRIP_MPS", "fast", "greater than 0"),
        ("SMSDRIP_MPS", "inf", "greater than 0"),
        ("SMSDRIP_UNDELIVERABLE_AFTER", "0", "at least 1"),
        ("SMSDRIP_RETRY_DELAYS", "2, ten", "whole seconds separated by commas"),
        ("SMSDRIP_SWEEP_INTERVAL", "-5", "at least 1"),
    ],
)
def test_invalid_value_names_variable(tmp_path: Path, name: str, value: str, expected: str):
    with pytest.raises(ConfigError, match=name) as raised:
        _settings(tmp_path, **{name: value})
    assert expected in str(raised.value)


def test_answers_name_brand(tmp_path: Path):
    settings = _settings(tmp_path, SMSDRIP_BRAND_NAME="Acme", SMSDRIP_HELP_CONTACT="call 555-0100")
    assert opt_out_confirmation(settings) == "Acme: You are unsubscribed and will receive no more messages from us. Reply START to resubscribe."
    assert opt_in_confirmation(settings).startswith("Acme: You are resubscribed")
    assert help_answer(settings) == "Acme: For help, call 555-0100. Msg & data rates may apply. Reply STOP to opt out."
