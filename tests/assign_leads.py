"""Assign contacts from a separate process, for the concurrent round-robin test.

Usage: python -m tests.assign_leads START_AT CONTACT_ID...  (waits until the Unix time START_AT, so
two processes begin together, then assigns each contact in its own transaction)
"""

from __future__ import annotations

import sys
import time
from datetime import datetime, timezone

from engine.assignment import assign_lead
from engine.db import session_scope
from engine.lifecycle import current_routing
from engine.models import Contact


def main() -> None:
    start_at = float(sys.argv[1])
    contact_ids = [int(value) for value in sys.argv[2:]]
    routing = current_routing()
    while time.time() < start_at:
        time.sleep(0.001)
    for contact_id in contact_ids:
        with session_scope() as session:
            contact = session.get_one(Contact, contact_id)
            assign_lead(session, contact, routing, datetime.now(timezone.utc), "test", trigger="qualified")


if __name__ == "__main__":
    main()
