"""Sequence definitions: the in-memory form of the YAML files in the sequences folder."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Step:
    id: str
    after: timedelta  # from the previous step's send; from enrollment for the first step
    text: str
    line: int = 0  # line of the step in its file, for error messages


@dataclass(frozen=True)
class Sequence:
    name: str
    keywords: tuple[str, ...]  # normalised
    steps: tuple[Step, ...]
    description: str = ""
    source: str = ""  # file the sequence was loaded from
    match: str = "first_word"
    numbers: frozenset[str] = field(default_factory=frozenset)

    def step(self, step_id: str) -> Step | None:
        for step in self.steps:
            if step.id == step_id:
                return step
        return None

    def step_after(self, step_id: str) -> Step | None:
        """Return the step that follows `step_id`, or None after the last one."""
        ids = [step.id for step in self.steps]
        index = ids.index(step_id)
        return self.steps[index + 1] if index + 1 < len(self.steps) else None

    @property
    def first_step(self) -> Step:
        return self.steps[0]
