"""Parsing the form fields Twilio posts, with a plain error naming the field that is wrong."""

from __future__ import annotations

import re
from collections.abc import Mapping

from engine.inbound import InboundMessage
from engine.phones import InvalidPhoneNumber, to_e164

MAX_BODY_CHARS = 1600  # Twilio's limit for one message body
SID_PATTERN = re.compile(r"^[A-Z]{2}[0-9a-fA-F]{32}$")


class FormError(ValueError):
    """A webhook form that is missing a field or holds an invalid value; answered with 400."""


def _required(form: Mapping[str, str], name: str) -> str:
    value = form.get(name)
    if value is None or value.strip() == "":
        raise FormError(f"missing form field {name}: the carrier must post it")
    return value


def _sid(form: Mapping[str, str], name: str) -> str:
    sid = _required(form, name)
    if not SID_PATTERN.match(sid):
        raise FormError(f"invalid {name} {sid[:40]!r}: expected two letters and 32 hex digits, such as SM0123...")
    return sid


def _number(form: Mapping[str, str], name: str) -> str:
    try:
        return to_e164(_required(form, name))
    except InvalidPhoneNumber as error:
        raise FormError(f"invalid {name}: {error}") from None


def parse_inbound(form: Mapping[str, str]) -> InboundMessage:
    """Read an inbound-message webhook (MessageSid, From, To, Body)."""
    body = form.get("Body")
    if body is None:
        raise FormError("missing form field Body: the carrier must post it, even when empty")
    if len(body) > MAX_BODY_CHARS:
        raise FormError(f"Body has {len(body)} characters; the most a message can carry is {MAX_BODY_CHARS}")
    return InboundMessage(
        sid=_sid(form, "MessageSid"),
        from_number=_number(form, "From"),
        to_number=_number(form, "To"),
        body=body,
    )


def parse_status(form: Mapping[str, str]) -> tuple[str, str, int | None]:
    """Read a status callback: (MessageSid, MessageStatus, ErrorCode or None)."""
    sid = _sid(form, "MessageSid")
    status = _required(form, "MessageStatus").strip().lower()
    raw_code = form.get("ErrorCode") or None
    code = None
    if raw_code is not None:
        if not raw_code.strip().isdigit():
            raise FormError(f"invalid ErrorCode {raw_code[:20]!r}: expected a number such as 30003")
        code = int(raw_code)
    return sid, status, code
