"""Exporting contacts to CSV with their lead status, owner, score, last activity and opt-out state.

The columns are those `smsdrip contacts import` reads, plus the lead state, so an export can be
edited and imported again.
"""

from __future__ import annotations

import csv
import logging
from typing import TextIO

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from engine.contact_queries import last_activity
from engine.models import Contact

logger = logging.getLogger(__name__)

COLUMNS = ["phone", "first_name", "last_name", "email", "company", "source", "tags", "status", "owner", "score",
           "last_activity_at", "opted_out", "opted_out_at", "created_at"]
CHUNK = 1000  # contacts read per query


def export_contacts(session: Session, query: Select[tuple[Contact]], out: TextIO) -> int:
    """Write the contacts `query` selects as CSV to `out`; custom fields become extra columns. Returns the row count."""
    custom = sorted({name for fields in session.scalars(select(Contact.fields).where(Contact.id.in_(query.with_only_columns(Contact.id))))
                     for name in (fields or {}) if name != "tags"})
    writer = csv.writer(out)
    writer.writerow(COLUMNS + custom)
    count = 0
    last_id = 0
    while True:
        chunk = session.scalars(query.where(Contact.id > last_id).order_by(None).order_by(Contact.id).limit(CHUNK)).all()
        if not chunk:
            break
        activity = last_activity(session, [contact.id for contact in chunk])
        for contact in chunk:
            fields = contact.fields or {}
            tags = fields.get("tags") or []
            writer.writerow([
                contact.phone, contact.first_name or "", contact.last_name or "", contact.email or "", contact.company or "",
                contact.source or "", ";".join(tags) if isinstance(tags, list) else str(tags), contact.status, contact.owner or "",
                contact.score, _iso(activity.get(contact.id)), "yes" if contact.opted_out else "no", _iso(contact.opted_out_at),
                _iso(contact.created_at),
                *[_cell(fields.get(name)) for name in custom],
            ])
            count += 1
        last_id = chunk[-1].id
    logger.debug("exported %d contacts", count)
    return count


def _iso(moment: object) -> str:
    return moment.isoformat() if moment is not None else ""  # type: ignore[attr-defined]


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
