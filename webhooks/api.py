"""The JSON API under /api for web forms, CRMs and reps: capture leads, read contacts, reply, qualify, convert.

Every request needs `Authorization: Bearer <key>` with a key from `smsdrip apikey create`. Errors are
JSON objects with `error` and, for invalid input, the `field` at fault.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request
from sqlalchemy.orm import Session

from engine.apikeys import authenticate
from engine.assignment import UnknownRep, assign_lead
from engine.config import Settings
from engine.contact_queries import MAX_PAGE_SIZE, contact_detail, contact_summary, contacts_query, find_contact, last_activity, page_of_contacts
from engine.conversations import ContactOptedOut, InvalidMessage, send_rep_message
from engine.db import session_scope
from engine.lead_status import InvalidStatusMove, LeadStatus, UnknownStatus, parse_status
from engine.leads import LeadInputError, capture_lead, parse_lead
from engine.library import SequenceLibrary, get_library
from engine.lifecycle import change_status, current_routing
from engine.models import Contact
from engine.phones import InvalidPhoneNumber
from workers.notifications import install_enqueue_on_commit
from workers.queue import enqueue_sends

logger = logging.getLogger(__name__)

api_routes = Blueprint("api", __name__, url_prefix="/api")


@api_routes.record_once
def _on_register(_state: object) -> None:
    install_enqueue_on_commit()
    current_routing()  # fail at start-up, not on the first lead, when routing.yaml is invalid


class ContactNotFound(LookupError):
    """No contact has the number in the URL."""


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _settings() -> Settings:
    return current_app.config["SMSDRIP"]


def _library() -> SequenceLibrary:
    return get_library(_settings().sequences_dir)


def _error(http_status: int, message: str, **extra: Any) -> tuple[Response, int]:
    return jsonify(error=message, **extra), http_status


@api_routes.before_request
def require_api_key() -> tuple[Response, int] | None:
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        response, status = _error(401, "missing API key: send `Authorization: Bearer <key>` with a key from `smsdrip apikey create`")
        response.headers["WWW-Authenticate"] = "Bearer"
        return response, status
    with session_scope() as session:
        api_key = authenticate(session, key.strip(), _utcnow())
        name = api_key.name if api_key is not None else None
    if name is None:
        logger.warning("rejected %s %s: invalid or revoked API key", request.method, request.path)
        response, status = _error(401, "invalid or revoked API key: create a new one with `smsdrip apikey create`")
        response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
        return response, status
    g.actor = f"api:{name}"
    return None


@api_routes.errorhandler(LeadInputError)
def invalid_lead(error: LeadInputError) -> tuple[Response, int]:
    logger.info("rejected %s with 422: %s", request.path, error.field)
    return _error(422, str(error), field=error.field)


@api_routes.errorhandler(InvalidMessage)
def invalid_message(error: InvalidMessage) -> tuple[Response, int]:
    return _error(422, str(error), field=error.field)


@api_routes.errorhandler(InvalidStatusMove)
def invalid_move(error: InvalidStatusMove) -> tuple[Response, int]:
    return _error(409, str(error), current=error.current, requested=error.requested, allowed=error.allowed)


@api_routes.errorhandler(ContactNotFound)
def contact_not_found(error: ContactNotFound) -> tuple[Response, int]:
    return _error(404, str(error))


@api_routes.errorhandler(ContactOptedOut)
def contact_opted_out(error: ContactOptedOut) -> tuple[Response, int]:
    return _error(409, str(error))


def _json_body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise LeadInputError("body", "must be a JSON object sent with Content-Type: application/json")
    return data


def _contact_or_404(session: Session, phone: str) -> Contact:
    try:
        contact = find_contact(session, phone, _settings().default_region)
    except InvalidPhoneNumber as error:
        raise LeadInputError("phone", str(error)) from None
    if contact is None:
        raise ContactNotFound(f"no contact has the number {phone!r}: capture it first with POST /api/leads")
    return contact


def _summary(session: Session, contact: Contact) -> dict[str, Any]:
    """Summarize the contact as GET /api/contacts does, with the last activity written in this request."""
    session.flush()
    return contact_summary(contact, last_activity(session, [contact.id]).get(contact.id))


@api_routes.post("/leads")
def create_lead() -> tuple[Response, int]:
    now = _utcnow()
    lead = parse_lead(_json_body(), _settings().default_region, now)
    library = _library()
    with session_scope() as session:
        result = capture_lead(session, lead, now, g.actor, library, current_routing())
        body = {
            "created": result.created,
            "changed": result.changed,
            "sequence": result.sequence,
            "enrollment_id": result.enrollment.id if result.enrollment is not None else None,
            "opt_in_requested": result.opt_in_requested,
            "not_enrolled": result.not_enrolled,
            "contact": _summary(session, result.contact),
        }
    enqueue_sends(result.sends)
    return jsonify(body), 201 if result.created else 200


@api_routes.get("/contacts")
def list_contacts() -> Response:
    status = request.args.get("status") or None
    if status is not None:
        try:
            status = parse_status(status).value
        except UnknownStatus as error:
            raise LeadInputError("status", str(error)) from None
    page = _positive_int("page", 1)
    per_page = _positive_int("per_page", 50)
    if per_page > MAX_PAGE_SIZE:
        raise LeadInputError("per_page", f"{per_page} is too large: ask for at most {MAX_PAGE_SIZE} contacts per page")
    query = contacts_query(status=status, owner=request.args.get("owner") or None, sequence=request.args.get("sequence") or None)
    with session_scope() as session:
        contacts, total = page_of_contacts(session, query, page, per_page)
        activity = last_activity(session, [contact.id for contact in contacts])
        items = [contact_summary(contact, activity.get(contact.id)) for contact in contacts]
    return jsonify(contacts=items, page=page, per_page=per_page, total=total,
                   next_page=page + 1 if page * per_page < total else None)


def _positive_int(name: str, default: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise LeadInputError(name, f"{raw!r} is invalid: use a whole number of 1 or more")
    return int(raw)


@api_routes.get("/contacts/<phone>")
def show_contact(phone: str) -> Response:
    with session_scope() as session:
        return jsonify(contact_detail(session, _contact_or_404(session, phone)))


@api_routes.post("/contacts/<phone>/messages")
def answer_contact(phone: str) -> tuple[Response, int]:
    data = _json_body()
    text, rep = data.get("text"), data.get("rep")
    if not isinstance(text, str):
        raise InvalidMessage("text", "is missing: give the message to send as text")
    if not isinstance(rep, str):
        raise InvalidMessage("rep", "is missing: give the name of the rep who writes")
    now = _utcnow()
    with session_scope() as session:
        contact = _contact_or_404(session, phone)
        send = send_rep_message(session, contact, text, rep.strip(), now, _library(), current_routing())
        body = {"send_id": send.id, "status": send.status, "due_at": send.due_at.isoformat(), "contact": _summary(session, contact)}
    enqueue_sends([send])
    return jsonify(body), 202


def _update_contact(phone: str, change: Callable[[Session, Contact, datetime], bool]) -> Response:
    now = _utcnow()
    with session_scope() as session:
        contact = _contact_or_404(session, phone)
        changed = change(session, contact, now)
        body = {"changed": changed, "contact": _summary(session, contact)}
    return jsonify(body)


@api_routes.post("/contacts/<phone>/status")
def set_status(phone: str) -> Response:
    raw = _json_body().get("status")
    try:
        status = parse_status(raw)
    except UnknownStatus as error:
        raise LeadInputError("status", str(error)) from None
    return _update_contact(phone, lambda session, contact, now: change_status(session, contact, status, now, g.actor, _library()))


@api_routes.post("/contacts/<phone>/convert")
def convert(phone: str) -> Response:
    return _update_contact(phone, lambda session, contact, now: change_status(session, contact, LeadStatus.CONVERTED, now, g.actor, _library()))


@api_routes.post("/contacts/<phone>/assign")
def assign(phone: str) -> Response:
    rep = (request.get_json(silent=True) or {}).get("rep")

    def change(session: Session, contact: Contact, now: datetime) -> bool:
        try:
            assignment = assign_lead(session, contact, current_routing(), now, g.actor, trigger="api", rep_name=rep)
        except UnknownRep as error:
            raise LeadInputError("rep", str(error)) from None
        return assignment is not None

    return _update_contact(phone, change)
