"""Loading routing.yaml (reps, pools, rules, scoring, notifications), with every problem as `file:line: field: message`.

The file is optional: without one there are no reps, every lead stays unowned and scores stay 0.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.keywords import normalise
from engine.lead_status import STATUS_NAMES
from engine.models import Contact, Enrollment
from engine.phones import InvalidPhoneNumber, to_e164
from engine.routing_rules import (
    EMPTY_ROUTING,
    SCORE_EVENTS,
    STRATEGIES,
    Condition,
    Pool,
    Rep,
    Routing,
    RoutingRule,
    ScoreRule,
    parse_condition,
)
from engine.sequence_files import Problem

logger = logging.getLogger(__name__)

TOP_KEYS = {"reps", "pools", "rules", "scoring", "notify"}
REP_KEYS = {"name", "phone", "email", "webhook", "active", "capacity"}
POOL_KEYS = {"strategy", "reps"}
RULE_KEYS = {"name", "match", "sequence", "rep", "pool"}
SCORING_KEYS = {"assign_at", "rules"}
SCORE_RULE_KEYS = {"name", "points", "on", "keyword", "when"}
NOTIFY_KEYS = {"text", "webhook"}
# Lead facts a condition can name besides the contact's standard and custom fields.
SPECIAL_FACTS = {"source", "status", "score", "owner", "sequence", "tag"}


class RoutingFileError(ValueError):
    """routing.yaml is invalid; `problems` lists each problem."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(problem) for problem in problems))


class _Reader:
    """Turns composed YAML nodes into values, collecting problems with their line numbers."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: list[Problem] = []

    def problem(self, node: yaml.Node | None, field: str, message: str) -> None:
        line = node.start_mark.line + 1 if node is not None else 1
        self.problems.append(Problem(self.path, line, field, message))

    def mapping(self, node: yaml.Node, field: str, allowed: set[str] | None = None) -> dict[str, tuple[yaml.Node, yaml.Node]] | None:
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, field, "must be a mapping of keys to values")
            return None
        entries: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            name = f"{field}.{key}" if field else key
            if key in entries:
                self.problem(key_node, name, "is given twice: keep one")
            elif allowed is not None and key not in allowed:
                self.problem(key_node, name, f"unknown key: use one of {', '.join(sorted(allowed))}")
            entries[key] = (key_node, value_node)
        return entries

    def items(self, node: yaml.Node, field: str) -> list[yaml.Node]:
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, field, "must be a list")
            return []
        return list(node.value)

    def value(self, node: yaml.Node) -> Any:
        """Return the plain Python value of a node, with YAML's usual types (int, bool, str, list, dict)."""
        return yaml.safe_load(yaml.serialize(node))

    def text(self, node: yaml.Node, field: str) -> str | None:
        if not isinstance(node, yaml.ScalarNode) or str(node.value).strip() == "":
            self.problem(node, field, "must be a non-empty text")
            return None
        return str(node.value).strip()

    def boolean(self, node: yaml.Node, field: str) -> bool | None:
        value = self.value(node) if isinstance(node, yaml.ScalarNode) else None
        if not isinstance(value, bool):
            self.problem(node, field, "must be true or false")
            return None
        return value

    def integer(self, node: yaml.Node, field: str) -> int | None:
        value = self.value(node) if isinstance(node, yaml.ScalarNode) else None
        if not isinstance(value, int) or isinstance(value, bool):
            self.problem(node, field, "must be a whole number")
            return None
        return value

    def url(self, node: yaml.Node, field: str) -> str | None:
        url = self.text(node, field)
        if url is not None:
            parsed = urlparse(url)
            if parsed.scheme not in ("http", "https") or not parsed.netloc:
                self.problem(node, field, f"{url!r} is invalid: use an http:// or https:// URL")
                return None
        return url

    def conditions(self, node: yaml.Node, field: str) -> tuple[Condition, ...]:
        entries = self.mapping(node, field)
        if entries is None:
            return ()
        conditions = []
        for key, (_key_node, value_node) in entries.items():
            try:
                condition = parse_condition(key, self.value(value_node))
            except ValueError as error:
                self.problem(value_node, f"{field}.{key}", str(error))
                continue
            if key == "status":
                values = condition.value if isinstance(condition.value, tuple) else (condition.value,)
                unknown = [value for value in values if value not in STATUS_NAMES]
                if unknown:
                    self.problem(value_node, f"{field}.status", f"{', '.join(map(str, unknown))} is not a lead status: use one of {', '.join(STATUS_NAMES)}")
                    continue
            conditions.append(condition)
        return tuple(conditions)


