"""Sequence file loading: a full file loads as written; every broken file is rejected with its line and a fix."""

from __future__ import annotations

from datetime import time, timedelta
from pathlib import Path

import pytest

from engine.library import load_library
from engine.sequence_files import SequenceFileError, load_sequence_file, load_sequence_text
from engine.sequences import ReplyAction

BASE = "name: demo\nkeywords: [DEMO]\nsteps:\n  - id: welcome\n    after: 0\n    text: Hi\n"
SECOND = "  - id: call\n    after: 1d\n    text: Call?\n"

FULL = """\
name: spring-demo
description: Everything the format offers.
keywords: [DEMO, free trial]
match: exact
numbers: ["+15550100000"]
send_window:
  days: [mon, tue, wed, thu, fri]
  start: "09:00"
  end: "17:30"
on_reply: continue
re_enroll: restart
lead: {status: contacted}
double_opt_in: true
steps:
  - id: welcome
    after: 0
    text: "Hi {first_name|there}! Reply YES for a call, NO to stop. Use code {{SPRING}}."
    replies:
      yes: {next: call, status: engaged, reply: "Great, {first_name|friend}!"}
      No thanks: {end: lost, status: lost}
      later: {assign: true}
  - id: tips
    after: 1d
    at: "10:15"
    text: Tip for {company|your team}.
    end: completed
  - id: call
    after: 30m
    text: Calling you soon.
    next: tips
"""


def load_problems(text: str) -> list[str]:
    with pytest.raises(SequenceFileError) as caught:
        load_sequence_text(text, "s.yaml")
    return [str(problem) for problem in caught.value.problems]


def test_full_file_top_level():
    sequence = load_sequence_text(FULL, "s.yaml")
    assert sequence.name == "spring-demo"
    assert sequence.keywords == ("DEMO", "FREE TRIAL")
    assert sequence.match == "exact"
    assert sequence.numbers == frozenset({"+15550100000"})
    assert sequence.on_reply == "continue"
    assert sequence.re_enroll == "restart"
    assert sequence.lead_status == "contacted"
    assert sequence.double_opt_in is True
    assert sequence.allow_outside_quiet_hours is False


def test_full_file_send_window():
    window = load_sequence_text(FULL, "s.yaml").send_window
    assert window.days == frozenset({0, 1, 2, 3, 4})
    assert (window.start, window.end) == (time(9, 0), time(17, 30))
    assert window.describe() == "mon-fri 09:00-17:30"


def test_full_file_steps():
    sequence = load_sequence_text(FULL, "s.yaml")
    assert [step.id for step in sequence.steps] == ["welcome", "tips", "call"]
    tips = sequence.step("tips")
    assert tips is not None
    assert (tips.after, tips.calendar_days, tips.at, tips.end, tips.line) == (timedelta(days=1), 1, time(10, 15), "completed", 22)
    call = sequence.step("call")
    assert call is not None
    assert (call.after, call.calendar_days, call.next) == (timedelta(minutes=30), None, "tips")


def test_full_file_reply_words():
    welcome = load_sequence_text(FULL, "s.yaml").first_step
    assert welcome.replies == {
        "YES": ReplyAction(next="call", status="engaged", reply="Great, {first_name|friend}!", line=19),
        "NO THANKS": ReplyAction(end="lost", status="lost", line=20),
        "LATER": ReplyAction(assign=True, line=21),
    }


def test_full_file_flow_after_each_step():
    sequence = load_sequence_text(FULL, "s.yaml")
    assert [sequence.after_send(step.id) for step in sequence.steps] == ["tips", "completed", "tips"]


def test_defaults_of_minimal_file():
    sequence = load_sequence_text(BASE, "s.yaml")
    assert (sequence.match, sequence.on_reply, sequence.re_enroll) == ("first_word", "stop", "ignore")
    assert sequence.send_window.describe() == "every day 08:00-21:00"


