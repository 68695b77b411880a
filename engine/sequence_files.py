"""Loading sequence YAML files, with every problem reported as `file:line: field: what, fix`."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from engine.keywords import MATCH_MODES, normalise
from engine.sequences import Sequence, Step

logger = logging.getLogger(__name__)

DURATION_PATTERN = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]*$")
SEQUENCE_KEYS = {"name", "description", "keywords", "match", "numbers", "steps"}
STEP_KEYS = {"id", "after", "text"}


@dataclass(frozen=True)
class Problem:
    path: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.field}: {self.message}"


class SequenceFileError(ValueError):
    """One or more sequence files are invalid; `problems` lists each one."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(problem) for problem in problems))


def parse_duration(value: Any) -> timedelta:
    """Parse `0` or a number with unit s, m, h or d ("90s", "1d") into a timedelta."""
    if value == 0 or value == "0":
        return timedelta(0)
    match = DURATION_PATTERN.match(str(value)) if isinstance(value, (str, int)) else None
    if not match:
        raise ValueError(f"{value!r} is not a delay: use 0 or a number with s, m, h or d, such as 30m or 1d")
    amount, unit = match.groups()
    return timedelta(**{DURATION_UNITS[unit]: int(amount)})


class _Reader:
    """Walks one composed YAML document, collecting problems instead of stopping at the first."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: list[Problem] = []

    def problem(self, node: yaml.Node | None, field: str, message: str) -> None:
        line = node.start_mark.line + 1 if node is not None else 1
        self.problems.append(Problem(self.path, line, field, message))

    def mapping(self, node: yaml.Node, field: str) -> dict[str, tuple[yaml.Node, yaml.Node]] | None:
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, field, "must be a mapping of keys to values")
            return None
        entries: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in entries:
                self.problem(key_node, f"{field}.{key}" if field else key, "is given twice: keep one")
            entries[key] = (key_node, value_node)
        return entries

    def string(self, node: yaml.Node, field: str) -> str | None:
        if not isinstance(node, yaml.ScalarNode) or node.value == "":
            self.problem(node, field, "must be a non-empty text")
            return None
        return str(node.value)

    def unknown_keys(self, entries: dict[str, tuple[yaml.Node, yaml.Node]], allowed: set[str], field: str) -> None:
        for key, (key_node, _value) in entries.items():
            if key not in allowed:
                prefix = f"{field}." if field else ""
                self.problem(key_node, f"{prefix}{key}", f"unknown key: use one of {', '.join(sorted(allowed))}")


def load_sequence_text(text: str, path: str = "<string>") -> Sequence:
    """Parse one sequence file's text, raising SequenceFileError with every problem found."""
    reader = _Reader(path)
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        detail = getattr(error, "problem", None) or str(error)
        raise SequenceFileError([Problem(path, line, "yaml", f"invalid YAML ({detail}): check indentation and quoting")]) from None
    if root is None:
        raise SequenceFileError([Problem(path, 1, "file", "is empty: add name, keywords and steps")])

    entries = reader.mapping(root, "")
    if entries is None:
        raise SequenceFileError(reader.problems)
    reader.unknown_keys(entries, SEQUENCE_KEYS, "")
    for required in ("name", "keywords", "steps"):
        if required not in entries:
            reader.problem(root, required, "is missing: every sequence needs name, keywords and steps")

    name = ""
    if "name" in entries:
        name_node = entries["name"][1]
        name = reader.string(name_node, "name") or ""
        if name and not NAME_PATTERN.match(name):
            reader.problem(name_node, "name", f"{name!r} is invalid: use lower-case letters, digits and '-'")

    description = ""
    if "description" in entries:
        description = reader.string(entries["description"][1], "description") or ""

    match = "first_word"
    if "match" in entries:
        match_node = entries["match"][1]
        match = reader.string(match_node, "match") or "first_word"
        if match not in MATCH_MODES:
            reader.problem(match_node, "match", f"{match!r} is invalid: use {' or '.join(MATCH_MODES)}")

    keywords = _read_keywords(reader, entries.get("keywords"))
    steps = _read_steps(reader, entries.get("steps"))

    if reader.problems:
        raise SequenceFileError(reader.problems)
    return Sequence(name=name, keywords=tuple(keywords), steps=tuple(steps), description=description, source=path, match=match)


def _read_keywords(reader: _Reader, entry: tuple[yaml.Node, yaml.Node] | None) -> list[str]:
    if entry is None:
        return []
    node = entry[1]
    if not isinstance(node, yaml.SequenceNode) or not node.value:
        reader.problem(node, "keywords", "must be a non-empty list of words, such as [DEMO]")
        return []
    keywords: list[str] = []
    for item in node.value:
        raw = reader.string(item, "keywords")
        if raw is None:
            continue
        keyword = normalise(raw)
        if not keyword:
            reader.problem(item, "keywords", f"{raw!r} has no letters or digits: use a word such as DEMO")
        elif keyword in keywords:
            reader.problem(item, "keywords", f"{raw!r} is listed twice: keep one")
        else:
            keywords.append(keyword)
    return keywords


def _read_steps(reader: _Reader, entry: tuple[yaml.Node, yaml.Node] | None) -> list[Step]:
    if entry is None:
        return []
    node = entry[1]
    if not isinstance(node, yaml.SequenceNode) or not node.value:
        reader.problem(node, "steps", "must be a non-empty list of steps with id, after and text")
        return []
    steps: list[Step] = []
    seen: set[str] = set()
    for index, step_node in enumerate(node.value):
        field = f"steps[{index}]"
        entries = reader.mapping(step_node, field)
        if entries is None:
            continue
        reader.unknown_keys(entries, STEP_KEYS, field)
        for required in ("id", "after", "text"):
            if required not in entries:
                reader.problem(step_node, f"{field}.{required}", "is missing: every step needs id, after and text")
        step_id = reader.string(entries["id"][1], f"{field}.id") if "id" in entries else None
        if step_id is not None:
            if step_id in seen:
                reader.problem(entries["id"][1], f"{field}.id", f"{step_id!r} is used by an earlier step: give each step its own id")
            seen.add(step_id)
        after = None
        if "after" in entries:
            after_node = entries["after"][1]
            try:
                after = parse_duration(yaml.safe_load(yaml.serialize(after_node)))
            except ValueError as error:
                reader.problem(after_node, f"{field}.after", str(error))
        text = reader.string(entries["text"][1], f"{field}.text") if "text" in entries else None
        if step_id is not None and after is not None and text is not None:
            steps.append(Step(id=step_id, after=after, text=text, line=step_node.start_mark.line + 1))
    return steps


def load_sequence_file(path: Path) -> Sequence:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise SequenceFileError([Problem(str(path), 1, "file", f"cannot be read ({error}): save it as UTF-8 text")]) from None
    return load_sequence_text(text, str(path))


def sequence_paths(paths: Iterable[Path]) -> list[Path]:
    """Expand folders to the .yaml and .yml files inside them, sorted for stable output."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file()))
        else:
            found.append(path)
    return found
