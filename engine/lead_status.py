"""The lead status state machine: one shared `transitions.Machine` whose moves every status change must take.

Contacts are never added to the machine. A move fires the machine's event with `Event.trigger(contact)`,
which checks the contact's current `status` against the allowed sources and writes the new one.
"""

from __future__ import annotations

import enum
import logging
from typing import Protocol

from transitions import Machine, MachineError

logger = logging.getLogger(__name__)


class LeadStatus(str, enum.Enum):
    NEW = "new"  # captured, not texted yet
    CONTACTED = "contacted"  # we texted them
    ENGAGED = "engaged"  # they replied
    QUALIFIED = "qualified"  # worth a rep's time; assigned to an owner
    NURTURING = "nurturing"  # not ready; kept warm with sequences and broadcasts
    CONVERTED = "converted"  # became a customer; every sequence ends
    LOST = "lost"  # not interested or unreachable; every sequence ends


# Allowed moves by current status. A converted lead stays converted; a lost one can come back.
MOVES: dict[LeadStatus, tuple[LeadStatus, ...]] = {
    LeadStatus.NEW: (LeadStatus.CONTACTED, LeadStatus.ENGAGED, LeadStatus.QUALIFIED, LeadStatus.NURTURING,
                     LeadStatus.CONVERTED, LeadStatus.LOST),
    LeadStatus.CONTACTED: (LeadStatus.ENGAGED, LeadStatus.QUALIFIED, LeadStatus.NURTURING, LeadStatus.CONVERTED,
                           LeadStatus.LOST),
    LeadStatus.ENGAGED: (LeadStatus.QUALIFIED, LeadStatus.NURTURING, LeadStatus.CONVERTED, LeadStatus.LOST),
    LeadStatus.QUALIFIED: (LeadStatus.NURTURING, LeadStatus.CONVERTED, LeadStatus.LOST),
    LeadStatus.NURTURING: (LeadStatus.ENGAGED, LeadStatus.QUALIFIED, LeadStatus.CONVERTED, LeadStatus.LOST),
    LeadStatus.CONVERTED: (),
    LeadStatus.LOST: (LeadStatus.NURTURING, LeadStatus.ENGAGED),
}
STATUS_NAMES = tuple(status.value for status in LeadStatus)


class HasStatus(Protocol):
    status: str


class InvalidStatusMove(ValueError):
    """A status change the state machine does not allow; `allowed` lists the moves that are."""

    def __init__(self, current: str, requested: str, allowed: list[str]) -> None:
        self.current = current
        self.requested = requested
        self.allowed = allowed
        moves = ", ".join(allowed) if allowed else "none"
        super().__init__(f"cannot move a lead from {current!r} to {requested!r}: allowed moves from {current!r} are {moves}")


class UnknownStatus(ValueError):
    """A value that is not a lead status."""


def _build_machine() -> Machine:
    transitions = []
    for dest in LeadStatus:
        sources = [source.value for source, dests in MOVES.items() if dest in dests]
        if sources:
            transitions.append({"trigger": f"to_{dest.value}", "source": sources, "dest": dest.value})
    return Machine(
        model=None,
        states=list(STATUS_NAMES),
        transitions=transitions,
        initial=LeadStatus.NEW.value,
        auto_transitions=False,
        model_attribute="status",
    )


_machine = _build_machine()


def parse_status(value: object) -> LeadStatus:
    """Return the LeadStatus named by `value`, raising UnknownStatus that lists the valid names."""
    try:
        return LeadStatus(str(value).strip().lower())
    except ValueError:
        raise UnknownStatus(f"{value!r} is not a lead status: use one of {', '.join(STATUS_NAMES)}") from None


def allowed_moves(current: str) -> list[str]:
    """List the statuses a lead in `current` may move to, in the machine's order."""
    return [transition.dest for transition in _machine.get_transitions(source=current)]


def move(lead: HasStatus, requested: LeadStatus) -> bool:
    """Move `lead` to `requested` through the machine; False when it is already there.

    Raises InvalidStatusMove when the machine has no such move from the current status.
    """
    current = lead.status
    if current == requested.value:
        return False
    if current not in STATUS_NAMES:
        # Only a direct database edit leaves an unknown status; any move repairs it.
        logger.warning("lead has unknown status %r; moving it to %s", current, requested.value)
        lead.status = requested.value
        return True
    event = _machine.events.get(f"to_{requested.value}")
    if event is None:
        raise InvalidStatusMove(current, requested.value, allowed_moves(current))
    try:
        event.trigger(lead)
    except MachineError:
        raise InvalidStatusMove(current, requested.value, allowed_moves(current)) from None
    return True
