"""`smsdrip check`: summaries for good files, every problem with its line for bad ones, and warnings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from smsdrip.cli import main
from tests.conftest import REPO

GOOD = "name: demo\nkeywords: [DEMO]\nsteps:\n  - id: welcome\n    after: 0\n    text: Hi {first_name|there}\n"


def run(*args: str) -> tuple[int, list[str]]:
    result = CliRunner().invoke(main, ["check", *args], catch_exceptions=False)
    return result.exit_code, result.stdout.splitlines()


def test_good_file_prints_summary(tmp_path: Path):
    path = tmp_path / "demo.yaml"
    path.write_text(GOOD)
    assert run(str(path)) == (0, [f"{path}: ok: sequence demo, 1 step, keywords DEMO, send window every day 08:00-21:00"])


def test_folder_checks_each_file(tmp_path: Path):
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yml").write_text(GOOD.replace("demo", "promo").replace("DEMO", "PROMO"))
    (tmp_path / "notes.txt").write_text("not a sequence")
    code, lines = run(str(tmp_path))
    assert code == 0
    assert [line.split(": ok: ")[0] for line in lines] == [str(tmp_path / "a.yaml"), str(tmp_path / "b.yml")]


def test_problems_listed_with_lines(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nkeywords: [STOP]\nsteps:\n  - id: a\n    after: 2 days\n    text: Hi {first_name}\n")
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    code, lines = run(str(tmp_path))
    assert code == 1
    assert lines == [
        f"{bad}:2: keywords: 'STOP' is a reserved word: carriers keep it for opt-out, opt-in and help, so pick another word",
        f"{bad}:5: steps[0].after: '2 days' is not a delay: use 0 or a whole number with s, m, h or d, such as 30m or 1d",
        f"{bad}:6: steps[0].text: {{first_name}} has no default and not every contact has first_name: give it one, such as {{first_name|there}}",
        "3 problems in 1 file: fix them and run smsdrip check again",
    ]


def test_keyword_clash_between_files(tmp_path: Path):
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text(GOOD.replace("name: demo", "name: other"))
    code, lines = run(str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml"))
    assert code == 1
    assert lines[0] == (
        f"{tmp_path / 'b.yaml'}:2: keywords: 'DEMO' is already a keyword of sequence 'demo' ({tmp_path / 'a.yaml'}:2)"
        " on every number: pick another word, or give the two sequences different numbers"
    )


def test_missing_path_reported(tmp_path: Path):
    assert run(str(tmp_path / "nope.yaml")) == (1, [f"{tmp_path / 'nope.yaml'}:1: file: does not exist: check the path", "1 problem in 1 file: fix them and run smsdrip check again"])


def test_empty_folder_reported(tmp_path: Path):
    code, lines = run(str(tmp_path))
    assert code == 1
    assert lines[0] == f"{tmp_path}:1: file: is a folder with no .yaml or .yml files: add a sequence file"


def test_defaults_to_sequences_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "demo.yaml").write_text(GOOD)
    monkeypatch.setenv("SMSDRIP_SEQUENCES", str(folder))
    code, lines = run()
    assert code == 0
    assert lines[0].startswith(f"{folder / 'demo.yaml'}: ok: ")


def test_defaults_to_sequences_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "sequences").mkdir()
    (tmp_path / "sequences" / "demo.yaml").write_text(GOOD)
    monkeypatch.delenv("SMSDRIP_SEQUENCES", raising=False)
    monkeypatch.chdir(tmp_path)
    assert run() == (0, ["sequences/demo.yaml: ok: sequence demo, 1 step, keywords DEMO, send window every day 08:00-21:00"])


def warnings_for(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "w.yaml"
    path.write_text(text)
    code, lines = run(str(path))
    assert code == 0, lines
    return [line.replace(f"{path}:", "w.yaml:") for line in lines if line.startswith("warning: ")]


def test_warns_long_text(tmp_path: Path):
    text = GOOD.replace("Hi {first_name|there}", "x" * 460)
    assert warnings_for(tmp_path, text) == [
        "warning: w.yaml:6: steps[0].text: is 4 segments (GSM-7, 460 characters with optional fields at their defaults):"
        " texts over 3 segments cost more per send; shorten it"
    ]


def test_warns_ucs2_characters(tmp_path: Path):
    text = GOOD.replace("Hi {first_name|there}", '"We’re glad 🎉"')
    assert warnings_for(tmp_path, text) == [
        "warning: w.yaml:6: steps[0].text: ’ (U+2019 RIGHT SINGLE QUOTATION MARK), 🎉 (U+1F389 PARTY POPPER) force UCS-2 encoding,"
        " which fits 70 characters per segment instead of 160 (1 segment now): use straight quotes ' and \" and leave out emoji"
    ]


def test_warns_ucs2_default_text(tmp_path: Path):
    text = GOOD.replace("{first_name|there}", "{first_name|amigo 🙂}")
    assert "🙂 (U+1F642 SLIGHTLY SMILING FACE)" in warnings_for(tmp_path, text)[0]


def test_warns_misspelt_field(tmp_path: Path):
    text = GOOD.replace("{first_name|there}", "{frist_name|there}")
    assert warnings_for(tmp_path, text) == [
        "warning: w.yaml:6: steps[0].text: {frist_name} is no standard field, so only a custom field of that name fills it: did you mean {first_name}?"
    ]


def test_warns_unreachable_step(tmp_path: Path):
    text = GOOD + "    end: completed\n  - id: orphan\n    after: 1d\n    text: Nobody gets this\n"
    assert warnings_for(tmp_path, text) == [
        "warning: w.yaml:8: steps[1]: 'orphan' is never sent: no step goes on to it and no reply word has next: orphan; remove it or point a next at it"
    ]


def test_warns_at_outside_window(tmp_path: Path):
    text = GOOD + '  - id: early\n    after: 1d\n    at: "07:00"\n    text: Morning\n'
    assert warnings_for(tmp_path, text) == [
        "warning: w.yaml:7: steps[1].at: 07:00 is outside the send window every day 08:00-21:00, so the step waits for its next opening"
    ]


def test_warns_window_closed_in_florida(tmp_path: Path):
    text = GOOD + 'send_window: {start: "20:00", end: "21:00"}\n'
    assert warnings_for(tmp_path, text) == [
        "warning: w.yaml:7: send_window: 20:00-21:00 never opens for numbers in Florida, where texts may go out only 08:00-20:00;"
        " steps to them wait for those hours instead",
        "warning: w.yaml:7: send_window: 20:00-21:00 never opens for numbers in Oklahoma, where texts may go out only 08:00-20:00;"
        " steps to them wait for those hours instead",
    ]


def test_shipped_sequences_pass():
    """The example files in sequences/ and the shipped routing.yaml pass `smsdrip check`, run as a user runs it."""
    env = {key: value for key, value in os.environ.items() if key != "SMSDRIP_SEQUENCES"}
    result = subprocess.run([sys.executable, "-m", "smsdrip.cli", "check"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(": ok: sequence ") == len(list((REPO / "sequences").glob("*.yaml")))
    assert result.stdout.splitlines()[-1] == "routing.yaml: ok: routing file"
    assert "warning:" not in result.stdout


def test_documented_example_passes(tmp_path: Path):
    """The complete example in docs/sequences.md loads as shown."""
    docs = (REPO / "docs" / "sequences.md").read_text()
    example = docs.split("## A complete example", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "example.yaml"
    path.write_text(example)
    code, lines = run(str(path))
    assert code == 0, lines
    assert lines == [f"{path}: ok: sequence spring-open-house, 4 steps, keywords OPENHOUSE, OPEN HOUSE on +15550100000, send window mon-sat 09:00-19:00"]


def test_routing_file_checked_against_sequences(tmp_path: Path):
    (tmp_path / "demo.yaml").write_text(GOOD)
    routing = tmp_path / "routing.yaml"
    routing.write_text("reps:\n  - {name: Ana, phone: '+15550100001'}\nrules:\n  - {name: web, sequence: webinar}\n")
    code, lines = run(str(tmp_path / "demo.yaml"), str(routing))
    assert code == 1
    assert lines == [
        f"{routing}:4: rules[0].sequence: 'webinar' is not a sequence: use one of demo",
        "1 problem in 1 file: fix them and run smsdrip check again",
    ]


def test_routing_file_found_in_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    folder = tmp_path / "sequences"
    folder.mkdir()
    (folder / "demo.yaml").write_text(GOOD)
    (tmp_path / "routing.yaml").write_text("rules:\n  - {name: web, sequence: demo}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SMSDRIP_SEQUENCES", raising=False)
    monkeypatch.delenv("SMSDRIP_ROUTING", raising=False)
    code, lines = run()
    assert code == 0
    assert lines[-1] == "routing.yaml: ok: routing file"
