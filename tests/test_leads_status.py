"""The lead status machine on its own: allowed moves, rejected moves, no-op moves, unknown values."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from engine.lead_status import MOVES, InvalidStatusMove, LeadStatus, UnknownStatus, allowed_moves, move, parse_status


@dataclass
class Lead:
    status: str = "new"


@pytest.mark.parametrize("current", list(LeadStatus), ids=[status.value for status in LeadStatus])
def test_allowed_moves_match_table(current: LeadStatus):
    assert allowed_moves(current.value) == [dest.value for dest in LeadStatus if dest in MOVES[current]]


@pytest.mark.parametrize(("current", "requested"), [
    (current, requested) for current in LeadStatus for requested in LeadStatus
    if requested is not current and requested not in MOVES[current]
], ids=lambda status: status.value)
def test_move_outside_table_rejected(current: LeadStatus, requested: LeadStatus):
    lead = Lead(current.value)
    with pytest.raises(InvalidStatusMove) as raised:
        move(lead, requested)
    assert lead.status == current.value
    assert raised.value.allowed == allowed_moves(current.value)


def test_move_changes_status():
    lead = Lead("contacted")
    assert move(lead, LeadStatus.ENGAGED) is True
    assert lead.status == "engaged"


def test_move_same_status_noop():
    lead = Lead("engaged")
    assert move(lead, LeadStatus.ENGAGED) is False


def test_converted_is_final():
    assert allowed_moves("converted") == []


def test_invalid_move_message_lists_moves():
    with pytest.raises(InvalidStatusMove, match="allowed moves from 'qualified' are nurturing, converted, lost"):
        move(Lead("qualified"), LeadStatus.NEW)


def test_unknown_current_status_repaired():
    lead = Lead("hot")
    assert move(lead, LeadStatus.NURTURING) is True
    assert lead.status == "nurturing"


def test_parse_status_rejects_unknown():
    assert parse_status(" Qualified ") is LeadStatus.QUALIFIED
    with pytest.raises(UnknownStatus, match="use one of new, contacted, engaged, qualified, nurturing, converted, lost"):
        parse_status("hot")
