"""The enrollment state machine: one `transitions.Machine` per sequence, shared by all its enrollments.

An enrollment's state is the id of the step it waits to send, or one of the terminal states below,
which also name why it ended. Events are fired with `Event.trigger(model)`, so enrollments are never
added to the machine and no per-enrollment machine or bound methods exist.

An enrollment that ran to its end (completed, converted or lost) still acts on the reply words of
the last step it sent, so a reply may move it back to a step or change why it ended.
"""

from __future__ import annotations

import enum
import logging
from typing import Protocol

from transitions import Machine, MachineError

from engine.sequences import Sequence

logger = logging.getLogger(__name__)


class EndReason(str, enum.Enum):
    COMPLETED = "completed"  # every step was sent
    CONVERTED = "converted"
    LOST = "lost"
    REPLIED = "replied"  # the prospect answered; a person takes over
    OPTED_OUT = "opted_out"
    UNDELIVERABLE = "undeliverable"
    SEQUENCE_CHANGED = "sequence_changed"  # the step it waited on was removed from the file
    RESTARTED = "restarted"  # replaced by a new enrollment after the keyword was texted again


TERMINAL_STATES = frozenset(reason.value for reason in EndReason)
# Ends reached by the sequence's own flow, after which the last step's reply words still apply.
ANSWERABLE_END_STATES = frozenset({EndReason.COMPLETED.value, EndReason.CONVERTED.value, EndReason.LOST.value})
ADVANCE = "advance"


class StatefulEnrollment(Protocol):
    state: str


class InvalidTransition(RuntimeError):
    """An event that the enrollment's current state does not allow."""


class SequenceMachine:
    """Wraps the shared machine of one sequence with the events the engine fires."""

    def __init__(self, sequence: Sequence) -> None:
        self.sequence = sequence
        step_ids = [step.id for step in sequence.steps]
        clashes = TERMINAL_STATES.intersection(step_ids)
        if clashes:
            raise ValueError(f"sequence {sequence.name!r}: step ids {sorted(clashes)} are reserved state names")
        transitions: list[dict[str, object]] = []
        for step_id in step_ids:
            # A step's own `next` or `end` decides what follows it; else the step listed after it.
            transitions.append({"trigger": ADVANCE, "source": step_id, "dest": sequence.after_send(step_id)})
        answerable = sorted(ANSWERABLE_END_STATES)
        for step_id in step_ids:
            transitions.append({"trigger": f"go_{step_id}", "source": step_ids + answerable, "dest": step_id})
        for reason in EndReason:
            sources = list(step_ids)
            if reason.value in ANSWERABLE_END_STATES:
                # A reply may still change why a finished enrollment ended (completed -> converted).
                sources += [state for state in answerable if state != reason.value]
            transitions.append({"trigger": f"end_{reason.value}", "source": sources, "dest": reason.value})
        self.machine = Machine(
            model=None,
            states=step_ids + sorted(TERMINAL_STATES),
            transitions=transitions,
            initial=step_ids[0],
            auto_transitions=False,
            model_attribute="state",
        )

    @property
    def initial(self) -> str:
        return self.sequence.steps[0].id

    def _fire(self, event: str, enrollment: StatefulEnrollment) -> str:
        try:
            self.machine.events[event].trigger(enrollment)
        except MachineError as error:
            raise InvalidTransition(f"sequence {self.sequence.name!r}: {error.value}") from None
        return enrollment.state

    def advance(self, enrollment: StatefulEnrollment) -> str:
        """Move past the step just sent to the next one, or to `completed` after the last; returns the new state."""
        return self._fire(ADVANCE, enrollment)

    def go_to(self, enrollment: StatefulEnrollment, step_id: str) -> str:
        """Jump to `step_id` from any step, or reopen an enrollment that ran to its end."""
        return self._fire(f"go_{step_id}", enrollment)

    def has_state(self, state: str) -> bool:
        """Return whether `state` is a state of this machine; a step removed from the file is not."""
        return state in self.machine.states

    def end(self, enrollment: StatefulEnrollment, reason: EndReason) -> str:
        return self._fire(f"end_{reason.value}", enrollment)


_machines: dict[str, SequenceMachine] = {}


def machine_for(sequence: Sequence) -> SequenceMachine:
    """Return the shared machine for this sequence definition, rebuilding it when the file was reloaded."""
    machine = _machines.get(sequence.name)
    if machine is None or machine.sequence is not sequence:
        machine = SequenceMachine(sequence)
        _machines[sequence.name] = machine
    return machine