def test_unquoted_times_and_numbers_read_as_written():
    # YAML 1.1 would read 8:30 as 510 and +15550100000 as an integer; the loader reads the text.
    text = BASE + "numbers: [+15550100000]\nsend_window: {start: 8:30, end: 20:00}\n"
    sequence = load_sequence_text(text, "s.yaml")
    assert sequence.numbers == frozenset({"+15550100000"})
    assert (sequence.send_window.start, sequence.send_window.end) == (time(8, 30), time(20, 0))


def test_window_spanning_midnight_with_flag():
    text = BASE + 'allow_outside_quiet_hours: true\nsend_window: {start: "22:00", end: "02:00"}\n'
    window = load_sequence_text(text, "s.yaml").send_window
    assert window.spans_midnight


def test_yes_allowed_as_reply_word():
    sequence = load_sequence_text(BASE + "    replies:\n      YES: {end: converted}\n", "s.yaml")
    assert list(sequence.first_step.replies) == ["YES"]


BROKEN = {
    "bad-yaml": (
        "name: demo\nkeywords: [DEMO\nsteps: []\n",
        ["s.yaml:3: yaml: invalid YAML (while parsing a flow sequence, expected ',' or ']', but got ':'): check indentation and quoting"],
    ),
    "tab-indent": (
        "name: demo\n\tkeywords: [DEMO]\n",
        ["s.yaml:2: yaml: invalid YAML (while scanning for the next token, found character '\\t' that cannot start any token):"
         " check indentation and quoting"],
    ),
    "two-documents": (
        BASE + "---\nname: x\n",
        ["s.yaml:7: yaml: invalid YAML (expected a single document in the stream, but found another document): check indentation and quoting"],
    ),
    "empty-file": ("", ["s.yaml:1: file: is empty: add name, keywords and steps"]),
    "root-list": ("- a\n- b\n", ["s.yaml:1: file: must be a mapping of keys to values, such as name: demo"]),
    "missing-keys": (
        "description: x\n",
        [
            "s.yaml:1: name: is missing: every sequence needs name, keywords and steps",
            "s.yaml:1: keywords: is missing: every sequence needs name, keywords and steps",
            "s.yaml:1: steps: is missing: every sequence needs name, keywords and steps",
        ],
    ),
    "keywords-not-list": (
        "name: demo\nkeywords: DEMO\nsteps:\n  - id: a\n    after: 0\n    text: Hi\n",
        ["s.yaml:2: keywords: must be a non-empty list, such as [DEMO]"],
    ),
    "steps-not-list": (
        "name: demo\nkeywords: [DEMO]\nsteps:\n  id: a\n",
        ['s.yaml:4: steps: must be a non-empty list, such as [{id: welcome, after: 0, text: "Thanks for texting!"}]'],
    ),
    "step-not-mapping": (
        "name: demo\nkeywords: [DEMO]\nsteps:\n  - just text\n",
        ['s.yaml:4: steps[0]: must be a mapping of keys to values, such as {id: welcome, after: 0, text: "Thanks for texting!"}'],
    ),
    "text-not-text": (
        "name: demo\nkeywords: [DEMO]\nsteps:\n  - id: a\n    after: 0\n    text: [Hi]\n",
        ['s.yaml:6: steps[0].text: must be a non-empty text, such as "Hi {first_name|there}!"'],
    ),
    "text-empty": (BASE.replace("text: Hi", "text:"), ['s.yaml:6: steps[0].text: must be a non-empty text, such as "Hi {first_name|there}!"']),
    "flag-not-bool": (BASE + "allow_outside_quiet_hours: maybe\n", ["s.yaml:7: allow_outside_quiet_hours: 'maybe' is not true or false: write true or false"]),
    "unknown-key": (
        BASE + "keyword: [X]\n",
        ["s.yaml:7: keyword: unknown key (did you mean keywords?): use one of allow_outside_quiet_hours, description, double_opt_in,"
         " keywords, lead, match, name, numbers, on_reply, re_enroll, send_window, steps"],
    ),
    "unknown-step-key": (
        "name: demo\nkeywords: [DEMO]\nsteps:\n  - id: a\n    after: 0\n    txt: Hi\n",
        [
            "s.yaml:4: steps[0].text: is missing: every step needs id, after and text",
            "s.yaml:6: steps[0].txt: unknown key (did you mean text?): use one of after, at, end, id, next, replies, text",
        ],
    ),
    "unknown-window-key": (BASE + "send_window: {begin: \"09:00\"}\n", ["s.yaml:7: send_window.begin: unknown key: use one of days, end, start, time_zone"]),
    "unknown-action-key": (
        BASE + "    replies:\n      YES: {goto: welcome}\n",
        [
            "s.yaml:8: steps[0].replies.YES.goto: unknown key: use one of assign, end, next, reply, status",
        ],
    ),
    "key-twice": (
        "name: demo\nname: other\nkeywords: [DEMO]\nsteps:\n  - id: a\n    after: 0\n    text: Hi\n",
        ["s.yaml:2: name: is given twice (first on line 1): keep one"],
    ),
    "bad-name": (BASE.replace("name: demo", "name: Demo Seq"), ["s.yaml:1: name: 'Demo Seq' is invalid: use lower-case letters, digits and '-', such as spring-demo"]),
    "duplicate-step-id": (
        BASE + "  - id: welcome\n    after: 1d\n    text: Again\n",
        ["s.yaml:7: steps[1].id: 'welcome' is already the id of the step on line 4: give each step its own id"],
    ),
    "bad-step-id": (BASE + "  - id: day 2\n    after: 1d\n    text: Hi\n", ["s.yaml:7: steps[1].id: 'day 2' is invalid: use up to 100 letters, digits, '_' and '-', such as day-2"]),
    "end-reason-as-step-id": (
        BASE + "  - id: completed\n    after: 1d\n    text: Hi\n",
        ["s.yaml:7: steps[1].id: 'completed' is the name of an end reason: pick another id, such as completed-step"],
    ),
    "bad-delay": (BASE.replace("after: 0", "after: 1 week"), ["s.yaml:5: steps[0].after: '1 week' is not a delay: use 0 or a whole number with s, m, h or d, such as 30m or 1d"]),
    "delay-without-unit": (BASE.replace("after: 0", "after: 90"), ["s.yaml:5: steps[0].after: '90' is not a delay: use 0 or a whole number with s, m, h or d, such as 30m or 1d"]),
    "at-without-days": (
        BASE + '  - id: b\n    after: 2h\n    at: "09:00"\n    text: Hi\n',
        ["s.yaml:9: steps[1].at: needs after in days, because it sets the clock time on that day: write after: 1d, or 0d for the same day"],
    ),
    "at-after-zero": (
        BASE + '  - id: b\n    after: 0\n    at: "09:00"\n    text: Hi\n',
        ["s.yaml:9: steps[1].at: needs after in days, because it sets the clock time on that day: write after: 1d, or 0d for the same day"],
    ),
    "bad-at": (BASE + '  - id: b\n    after: 1d\n    at: "9:75"\n    text: Hi\n', ["s.yaml:9: steps[1].at: '9:75' is not a time of day: write 24-hour HH:MM in quotes, such as \"09:30\""]),
    "bad-window-times": (
        BASE + 'send_window: {start: 9am, end: "25:00"}\n',
        [
            "s.yaml:7: send_window.start: '9am' is not a time of day: write 24-hour HH:MM in quotes, such as \"09:30\"",
            "s.yaml:7: send_window.end: '25:00' is not a time of day: write 24-hour HH:MM in quotes, such as \"09:30\"",
        ],
    ),
    "bad-day": (
        BASE + "send_window: {days: [mon, funday, Tuesday, mon]}\n",
        [
            "s.yaml:7: send_window.days: 'funday' is not a day: use mon, tue, wed, thu, fri, sat, sun",
            "s.yaml:7: send_window.days: 'mon' is listed twice: keep one",
        ],
    ),
    "bad-time-zone": (BASE + "send_window: {time_zone: America/New_Yrok}\n", ["s.yaml:7: send_window.time_zone: 'America/New_Yrok' is not a known IANA time zone: did you mean America/New_York?"]),
    "window-past-quiet-hours": (
        BASE + 'send_window: {start: "07:00", end: "21:00"}\n',
        ["s.yaml:7: send_window: 07:00-21:00 reaches outside the quiet hours 08:00-21:00: narrow it,"
         " or add allow_outside_quiet_hours: true if these texts may go out at those hours"],
    ),
    "window-over-midnight": (
        BASE + 'send_window: {start: "20:00", end: "01:00"}\n',
        ["s.yaml:7: send_window: 20:00-01:00 reaches outside the quiet hours 08:00-21:00: narrow it,"
         " or add allow_outside_quiet_hours: true if these texts may go out at those hours"],
    ),
    "reserved-keywords": (
        "name: demo\nkeywords: [DEMO, stop, Stop now, yes, Info]\nsteps:\n  - id: a\n    after: 0\n    text: Hi\n",
        [
            "s.yaml:2: keywords: 'stop' is a reserved word: carriers keep it for opt-out, opt-in and help, so pick another word",
            "s.yaml:2: keywords: 'Stop now' starts with the reserved word STOP: carriers keep it for opt-out, opt-in and help, so pick another word",
            "s.yaml:2: keywords: 'yes' is a reserved word: carriers keep it for opt-out, opt-in and help, so pick another word",
            "s.yaml:2: keywords: 'Info' is a reserved word: carriers keep it for opt-out, opt-in and help, so pick another word",
        ],
    ),
    "keyword-twice": ("name: demo\nkeywords: [DEMO, demo!]\nsteps:\n  - id: a\n    after: 0\n    text: Hi\n", ["s.yaml:2: keywords: 'demo!' is listed twice: keep one"]),
    "keyword-no-letters": ("name: demo\nkeywords: [DEMO, '!!']\nsteps:\n  - id: a\n    after: 0\n    text: Hi\n", ["s.yaml:2: keywords: '!!' has no letters or digits: use a word such as DEMO"]),
    "reserved-reply-words": (
        BASE + "    replies:\n      STOP: {end: lost}\n      Yes: {end: converted}\n      help me: {end: lost}\n      start: {end: lost}\n",
        [
            "s.yaml:8: steps[0].replies.STOP: 'STOP' is a reserved word: carriers keep it for opt-out, opt-in and help, so pick another word",
            "s.yaml:10: steps[0].replies.help me: 'help me' starts with the reserved word HELP: carriers keep it for opt-out, opt-in and help, so pick another word",
            "s.yaml:11: steps[0].replies.start: 'start' is a reserved word: carriers keep it for opt-out, opt-in and help, so pick another word",
        ],
    ),
    "reply-word-twice": (
        BASE + "    replies:\n      Yes: {end: converted}\n      YES!: {end: lost}\n",
        ["s.yaml:9: steps[0].replies.YES!: 'YES!' is the same reply word as the one on line 8: keep one"],
    ),
    "reply-next-missing": (
        BASE + "    replies:\n      YES: {next: cal}\n" + SECOND,
        ["s.yaml:8: steps[0].replies.YES.next: no step has id 'cal': use one of welcome, call"],
    ),
    "step-next-missing": (BASE + "    next: nowhere\n", ["s.yaml:7: steps[0].next: no step has id 'nowhere': use one of welcome"]),
    "next-and-end": (
        BASE + "    replies:\n      YES: {next: welcome, end: lost}\n",
        ["s.yaml:8: steps[0].replies.YES.end: cannot be combined with next: keep next to go on, or end to stop"],
    ),
    "reply-without-action": (BASE + "    replies:\n      YES: {}\n", ["s.yaml:8: steps[0].replies.YES: has no action: use one or more of assign, end, next, reply, status"]),
    "bad-reply-values": (
        BASE + "    replies:\n      YES: {status: hot, end: won, assign: maybe}\n",
        [
            "s.yaml:8: steps[0].replies.YES.end: 'won' is invalid: use one of completed, converted, lost",
            "s.yaml:8: steps[0].replies.YES.status: 'hot' is invalid: use one of new, contacted, engaged, qualified, nurturing, converted, lost",
            "s.yaml:8: steps[0].replies.YES.assign: 'maybe' is not true or false: write true or false",
        ],
    ),
    "steps-loop": (
        BASE + SECOND + "    next: welcome\n",
        ["s.yaml:7: steps[1].next: welcome -> call -> welcome repeats forever: give one of these steps end: completed, or point next at a later step"],
    ),
    "template-bad-brace": (BASE.replace("text: Hi", "text: Hi {first_name|x"), ["s.yaml:6: steps[0].text: expected '}' before end of string: write literal braces as {{ and }}"]),
    "template-no-default": (
        BASE.replace("text: Hi", "text: Hi {first_name}"),
        ["s.yaml:6: steps[0].text: {first_name} has no default and not every contact has first_name: give it one, such as {first_name|there}"],
    ),
    "reply-template-no-default": (
        BASE + '    replies:\n      YES: {reply: "Hi {company}"}\n',
        ["s.yaml:8: steps[0].replies.YES.reply: {company} has no default and not every contact has company: give it one, such as {company|there}"],
    ),
    "bad-numbers": (
        BASE + 'numbers: ["5550100000", "+1555", "+15550100000", "+15550100000"]\n',
        [
            "s.yaml:7: numbers: '5550100000' is not in E.164 form: write '+15550100000'",
            "s.yaml:7: numbers: '+1555' is not a possible phone number: write one of our numbers in E.164, such as +15550100000",
            "s.yaml:7: numbers: '+15550100000' is listed twice: keep one",
        ],
    ),
    "bad-choices": (
        BASE + "on_reply: pause\nre_enroll: again\nmatch: fuzzy\n",
        [
            "s.yaml:7: on_reply: 'pause' is invalid: use stop or continue",
            "s.yaml:8: re_enroll: 'again' is invalid: use ignore or restart",
            "s.yaml:9: match: 'fuzzy' is invalid: use first_word or exact",
        ],
    ),
    "bad-lead-status": (BASE + "lead: {status: hot}\n", ["s.yaml:7: lead.status: 'hot' is invalid: use one of new, contacted, engaged, qualified, nurturing, converted, lost"]),
    "lead-without-status": (BASE + "lead: {stage: new}\n", [
        "s.yaml:7: lead.stage: unknown key: use one of status",
        "s.yaml:7: lead.status: is missing: use one of new, contacted, engaged, qualified, nurturing, converted, lost",
    ]),
    "double-opt-in-not-bool": (BASE + "double_opt_in: [yes]\n", ["s.yaml:7: double_opt_in: 'a list or mapping' is not true or false: write true or false"]),
}


