"""`smsdrip simulate`: the previewed timeline, its JSON, scripted replies, and agreement with the engine."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from engine.db import session_scope
from engine.models import ScheduledSend, SendStatus
from engine.schedule import Recipient
from engine.sequence_files import load_sequence_text
from engine.simulation import simulate
from smsdrip.cli import main
from tests.sequence_helpers import PROSPECT, pending_sends, send_due, text_in, use_sequences

NY = ZoneInfo("America/New_York")

DEMO = """\
name: demo
keywords: [DEMO]
send_window:
  days: [mon, tue, wed, thu, fri, sat]
  start: "09:00"
  end: "20:00"
steps:
  - id: welcome
    after: 0
    text: "Hi {first_name|there}! Reply YES for a call."
    replies:
      yes: {next: call, reply: "Great!"}
      no: {end: lost}
  - id: tips
    after: 1d
    at: "09:30"
    text: "Tip: texts over 160 characters cost more."
  - id: weekend
    after: 2h
    text: "Have a good weekend, {first_name|friend}."
  - id: call
    after: 1d
    text: "Book a call: https://example.com/call"
"""


@pytest.fixture
def demo_file(tmp_path: Path) -> Path:
    path = tmp_path / "demo.yaml"
    path.write_text(DEMO)
    return path


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["simulate", *args], catch_exceptions=False)
    return result.exit_code, result.stdout


def run_error(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["simulate", *args], catch_exceptions=False)
    return result.exit_code, result.stderr


def run_json(*args: str) -> list[dict[str, object]]:
    code, output = run(*args, "--json")
    assert code == 0, output
    return json.loads(output)


def test_json_timeline_from_saturday_night(demo_file: Path):
    timeline = run_json(str(demo_file), "--start", "2026-03-07T20:55", "--tz", "America/New_York")
    assert timeline == [
        {
            "step": "welcome", "send_at_local": "2026-03-07T20:55:00-05:00", "send_at_utc": "2026-03-08T01:55:00+00:00",
            "time_zone": "America/New_York", "text": "Hi there! Reply YES for a call.", "encoding": "GSM-7", "segments": 1,
            "replies": {"YES": {"next": "call", "reply": "Great!"}, "NO": {"end": "lost"}},
        },
        {
            # 09:30 on Sunday, but the window skips Sunday: its next opening, Monday 09:00 (DST began on Sunday).
            "step": "tips", "send_at_local": "2026-03-09T09:00:00-04:00", "send_at_utc": "2026-03-09T13:00:00+00:00",
            "time_zone": "America/New_York", "text": "Tip: texts over 160 characters cost more.", "encoding": "GSM-7", "segments": 1,
        },
        {
            "step": "weekend", "send_at_local": "2026-03-09T11:00:00-04:00", "send_at_utc": "2026-03-09T15:00:00+00:00",
            "time_zone": "America/New_York", "text": "Have a good weekend, friend.", "encoding": "GSM-7", "segments": 1,
        },
        {
            "step": "call", "send_at_local": "2026-03-10T11:00:00-04:00", "send_at_utc": "2026-03-10T15:00:00+00:00",
            "time_zone": "America/New_York", "text": "Book a call: https://example.com/call", "encoding": "GSM-7", "segments": 1,
        },
        {"end": "completed"},
    ]


def test_reply_word_branches_timeline(demo_file: Path):
    timeline = run_json(str(demo_file), "--start", "2026-03-04T10:00", "--tz", "America/New_York", "--reply", "welcome=Yes!")
    assert [item.get("step") for item in timeline] == ["welcome", "call", None]
    assert timeline[0]["reply"] == {"text": "Yes!", "matched": "YES", "outcome": "next call", "answer": "Great!"}
    assert timeline[1]["send_at_local"] == "2026-03-05T10:00:00-05:00"
    assert timeline[-1] == {"end": "completed"}


def test_reply_word_ends_timeline(demo_file: Path):
    timeline = run_json(str(demo_file), "--start", "2026-03-04T10:00", "--tz", "America/New_York", "--reply", "welcome=no")
    assert timeline[-1] == {"end": "lost"}
    assert len(timeline) == 2


def test_other_reply_stops_timeline(demo_file: Path):
    timeline = run_json(str(demo_file), "--start", "2026-03-04T10:00", "--tz", "America/New_York", "--reply", "tips=who is this")
    assert [item.get("step") for item in timeline] == ["welcome", "tips", None]
    assert timeline[-1] == {"end": "replied"}


def test_fields_fill_templates(demo_file: Path):
    timeline = run_json(str(demo_file), "--start", "2026-03-04T10:00", "--tz", "America/New_York", "--field", "first_name=Ana")
    assert timeline[0]["text"] == "Hi Ana! Reply YES for a call."


def test_ucs2_text_reported(tmp_path: Path):
    path = tmp_path / "emoji.yaml"
    path.write_text("name: emoji\nkeywords: [GO]\nsteps:\n  - id: a\n    after: 0\n    text: \"We’re glad 🎉 " + "x" * 60 + "\"\n")
    timeline = run_json(str(path), "--start", "2026-03-04T10:00", "--tz", "America/New_York")
    assert (timeline[0]["encoding"], timeline[0]["segments"]) == ("UCS-2", 2)


EVENING = "name: evening\nkeywords: [GO]\nsteps:\n  - id: a\n    after: 0\n    text: Hi\n  - id: b\n    after: 45m\n    text: Later\n"


def test_florida_phone_stops_at_eight(tmp_path: Path):
    path = tmp_path / "evening.yaml"
    path.write_text(EVENING)
    florida = run_json(str(path), "--start", "2026-03-04T19:30", "--phone", "+13055551234")
    new_york = run_json(str(path), "--start", "2026-03-04T19:30", "--phone", "+12125550123")
    assert florida[1]["send_at_local"] == "2026-03-05T08:00:00-05:00"
    assert new_york[1]["send_at_local"] == "2026-03-04T20:15:00-05:00"


def test_phone_sets_time_zone(demo_file: Path):
    timeline = run_json(str(demo_file), "--start", "2026-03-04T10:00", "--phone", "+14155550123")
    assert timeline[1]["send_at_local"] == "2026-03-05T09:30:00-08:00"


def test_default_time_zone_from_environment(demo_file: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SMSDRIP_DEFAULT_TZ", "America/Chicago")
    timeline = run_json(str(demo_file), "--start", "2026-03-04T10:00")
    assert timeline[1]["send_at_local"] == "2026-03-05T09:30:00-06:00"


def test_text_output_lists_steps(demo_file: Path):
    code, output = run(str(demo_file), "--start", "2026-03-07T20:55", "--tz", "America/New_York")
    assert code == 0
    lines = output.splitlines()
    assert lines[0] == f"demo ({demo_file}): enrolled Sat 2026-03-07 20:55 EST, times in America/New_York"
    assert lines[1] == "welcome: Sat 2026-03-07 20:55 EST (2026-03-08 01:55 UTC), GSM-7, 1 segment"
    assert lines[2] == "    Hi there! Reply YES for a call."
    assert lines[3] == "    reply YES: next call, answer 'Great!'"
    assert lines[4] == "    reply NO: end lost"
    assert lines[5] == "tips: Mon 2026-03-09 09:00 EDT (2026-03-09 13:00 UTC), GSM-7, 1 segment"
    assert lines[-1] == "end: completed"


def test_text_output_shows_reply(demo_file: Path):
    code, output = run(str(demo_file), "--start", "2026-03-04T10:00", "--tz", "America/New_York", "--reply", "welcome=yes")
    assert "    -> contact replies 'yes': matches YES, next call" in output.splitlines()
    assert "       answered at once: Great!" in output.splitlines()


def test_bad_time_zone_rejected(demo_file: Path):
    code, output = run_error(str(demo_file), "--start", "2026-03-04T10:00", "--tz", "Europe/Atlantis")
    assert code == 2
    assert "'Europe/Atlantis' is not a known IANA time zone" in output


def test_unknown_reply_step_rejected(demo_file: Path):
    code, output = run_error(str(demo_file), "--start", "2026-03-04T10:00", "--reply", "nope=yes")
    assert code == 2
    assert "'nope' is not a step of demo: use one of welcome, tips, weekend, call" in output


def test_bad_start_rejected(demo_file: Path):
    code, output = run_error(str(demo_file), "--start", "tomorrow")
    assert code == 2
    assert "'tomorrow' is not a date and time: write it like 2026-03-07T20:55" in output


def test_broken_file_lists_problems(tmp_path: Path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\nkeywords: [STOP]\nsteps:\n  - id: a\n    after: 0\n    text: Hi\n")
    code, output = run(str(path), "--start", "2026-03-04T10:00")
    assert code == 1
    assert output == f"{path}:2: keywords: 'STOP' is a reserved word: carriers keep it for opt-out, opt-in and help, so pick another word\n"


def test_preview_matches_engine_schedule(smsdrip_env, sequences_dir: Path):
    use_sequences(sequences_dir, demo=DEMO)
    start = datetime(2026, 3, 7, 20, 55, tzinfo=NY)
    preview = simulate(load_sequence_text(DEMO, "demo.yaml"), start, Recipient(phone=PROSPECT), {}, [])

    text_in("DEMO", start.astimezone(timezone.utc))
    sent_at: list[datetime] = []
    while pending_sends():
        _step, due_at = pending_sends()[0]
        send_due(due_at)
        sent_at.append(due_at)
    with session_scope() as session:
        steps = session.scalars(select(ScheduledSend.step_id).where(ScheduledSend.status == SendStatus.SENT.value).order_by(ScheduledSend.id)).all()

    assert list(steps) == [entry.step.id for entry in preview.entries]
    assert sent_at == [entry.send_at for entry in preview.entries]