def load_routing_text(text: str, path: str = "<string>") -> Routing:
    """Parse routing.yaml text, raising RoutingFileError with every problem found."""
    reader = _Reader(path)
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        detail = getattr(error, "problem", None) or str(error)
        raise RoutingFileError([Problem(path, line, "yaml", f"invalid YAML ({detail}): check indentation and quoting")]) from None
    if root is None:
        return Routing(source=path)
    entries = reader.mapping(root, "", TOP_KEYS)
    if entries is None:
        raise RoutingFileError(reader.problems)

    reps = _read_reps(reader, entries["reps"][1]) if "reps" in entries else {}
    pools = _read_pools(reader, entries["pools"][1], reps) if "pools" in entries else {}
    rules = _read_rules(reader, entries["rules"][1], reps, pools) if "rules" in entries else ()
    score_rules: tuple[ScoreRule, ...] = ()
    assign_at = None
    if "scoring" in entries:
        score_rules, assign_at = _read_scoring(reader, entries["scoring"][1])
    notify_text, notify_webhook = True, None
    if "notify" in entries:
        notify = reader.mapping(entries["notify"][1], "notify", NOTIFY_KEYS) or {}
        if "text" in notify:
            notify_text = bool(reader.boolean(notify["text"][1], "notify.text"))
        if "webhook" in notify and not _is_null(notify["webhook"][1]):
            notify_webhook = reader.url(notify["webhook"][1], "notify.webhook")

    if reader.problems:
        raise RoutingFileError(reader.problems)
    return Routing(reps=reps, pools=pools, rules=rules, score_rules=score_rules, assign_at_score=assign_at,
                   notify_text=notify_text, notify_webhook=notify_webhook, source=path)


def _read_reps(reader: _Reader, node: yaml.Node) -> dict[str, Rep]:
    reps: dict[str, Rep] = {}
    for index, item in enumerate(reader.items(node, "reps")):
        field = f"reps[{index}]"
        entries = reader.mapping(item, field, REP_KEYS)
        if entries is None:
            continue
        if "name" not in entries:
            reader.problem(item, f"{field}.name", "is missing: every rep needs a name")
            continue
        name = reader.text(entries["name"][1], f"{field}.name")
        if name is None:
            continue
        if name in reps:
            reader.problem(entries["name"][1], f"{field}.name", f"{name!r} is used by an earlier rep: give each rep its own name")
            continue
        phone = email = webhook = None
        if "phone" in entries:
            raw_phone = reader.text(entries["phone"][1], f"{field}.phone")
            if raw_phone is not None:
                try:
                    phone = to_e164(raw_phone)
                except InvalidPhoneNumber:
                    reader.problem(entries["phone"][1], f"{field}.phone", f"{raw_phone!r} is not a phone number: use E.164 such as +12125550123")
        if "email" in entries:
            email = reader.text(entries["email"][1], f"{field}.email")
            if email is not None and "@" not in email:
                reader.problem(entries["email"][1], f"{field}.email", f"{email!r} is not an email address")
        if "phone" not in entries and "email" not in entries:
            reader.problem(item, field, f"rep {name!r} has neither phone nor email: give one so the rep can be reached")
        if "webhook" in entries and not _is_null(entries["webhook"][1]):
            webhook = reader.url(entries["webhook"][1], f"{field}.webhook")
        active = True
        if "active" in entries:
            active = reader.boolean(entries["active"][1], f"{field}.active") is not False
        capacity = None
        if "capacity" in entries and not _is_null(entries["capacity"][1]):
            capacity = reader.integer(entries["capacity"][1], f"{field}.capacity")
            if capacity is not None and capacity < 1:
                reader.problem(entries["capacity"][1], f"{field}.capacity", f"{capacity} is invalid: use a number of leads of 1 or more, or leave it out for no limit")
        reps[name] = Rep(name=name, phone=phone, email=email, webhook=webhook, active=active, capacity=capacity,
                         line=item.start_mark.line + 1)
    return reps


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null")


