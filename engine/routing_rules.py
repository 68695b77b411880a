"""Routing definitions: reps, pools, ordered rules and scoring rules, and how a condition matches a lead.

These are the in-memory form of routing.yaml (see engine.routing for the loader). Everything here is pure.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

ROUND_ROBIN = "round_robin"
LEAST_LOADED = "least_loaded"
STRATEGIES = (ROUND_ROBIN, LEAST_LOADED)
SCORE_EVENTS = ("captured", "replied", "keyword")  # what an `on:` scoring rule can count
NUMERIC_OPERATORS = (">=", "<=", ">", "<")
COMPARISON_PATTERN = re.compile(r"^\s*(>=|<=|!=|>|<|=)\s*(.*?)\s*$")


@dataclass(frozen=True)
class Condition:
    """One `field: value` test from a `match:` or `when:` mapping.

    `operator` is one of ==, !=, in, >=, <=, > or <. Text compares case-insensitively; a fact that
    holds several values (a lead's tags or sequences) matches when any of them does.
    """

    field: str
    operator: str
    value: str | float | tuple[str, ...]

    def matches(self, fact: Any) -> bool:
        values = list(fact) if isinstance(fact, (set, frozenset, list, tuple)) else [fact]
        if self.operator == "!=":
            return all(_text(value) != self.value for value in values)
        return any(self._matches_one(value) for value in values)

    def _matches_one(self, value: Any) -> bool:
        if value is None or value == "":
            return False
        if self.operator == "==":
            return _text(value) == self.value
        if self.operator == "in":
            return _text(value) in self.value  # type: ignore[operator]
        number = _number(value)
        if number is None:
            return False
        limit = float(self.value)  # type: ignore[arg-type]
        return {">=": number >= limit, "<=": number <= limit, ">": number > limit, "<": number < limit}[self.operator]

    def __str__(self) -> str:
        if self.operator == "in":
            return f"{self.field} in [{', '.join(self.value)}]"  # type: ignore[arg-type]
        value = f"{self.value:g}" if isinstance(self.value, float) else self.value
        return f"{self.field} {self.operator} {value}"


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip().casefold()


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(str(value).replace(",", "").strip())
    except ValueError:
        return None


def parse_condition(field_name: str, raw: Any) -> Condition:
    """Build a Condition from a YAML value: a scalar, a list (any of) or a comparison such as ">=50".

    Raises ValueError saying what is wrong with the value.
    """
    if isinstance(raw, list):
        if not raw or any(isinstance(item, (list, dict)) or item is None for item in raw):
            raise ValueError("must be a value, a non-empty list of values, or a comparison such as \">=50\"")
        return Condition(field_name, "in", tuple(_text(item) for item in raw))
    if raw is None or isinstance(raw, dict):
        raise ValueError("must be a value, a non-empty list of values, or a comparison such as \">=50\"")
    if isinstance(raw, str):
        comparison = COMPARISON_PATTERN.match(raw)
        if comparison and raw.strip()[:1] in "<>!=":
            operator, operand = comparison.groups()
            if operator in NUMERIC_OPERATORS:
                if _number(operand) is None:
                    raise ValueError(f"{raw!r} compares with {operand!r}, which is not a number: write it as \"{operator}50\"")
                return Condition(field_name, operator, float(_number(operand)))  # type: ignore[arg-type]
            if not operand:
                raise ValueError(f"{raw!r} has nothing to compare with: write it as \"{operator}value\"")
            return Condition(field_name, "!=" if operator == "!=" else "==", _text(operand))
    return Condition(field_name, "==", _text(raw))


def conditions_match(conditions: Iterable[Condition], facts: Mapping[str, Any]) -> bool:
    """Return whether every condition holds for the lead described by `facts` (see engine.routing.lead_facts)."""
    return all(condition.matches(facts.get(condition.field)) for condition in conditions)


@dataclass(frozen=True)
class Rep:
    name: str
    phone: str | None = None  # E.164; notifications are texted here
    email: str | None = None  # passed on in webhook notifications; smsdrip sends no email itself
    webhook: str | None = None  # this rep's notification URL, in place of notify.webhook
    active: bool = True
    capacity: int | None = None  # most open leads (not converted or lost) at once; None: no limit
    line: int = 0


@dataclass(frozen=True)
class Pool:
    name: str
    strategy: str  # round_robin or least_loaded
    reps: tuple[str, ...]
    line: int = 0


@dataclass(frozen=True)
class RoutingRule:
    """First matching rule wins: it can pick the sequence for a captured lead, and the owner on qualification."""

    name: str
    conditions: tuple[Condition, ...]  # empty: matches every lead
    sequence: str | None = None
    rep: str | None = None
    pool: str | None = None
    line: int = 0

    @property
    def assigns(self) -> bool:
        return self.rep is not None or self.pool is not None


@dataclass(frozen=True)
class ScoreRule:
    """Points a lead gets once, when the event happens (`on`) and the conditions (`when`) hold."""

    name: str
    points: int  # negative subtracts
    event: str | None = None  # one of SCORE_EVENTS; None: a field rule, re-checked when the lead's fields change
    keyword: str | None = None  # for event "keyword": only this keyword (normalised); None: any
    conditions: tuple[Condition, ...] = ()
    line: int = 0


@dataclass(frozen=True)
class Routing:
    reps: dict[str, Rep] = field(default_factory=dict)
    pools: dict[str, Pool] = field(default_factory=dict)
    rules: tuple[RoutingRule, ...] = ()
    score_rules: tuple[ScoreRule, ...] = ()
    assign_at_score: int | None = None  # assign an unowned lead once its score reaches this
    notify_text: bool = True  # text the rep's phone on assignment
    notify_webhook: str | None = None  # POST every assignment here, unless the rep has its own webhook
    source: str = ""  # file it was loaded from

    def rule_for_sequence(self, facts: Mapping[str, Any]) -> RoutingRule | None:
        """Return the first rule that names a sequence and matches the lead."""
        for rule in self.rules:
            if rule.sequence is not None and conditions_match(rule.conditions, facts):
                return rule
        return None

    def rules_for_assignment(self, facts: Mapping[str, Any]) -> list[RoutingRule]:
        """Return the rules that assign and match the lead, in file order."""
        return [rule for rule in self.rules if rule.assigns and conditions_match(rule.conditions, facts)]


EMPTY_ROUTING = Routing()
