"""The enrollment state machine: one shared transitions.Machine per sequence, state kept on the row."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest

from engine.machine import EndReason, InvalidTransition, SequenceMachine, machine_for
from engine.sequences import Sequence, Step


def _sequence(*step_ids: str) -> Sequence:
    steps = tuple(Step(id=step_id, after=timedelta(0), text=step_id) for step_id in step_ids)
    return Sequence(name="demo", keywords=("DEMO",), steps=steps)


@dataclass
class Row:
    state: str


def test_advance_walks_steps_to_completed():
    machine = SequenceMachine(_sequence("welcome", "tips", "call"))
    row = Row(state=machine.initial)
    assert row.state == "welcome"
    assert machine.advance(row) == "tips"
    assert machine.advance(row) == "call"
    assert machine.advance(row) == "completed"


def test_advance_from_terminal_state_is_rejected():
    machine = SequenceMachine(_sequence("welcome"))
    row = Row(state="completed")
    with pytest.raises(InvalidTransition, match="advance"):
        machine.advance(row)
    assert row.state == "completed"


def test_end_sets_reason_as_state():
    machine = SequenceMachine(_sequence("welcome", "tips"))
    row = Row(state="tips")
    assert machine.end(row, EndReason.OPTED_OUT) == "opted_out"


def test_go_to_jumps_to_named_step():
    machine = SequenceMachine(_sequence("welcome", "tips", "call"))
    row = Row(state="welcome")
    assert machine.go_to(row, "call") == "call"


def test_machine_shared_across_enrollments():
    sequence = _sequence("welcome", "tips")
    machine = machine_for(sequence)
    rows = [Row(state="welcome") for _ in range(1000)]
    for row in rows:
        machine_for(sequence).advance(row)
    assert machine_for(sequence) is machine
    assert {row.state for row in rows} == {"tips"}
    assert machine.machine.models == []  # rows are never added to the machine


def test_machine_rebuilt_when_file_reloaded():
    first = machine_for(_sequence("welcome"))
    second = machine_for(_sequence("welcome", "tips"))
    assert second is not first
    assert second.sequence.steps[-1].id == "tips"


def test_step_named_like_end_reason_is_rejected():
    with pytest.raises(ValueError, match="reserved state names"):
        SequenceMachine(_sequence("welcome", "completed"))
