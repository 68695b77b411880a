"""The endpoints Twilio calls: inbound messages and delivery status callbacks."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from flask import Blueprint, Response, current_app, request
from twilio.twiml.messaging_response import MessagingResponse

from engine.db import session_scope
from engine.delivery import apply_status
from engine.inbound import handle_inbound
from engine.library import get_library
from webhooks.forms import parse_inbound, parse_status
from webhooks.signature import require_twilio_signature
from workers.queue import enqueue_sends

logger = logging.getLogger(__name__)

twilio_routes = Blueprint("twilio", __name__, url_prefix="/twilio")


def twiml(reply: str | None) -> Response:
    response = MessagingResponse()
    if reply:
        response.message(reply)
    return Response(str(response), mimetype="application/xml")


@twilio_routes.post("/sms")
@require_twilio_signature
def inbound_sms() -> Response:
    message = parse_inbound(request.form)
    library = get_library(current_app.config["SMSDRIP"].sequences_dir)

    with session_scope() as session:
        outcome = handle_inbound(session, message, library, datetime.now(timezone.utc))

    # Enqueued only after the commit, so a worker never picks up a send the database does not hold yet.
    enqueue_sends(outcome.sends)
    return twiml(outcome.reply)


@twilio_routes.post("/status")
@require_twilio_signature
def status_callback() -> Response:
    sid, status, error_code = parse_status(request.form)
    settings = current_app.config["SMSDRIP"]
    library = get_library(settings.sequences_dir)
    with session_scope() as session:
        apply_status(session, sid, status, error_code, library, datetime.now(timezone.utc), settings.undeliverable_after)
    return Response(status=204)