def _read_pools(reader: _Reader, node: yaml.Node, reps: dict[str, Rep]) -> dict[str, Pool]:
    pools: dict[str, Pool] = {}
    entries = reader.mapping(node, "pools")
    for name, (key_node, value_node) in (entries or {}).items():
        field = f"pools.{name}"
        pool_entries = reader.mapping(value_node, field, POOL_KEYS)
        if pool_entries is None:
            continue
        strategy = None
        if "strategy" not in pool_entries:
            reader.problem(value_node, f"{field}.strategy", f"is missing: use {' or '.join(STRATEGIES)}")
        else:
            strategy = reader.text(pool_entries["strategy"][1], f"{field}.strategy")
            if strategy is not None and strategy not in STRATEGIES:
                reader.problem(pool_entries["strategy"][1], f"{field}.strategy", f"{strategy!r} is invalid: use {' or '.join(STRATEGIES)}")
                strategy = None
        members: list[str] = []
        if "reps" not in pool_entries:
            reader.problem(value_node, f"{field}.reps", "is missing: list the names of the reps in this pool")
        else:
            for item in reader.items(pool_entries["reps"][1], f"{field}.reps"):
                rep = reader.text(item, f"{field}.reps")
                if rep is None:
                    continue
                if rep not in reps:
                    reader.problem(item, f"{field}.reps", f"{rep!r} is not a rep: add it under reps or fix the name")
                elif rep in members:
                    reader.problem(item, f"{field}.reps", f"{rep!r} is listed twice: keep one")
                else:
                    members.append(rep)
            if not members and not any(p.field.startswith(f"{field}.reps") for p in reader.problems):
                reader.problem(pool_entries["reps"][1], f"{field}.reps", "is empty: list at least one rep")
        if strategy is not None and members:
            pools[name] = Pool(name=name, strategy=strategy, reps=tuple(members), line=key_node.start_mark.line + 1)
    return pools


def _read_rules(reader: _Reader, node: yaml.Node, reps: dict[str, Rep], pools: dict[str, Pool]) -> tuple[RoutingRule, ...]:
    rules: list[RoutingRule] = []
    names: set[str] = set()
    for index, item in enumerate(reader.items(node, "rules")):
        field = f"rules[{index}]"
        entries = reader.mapping(item, field, RULE_KEYS)
        if entries is None:
            continue
        name = reader.text(entries["name"][1], f"{field}.name") if "name" in entries else None
        name = name or field
        if name in names:
            reader.problem(entries["name"][1], f"{field}.name", f"{name!r} is used by an earlier rule: give each rule its own name")
        names.add(name)
        conditions = reader.conditions(entries["match"][1], f"{field}.match") if "match" in entries else ()
        sequence = reader.text(entries["sequence"][1], f"{field}.sequence") if "sequence" in entries else None
        rep = pool = None
        if "rep" in entries:
            rep = reader.text(entries["rep"][1], f"{field}.rep")
            if rep is not None and rep not in reps:
                reader.problem(entries["rep"][1], f"{field}.rep", f"{rep!r} is not a rep: add it under reps or fix the name")
        if "pool" in entries:
            pool = reader.text(entries["pool"][1], f"{field}.pool")
            if pool is not None and pool not in pools:
                reader.problem(entries["pool"][1], f"{field}.pool", f"{pool!r} is not a pool: add it under pools or fix the name")
        if "rep" in entries and "pool" in entries:
            reader.problem(item, field, "has both rep and pool: keep one")
        if not {"sequence", "rep", "pool"} & entries.keys():
            reader.problem(item, field, "does nothing: give it a sequence, a rep or a pool")
        rules.append(RoutingRule(name=name, conditions=conditions, sequence=sequence, rep=rep, pool=pool,
                                 line=item.start_mark.line + 1))
    return tuple(rules)


def _read_scoring(reader: _Reader, node: yaml.Node) -> tuple[tuple[ScoreRule, ...], int | None]:
    entries = reader.mapping(node, "scoring", SCORING_KEYS)
    if entries is None:
        return (), None
    assign_at = reader.integer(entries["assign_at"][1], "scoring.assign_at") if "assign_at" in entries else None
    rules: list[ScoreRule] = []
    names: set[str] = set()
    for index, item in enumerate(reader.items(entries["rules"][1], "scoring.rules") if "rules" in entries else []):
        field = f"scoring.rules[{index}]"
        rule = reader.mapping(item, field, SCORE_RULE_KEYS)
        if rule is None:
            continue
        for required in ("name", "points"):
            if required not in rule:
                reader.problem(item, f"{field}.{required}", "is missing: every scoring rule needs a name and points")
        name = reader.text(rule["name"][1], f"{field}.name") if "name" in rule else None
        if name is not None and name in names:
            reader.problem(rule["name"][1], f"{field}.name", f"{name!r} is used by an earlier scoring rule: give each its own name")
        points = reader.integer(rule["points"][1], f"{field}.points") if "points" in rule else None
        if points == 0:
            reader.problem(rule["points"][1], f"{field}.points", "is 0: give a positive or negative number of points")
        event = reader.text(rule["on"][1], f"{field}.on") if "on" in rule else None
        if event is not None and event not in SCORE_EVENTS:
            reader.problem(rule["on"][1], f"{field}.on", f"{event!r} is invalid: use one of {', '.join(SCORE_EVENTS)}")
        keyword = None
        if "keyword" in rule:
            raw_keyword = reader.text(rule["keyword"][1], f"{field}.keyword")
            keyword = normalise(raw_keyword) if raw_keyword else None
            if event != "keyword":
                reader.problem(rule["keyword"][1], f"{field}.keyword", "only applies to `on: keyword`: add it or remove the keyword")
        conditions = reader.conditions(rule["when"][1], f"{field}.when") if "when" in rule else ()
        if event is None and not conditions:
            reader.problem(item, field, f"has neither `on` nor `when`: say which event ({', '.join(SCORE_EVENTS)}) or which field values score")
        if name is not None and points:
            names.add(name)
            rules.append(ScoreRule(name=name, points=points, event=event, keyword=keyword, conditions=conditions,
                                   line=item.start_mark.line + 1))
    return tuple(rules), assign_at


