"""Checking X-Twilio-Signature with the `twilio` library's validator."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from flask import Response, current_app, request
from twilio.request_validator import RequestValidator

logger = logging.getLogger(__name__)


def signed_url() -> str:
    """The URL the carrier signed: our public base URL plus the path and query it posted to.

    Behind a proxy or tunnel, request.url shows the inner address, so SMSDRIP_PUBLIC_URL is used instead.
    """
    query = request.query_string.decode()
    return current_app.config["SMSDRIP"].public_url + request.path + (f"?{query}" if query else "")


def require_twilio_signature(view: Callable[..., Any]) -> Callable[..., Any]:
    """Reject a request whose X-Twilio-Signature does not match with 403, unless checking is switched off."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        settings = current_app.config["SMSDRIP"]
        if settings.verify_signatures:
            signature = request.headers.get("X-Twilio-Signature", "")
            validator = RequestValidator(settings.twilio_auth_token)
            if not signature or not validator.validate(signed_url(), request.form, signature):
                logger.warning(
                    "rejected %s: %s X-Twilio-Signature for %s (MessageSid %s); check TWILIO_AUTH_TOKEN and SMSDRIP_PUBLIC_URL",
                    request.path, "invalid" if signature else "missing", signed_url(), request.form.get("MessageSid", "?"),
                )
                return Response("Invalid or missing X-Twilio-Signature.\n", status=403, mimetype="text/plain")
        return view(*args, **kwargs)

    return wrapper
