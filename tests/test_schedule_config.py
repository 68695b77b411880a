"""SMSDRIP_DEFAULT_TZ: validated at start-up and used for numbers whose time zone is unknown."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from engine.config import ConfigError, Settings, reset_settings
from tests.sequence_helpers import pending_sends, send_due, text_in, use_sequences


def settings_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"SMSDRIP_SEQUENCES": str(tmp_path), "SMSDRIP_TRANSPORT": "console", **extra}


def test_default_zone_is_new_york(tmp_path: Path):
    assert Settings.from_env(settings_env(tmp_path)).default_time_zone == "America/New_York"


def test_default_zone_from_variable(tmp_path: Path):
    assert Settings.from_env(settings_env(tmp_path, SMSDRIP_DEFAULT_TZ="America/Denver")).default_time_zone == "America/Denver"


def test_invalid_default_zone_names_variable(tmp_path: Path):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(settings_env(tmp_path, SMSDRIP_DEFAULT_TZ="Pacific Time"))
    assert str(caught.value) == "SMSDRIP_DEFAULT_TZ='Pacific Time' is not a known IANA time zone: use a name such as America/Chicago"


TWO_STEPS = "name: demo\nkeywords: [DEMO]\nsteps:\n  - id: a\n    after: 0\n    text: Hi\n  - id: b\n    after: 1h\n    text: Later\n"


def test_unknown_number_scheduled_in_default_zone(smsdrip_env, sequences_dir: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SMSDRIP_DEFAULT_TZ", "America/Los_Angeles")
    reset_settings()
    use_sequences(sequences_dir, demo=TWO_STEPS)
    start = datetime(2026, 3, 4, 20, 30, tzinfo=ZoneInfo("America/Los_Angeles"))  # 23:30 in New York

    text_in("DEMO", start.astimezone(timezone.utc), from_number="+15550100001")
    send_due(start.astimezone(timezone.utc))
    assert pending_sends() == [("b", datetime(2026, 3, 5, 16, 0, tzinfo=timezone.utc))]  # 08:00 in Los Angeles