def load_routing_file(path: Path) -> Routing:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise RoutingFileError([Problem(str(path), 1, "file", f"cannot be read ({error}): save it as UTF-8 text")]) from None
    return load_routing_text(text, str(path))


def check_routing_file(path: Path, sequence_names: Iterable[str] | None = None) -> list[Problem]:
    """List every problem in a routing file; with `sequence_names`, also rules naming a sequence that does not exist."""
    try:
        routing = load_routing_file(path)
    except RoutingFileError as error:
        return error.problems
    problems = []
    if sequence_names is not None:
        known = set(sequence_names)
        for index, rule in enumerate(routing.rules):
            if rule.sequence is not None and rule.sequence not in known:
                problems.append(Problem(str(path), rule.line, f"rules[{index}].sequence",
                                        f"{rule.sequence!r} is not a sequence: use one of {', '.join(sorted(known)) or 'the sequences folder (it is empty)'}"))
    return problems


def lead_facts(session: Session, contact: Contact, extra_sequences: Iterable[str] = (), enrolled: set[str] | None = None) -> dict[str, Any]:
    """Return what routing and scoring conditions can test on a lead, loading its sequences (see contact_facts).

    `enrolled` gives the sequences the lead was ever enrolled in when the caller knows them, which saves a
    query per lead in an import. It is an empty set for a contact created in this transaction and not enrolled yet.
    """
    if enrolled is None:
        enrolled = set(session.scalars(select(Enrollment.sequence_name).where(Enrollment.contact_id == contact.id)).all())
    sequences = set(enrolled)
    sequences.update(extra_sequences)
    return contact_facts(contact, sequences)


def contact_facts(contact: Contact, sequences: set[str]) -> dict[str, Any]:
    """Return the lead's standard and custom fields plus source, status, score, owner, sequences (ever enrolled) and tags."""
    fields = dict(contact.fields or {})
    tags = fields.get("tags") or []
    return {
        **fields,
        **contact.standard_fields(),
        "source": contact.source,
        "status": contact.status,
        "score": contact.score,
        "owner": contact.owner,
        "sequence": sequences,
        "tag": set(tags) if isinstance(tags, list) else {tags},
    }


_cache_lock = threading.Lock()
_cache: tuple[Path, tuple[float, int], Routing] | None = None


def get_routing(path: Path | None) -> Routing:
    """Return the routing for `path` (empty when None), reloading it when the file changes.

    A reload that fails keeps the last good version and logs the problems, as sequence files do.
    """
    global _cache
    if path is None:
        return EMPTY_ROUTING
    try:
        stat = path.stat()
        fingerprint = (stat.st_mtime, stat.st_size)
    except OSError:
        fingerprint = (-1.0, -1)  # load_routing_file reports the missing file, or the cache covers for it
    with _cache_lock:
        if _cache is not None and _cache[0] == path and _cache[1] == fingerprint:
            return _cache[2]
        try:
            routing = load_routing_file(path)
        except RoutingFileError as error:
            if _cache is None or _cache[0] != path:
                raise
            logger.error("routing file changed but is invalid; still using the previous version:\n%s", error)
            _cache = (path, fingerprint, _cache[2])
            return _cache[2]
        logger.info("loaded routing from %s: %d reps, %d pools, %d rules, %d scoring rules",
                    path, len(routing.reps), len(routing.pools), len(routing.rules), len(routing.score_rules))
        _cache = (path, fingerprint, routing)
        return routing


def reset_routing_cache() -> None:
    """Forget the loaded routing, for tests that switch files."""
    global _cache
    with _cache_lock:
        _cache = None
