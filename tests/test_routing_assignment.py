"""Assigning leads: round robin across processes and restarts, least loaded, capacity, inactive reps."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter

from sqlalchemy import select

from engine.assignment import assign_lead
from engine.db import reset_engine, session_scope
from engine.lifecycle import current_routing
from engine.models import Contact, Event
from tests.conftest import REPO
from tests.lead_fixtures import RoutingFile, utcnow


def _contacts(count: int, first: int = 0, **values) -> list[int]:
    with session_scope() as session:
        contacts = [Contact(phone=f"+1555020{first + index:04d}", fields={}, **values) for index in range(count)]
        session.add_all(contacts)
        session.flush()
        return [contact.id for contact in contacts]


def _assign(contact_ids: list[int]) -> list[str | None]:
    owners = []
    for contact_id in contact_ids:
        with session_scope() as session:
            contact = session.get_one(Contact, contact_id)
            assign_lead(session, contact, current_routing(), utcnow(), "test", trigger="qualified")
            owners.append(contact.owner)
    return owners


def _run_assigners(smsdrip_env: dict[str, str], batches: list[list[int]]) -> None:
    start_at = time.time() + 2  # both processes are importing by then, so they start together
    env = {**os.environ, **smsdrip_env}
    processes = [
        subprocess.Popen([sys.executable, "-m", "tests.assign_leads", str(start_at), *map(str, batch)], env=env, cwd=REPO,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for batch in batches
    ]
    for process in processes:
        output, _ = process.communicate(timeout=120)
        assert process.returncode == 0, output.decode(errors="replace")


def test_round_robin_rotates(routing: RoutingFile):
    assert _assign(_contacts(4)) == ["alice", "bob", "alice", "bob"]


def test_round_robin_concurrent_processes_even(routing: RoutingFile, smsdrip_env):
    ids = _contacts(100)
    _run_assigners(smsdrip_env, [ids[0::2], ids[1::2]])

    with session_scope() as session:
        owners = Counter(session.scalars(select(Contact.owner)).all())
        positions = sorted(event.data["position"] for event in session.scalars(select(Event).where(Event.kind == "contact.assigned")))
    assert owners == {"alice": 50, "bob": 50}
    # Every assignment took its own turn: no two processes read the same counter value.
    assert positions == list(range(1, 101))


def test_round_robin_survives_restart(routing: RoutingFile, smsdrip_env):
    ids = _contacts(4)
    assert _assign(ids[:3]) == ["alice", "bob", "alice"]
    reset_engine()  # as a restarted process would, with new connections and no memory
    _run_assigners(smsdrip_env, [[ids[3]]])
    with session_scope() as session:
        assert session.get_one(Contact, ids[3]).owner == "bob"


def test_assign_keeps_existing_owner(routing: RoutingFile):
    [contact_id] = _contacts(1, owner="bob")
    assert _assign([contact_id]) == ["bob"]
    with session_scope() as session:
        assert session.scalar(select(Event).where(Event.kind == "contact.assigned")) is None


def test_least_loaded_prefers_fewest_open(routing: RoutingFile):
    routing.write("""
reps: [{name: alice, email: a@example.com}, {name: bob, email: b@example.com}]
pools: {sales: {strategy: least_loaded, reps: [alice, bob]}}
rules: [{name: all, pool: sales}]
""")
    _contacts(2, first=100, owner="alice", status="engaged")
    _contacts(3, first=200, owner="bob", status="converted")  # closed leads do not count as load
    assert _assign(_contacts(4)) == ["bob", "bob", "alice", "bob"]


def test_capacity_and_inactive_skipped(routing: RoutingFile):
    routing.write("""
reps:
  - {name: alice, email: a@example.com, capacity: 1}
  - {name: bob, email: b@example.com}
  - {name: carol, email: c@example.com, active: false}
pools: {sales: {strategy: round_robin, reps: [alice, bob, carol]}}
rules: [{name: all, pool: sales}]
""")
    assert _assign(_contacts(4)) == ["alice", "bob", "bob", "bob"]


def test_full_rep_rule_falls_through(routing: RoutingFile):
    routing.write("""
reps: [{name: alice, email: a@example.com, capacity: 1}, {name: bob, email: b@example.com}]
rules:
  - {name: enterprise, match: {company_size: ">=500"}, rep: alice}
  - {name: rest, rep: bob}
""")
    with session_scope() as session:
        big = [Contact(phone=f"+155503000{index}", fields={"company_size": "1,200"}) for index in range(2)]
        small = Contact(phone="+15550300009", fields={"company_size": 20})
        session.add_all([*big, small])
        session.flush()
        ids = [big[0].id, big[1].id, small.id]
    assert _assign(ids) == ["alice", "bob", "bob"]


def test_no_available_rep_skips(routing: RoutingFile):
    routing.write("""
reps: [{name: carol, email: c@example.com, active: false}]
pools: {sales: {strategy: round_robin, reps: [carol]}}
rules: [{name: all, pool: sales}]
""")
    [contact_id] = _contacts(1)
    assert _assign([contact_id]) == [None]
    with session_scope() as session:
        event = session.scalars(select(Event).where(Event.kind == "assignment.skipped")).one()
    assert event.data["trigger"] == "qualified"


def test_rule_matches_sequence_and_source(routing: RoutingFile):
    routing.write("""
reps: [{name: alice, email: a@example.com}, {name: bob, email: b@example.com}]
rules:
  - {name: demo-leads, match: {sequence: demo, source: web_form}, rep: bob}
  - {name: rest, rep: alice}
""")
    from engine.models import Enrollment

    ids = _contacts(3, source="web_form")
    with session_scope() as session:
        session.add_all([Enrollment(contact_id=ids[0], sequence_name="demo", state="welcome"),
                         Enrollment(contact_id=ids[1], sequence_name="other", state="welcome")])
    assert _assign(ids) == ["bob", "alice", "alice"]


def test_deleted_routing_file_keeps_last(routing: RoutingFile):
    assert current_routing().reps.keys() == {"alice", "bob"}
    routing.path.unlink()
    assert current_routing().reps.keys() == {"alice", "bob"}
