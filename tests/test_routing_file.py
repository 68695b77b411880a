"""routing.yaml loading: valid files, every problem with its line, and the shipped example."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.library import load_library
from engine.routing import RoutingFileError, check_routing_file, load_routing_text
from engine.routing_rules import Condition, parse_condition
from tests.conftest import REPO

VALID = """
reps:
  - name: alice
    phone: "(555) 010-0101"
    capacity: 10
  - {name: bob, email: bob@example.com, active: false, webhook: "http://127.0.0.1:18500/hook"}
pools:
  sales: {strategy: least_loaded, reps: [alice, bob]}
rules:
  - {name: big, match: {company_size: ">=500", industry: [saas, fintech]}, rep: alice}
  - {name: rest, sequence: demo, pool: sales}
scoring:
  assign_at: 40
  rules:
    - {name: replied, on: replied, points: 10}
    - {name: demo, on: keyword, keyword: demo, points: 5}
    - {name: student, when: {industry: education}, points: -10}
notify: {text: false, webhook: "https://crm.example.com/hook"}
"""


def _problems(text: str) -> list[str]:
    with pytest.raises(RoutingFileError) as raised:
        load_routing_text(text, "routing.yaml")
    return [str(problem) for problem in raised.value.problems]


def test_routing_valid_file_loads():
    routing = load_routing_text(VALID, "routing.yaml")
    assert routing.reps["alice"].phone == "+15550100101"
    assert routing.reps["alice"].capacity == 10
    assert routing.reps["bob"].active is False
    assert routing.pools["sales"].reps == ("alice", "bob")
    assert [rule.name for rule in routing.rules] == ["big", "rest"]
    assert routing.rules[0].conditions == (Condition("company_size", ">=", 500.0), Condition("industry", "in", ("saas", "fintech")))
    assert routing.score_rules[1].keyword == "DEMO"
    assert routing.assign_at_score == 40
    assert (routing.notify_text, routing.notify_webhook) == (False, "https://crm.example.com/hook")


def test_routing_empty_file_is_empty():
    routing = load_routing_text("", "routing.yaml")
    assert (routing.reps, routing.rules, routing.score_rules) == ({}, (), ())


def test_routing_problems_name_lines():
    text = """reps:
  - name: alice
    phone: "12"
  - {name: alice, email: a@example.com}
  - {name: carol}
pools:
  sales: {strategy: random, reps: [alice, dave]}
rules:
  - {name: r1, match: {status: hot}, rep: zed}
  - {name: r2, pool: sales, rep: alice}
  - {name: r3}
scoring:
  rules:
    - {name: s1, points: 0, on: clicked}
    - {name: s2, points: 5}
colour: blue
"""
    assert _problems(text) == [
        "routing.yaml:16: colour: unknown key: use one of notify, pools, reps, rules, scoring",
        "routing.yaml:3: reps[0].phone: '12' is not a phone number: use E.164 such as +12125550123",
        "routing.yaml:4: reps[1].name: 'alice' is used by an earlier rep: give each rep its own name",
        "routing.yaml:5: reps[2]: rep 'carol' has neither phone nor email: give one so the rep can be reached",
        "routing.yaml:7: pools.sales.strategy: 'random' is invalid: use round_robin or least_loaded",
        "routing.yaml:7: pools.sales.reps: 'dave' is not a rep: add it under reps or fix the name",
        "routing.yaml:9: rules[0].match.status: hot is not a lead status: use one of new, contacted, engaged, qualified, nurturing, converted, lost",
        "routing.yaml:9: rules[0].rep: 'zed' is not a rep: add it under reps or fix the name",
        "routing.yaml:10: rules[1].pool: 'sales' is not a pool: add it under pools or fix the name",
        "routing.yaml:10: rules[1]: has both rep and pool: keep one",
        "routing.yaml:11: rules[2]: does nothing: give it a sequence, a rep or a pool",
        "routing.yaml:14: scoring.rules[0].points: is 0: give a positive or negative number of points",
        "routing.yaml:14: scoring.rules[0].on: 'clicked' is invalid: use one of captured, replied, keyword",
        "routing.yaml:15: scoring.rules[1]: has neither `on` nor `when`: say which event (captured, replied, keyword) or which field values score",
    ]


def test_routing_invalid_yaml_line():
    assert _problems("reps:\n  - name: [alice\n") == [
        "routing.yaml:3: yaml: invalid YAML (expected ',' or ']', but got '<stream end>'): check indentation and quoting"
    ]


def test_routing_bad_comparison_value():
    problems = _problems("rules:\n  - {match: {score: \">=lots\"}, sequence: demo}\n")
    assert problems == ["routing.yaml:2: rules[0].match.score: '>=lots' compares with 'lots', which is not a number: write it as \">=50\""]


def test_check_routing_unknown_sequence(tmp_path: Path):
    path = tmp_path / "routing.yaml"
    path.write_text("rules:\n  - {name: web, sequence: webinar}\n")
    problems = check_routing_file(path, ["demo"])
    assert [str(problem) for problem in problems] == [f"{path}:2: rules[0].sequence: 'webinar' is not a sequence: use one of demo"]


def test_check_routing_missing_file(tmp_path: Path):
    problems = check_routing_file(tmp_path / "nope.yaml")
    assert len(problems) == 1
    assert problems[0].field == "file"


def test_shipped_routing_example_valid():
    sequences = load_library(REPO / "sequences").sequences
    assert check_routing_file(REPO / "routing.yaml", sequences) == []


@pytest.mark.parametrize(("raw", "fact", "expected"), [
    (">=50", "120", True),
    (">=50", 49, False),
    (">=50", "lots", False),
    ("<10", 9.5, True),
    ("SaaS", "saas", True),
    (["retail", "saas"], "SaaS", True),
    ("!=education", "retail", True),
    ("!=education", "Education", False),
    ("webinar", {"vip", "webinar"}, True),
    (True, "true", True),
    ("retail", None, False),
], ids=["ge-text-number", "ge-below", "ge-not-number", "lt-float", "equal-case", "any-of", "not-equal",
        "not-equal-case", "set-member", "boolean", "missing"])
def test_condition_matches(raw, fact, expected):
    assert parse_condition("field", raw).matches(fact) is expected
