"""A reader over composed YAML nodes that collects `file:line: field: message` problems instead of stopping at the first."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

import yaml

BOOL_TAG = "tag:yaml.org,2002:bool"
TRUE_WORDS = frozenset({"true", "yes", "on"})

Entries = dict[str, tuple[yaml.Node, yaml.Node]]  # key -> (key node, value node)


@dataclass(frozen=True)
class Problem:
    path: str
    line: int  # 1-based
    field: str  # dotted path such as steps[1].replies.YES.next
    message: str  # what is wrong, then what to do

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.field}: {self.message}"


class SequenceFileError(ValueError):
    """One or more sequence files are invalid; `problems` lists each one."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(problem) for problem in problems))


def line_of(node: yaml.Node | None) -> int:
    return node.start_mark.line + 1 if node is not None else 1


class NodeReader:
    """Reads typed values out of YAML nodes for one file, recording a Problem for each bad value."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: list[Problem] = []

    def problem(self, node: yaml.Node | None, field: str, message: str) -> None:
        self.problems.append(Problem(self.path, line_of(node), field, message))

    def problem_at(self, line: int, field: str, message: str) -> None:
        self.problems.append(Problem(self.path, line, field, message))

    def mapping(self, node: yaml.Node, field: str, example: str = "") -> Entries | None:
        """Return the entries of a mapping node, reporting a non-mapping and any key given twice."""
        if not isinstance(node, yaml.MappingNode):
            hint = f", such as {example}" if example else ""
            self.problem(node, field or "file", f"must be a mapping of keys to values{hint}")
            return None
        entries: Entries = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in entries:
                self.problem(key_node, join(field, key), f"is given twice (first on line {line_of(entries[key][0])}): keep one")
            entries[key] = (key_node, value_node)
        return entries

    def unknown_keys(self, entries: Entries, allowed: Iterable[str], field: str) -> None:
        allowed = sorted(allowed)
        for key, (key_node, _value) in entries.items():
            if key in allowed:
                continue
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            self.problem(key_node, join(field, key), f"unknown key{hint}: use one of {', '.join(allowed)}")

    def require(self, entries: Entries, node: yaml.Node, keys: Iterable[str], field: str, what: str) -> None:
        for key in keys:
            if key not in entries:
                self.problem(node, join(field, key), f"is missing: {what}")

    def text(self, node: yaml.Node, field: str, example: str) -> str | None:
        """Return a non-empty scalar's text exactly as written (YAML does not turn 8:00 or +1555... into numbers here)."""
        if not isinstance(node, yaml.ScalarNode) or node.value == "" or node.tag == "tag:yaml.org,2002:null":
            self.problem(node, field, f"must be a non-empty text, such as {example}")
            return None
        return str(node.value)

    def boolean(self, node: yaml.Node, field: str) -> bool | None:
        if not isinstance(node, yaml.ScalarNode) or node.tag != BOOL_TAG:
            value = node.value if isinstance(node, yaml.ScalarNode) else "a list or mapping"
            self.problem(node, field, f"{value!r} is not true or false: write true or false")
            return None
        return node.value.lower() in TRUE_WORDS

    def choice(self, node: yaml.Node, field: str, choices: Iterable[str]) -> str | None:
        choices = tuple(choices)
        value = self.text(node, field, choices[0])
        if value is None:
            return None
        if value not in choices:
            options = " or ".join(choices) if len(choices) <= 2 else "one of " + ", ".join(choices)
            self.problem(node, field, f"{value!r} is invalid: use {options}")
            return None
        return value

    def items(self, node: yaml.Node, field: str, example: str) -> list[yaml.Node]:
        """Return the items of a non-empty list node."""
        if not isinstance(node, yaml.SequenceNode) or not node.value:
            self.problem(node, field, f"must be a non-empty list, such as {example}")
            return []
        return list(node.value)


def join(field: str, key: str) -> str:
    return f"{field}.{key}" if field else key