@pytest.mark.parametrize(("text", "expected"), list(BROKEN.values()), ids=list(BROKEN))
def test_broken_file_rejected(text: str, expected: list[str]):
    assert load_problems(text) == expected


def test_every_problem_reported_at_once():
    text = "name: Bad\nkeywords: [stop]\nsteps:\n  - id: a\n    after: soon\n    text: Hi {x\n"
    assert load_problems(text) == [
        "s.yaml:1: name: 'Bad' is invalid: use lower-case letters, digits and '-', such as spring-demo",
        "s.yaml:2: keywords: 'stop' is a reserved word: carriers keep it for opt-out, opt-in and help, so pick another word",
        "s.yaml:5: steps[0].after: 'soon' is not a delay: use 0 or a whole number with s, m, h or d, such as 30m or 1d",
        "s.yaml:6: steps[0].text: expected '}' before end of string: write literal braces as {{ and }}",
    ]


def test_non_utf8_file_rejected(tmp_path: Path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(BASE.replace("Hi", "Ol\xe1").encode("latin-1"))
    with pytest.raises(SequenceFileError) as caught:
        load_sequence_file(path)
    problem = caught.value.problems[0]
    assert (problem.line, problem.field) == (1, "file")
    assert problem.message.endswith("save it as UTF-8 text")


def write(folder: Path, name: str, text: str) -> None:
    (folder / name).write_text(text)


def library_problems_in(folder: Path) -> list[str]:
    with pytest.raises(SequenceFileError) as caught:
        load_library(folder)
    return [str(problem) for problem in caught.value.problems]


def test_keyword_clash_across_files(tmp_path: Path):
    write(tmp_path, "a.yaml", BASE)
    write(tmp_path, "b.yaml", BASE.replace("name: demo", "name: other").replace("[DEMO]", "[PROMO, demo]"))
    assert library_problems_in(tmp_path) == [
        f"{tmp_path / 'b.yaml'}:2: keywords: 'DEMO' is already a keyword of sequence 'demo' ({tmp_path / 'a.yaml'}:2)"
        " on every number: pick another word, or give the two sequences different numbers"
    ]


def test_keyword_clash_on_shared_number(tmp_path: Path):
    write(tmp_path, "a.yaml", BASE + 'numbers: ["+15550100000", "+15550100001"]\n')
    write(tmp_path, "b.yaml", BASE.replace("name: demo", "name: other") + 'numbers: ["+15550100001"]\n')
    assert library_problems_in(tmp_path) == [
        f"{tmp_path / 'b.yaml'}:2: keywords: 'DEMO' is already a keyword of sequence 'demo' ({tmp_path / 'a.yaml'}:2)"
        " on +15550100001: pick another word, or give the two sequences different numbers"
    ]


def test_same_keyword_on_other_numbers_loads(tmp_path: Path):
    write(tmp_path, "a.yaml", BASE + 'numbers: ["+15550100000"]\n')
    write(tmp_path, "b.yaml", BASE.replace("name: demo", "name: other") + 'numbers: ["+15550100001"]\n')
    write(tmp_path, "c.yaml", BASE.replace("name: demo", "name: fallback"))
    library = load_library(tmp_path)
    assert library.keywords.match("demo", "+15550100000").sequence_name == "demo"  # type: ignore[union-attr]
    assert library.keywords.match("demo", "+15550100001").sequence_name == "other"  # type: ignore[union-attr]
    assert library.keywords.match("demo", "+15550100002").sequence_name == "fallback"  # type: ignore[union-attr]


def test_sequence_name_used_twice(tmp_path: Path):
    write(tmp_path, "a.yaml", BASE)
    write(tmp_path, "b.yaml", BASE.replace("[DEMO]", "[OTHER]"))
    assert library_problems_in(tmp_path) == [
        f"{tmp_path / 'b.yaml'}:1: name: 'demo' is already the name of {tmp_path / 'a.yaml'}: give each sequence its own name"
    ]


def test_reply_word_hidden_by_keyword(tmp_path: Path):
    write(tmp_path, "a.yaml", BASE + "    replies:\n      promo code: {end: converted}\n")
    write(tmp_path, "b.yaml", BASE.replace("name: demo", "name: promo").replace("[DEMO]", "[PROMO]"))
    assert library_problems_in(tmp_path) == [
        f"{tmp_path / 'a.yaml'}:8: steps[0].replies.PROMO CODE: 'PROMO CODE' is also a keyword of sequence 'promo',"
        " and keywords are matched first, so this reply word would never run: pick another reply word"
    ]


def test_library_lists_problems_of_all_files(tmp_path: Path):
    write(tmp_path, "a.yaml", BASE.replace("after: 0", "after: x"))
    write(tmp_path, "b.yaml", "name: [\n")
    problems = library_problems_in(tmp_path)
    assert [problem.split(": ")[0] for problem in problems] == [f"{tmp_path / 'a.yaml'}:5", f"{tmp_path / 'b.yaml'}:2"]
