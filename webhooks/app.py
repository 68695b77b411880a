"""The Flask application the carrier calls."""

from __future__ import annotations

import logging

from flask import Flask, Response, request
from sqlalchemy.exc import OperationalError

from engine.config import ConfigError, Settings, get_settings
from engine.library import get_library
from webhooks.api import api_routes
from webhooks.forms import FormError
from webhooks.health import health_routes
from webhooks.twilio_routes import twilio_routes

logger = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> Flask:
    """Build the app; invalid settings or sequence files stop start-up with a message saying what to fix."""
    settings = settings or get_settings()
    if settings.verify_signatures and not settings.twilio_auth_token:
        raise ConfigError(
            "TWILIO_AUTH_TOKEN is needed to check X-Twilio-Signature on webhooks: set it,"
            " or set SMSDRIP_VERIFY_SIGNATURES=false for local testing only"
        )
    if not settings.verify_signatures:
        logger.warning("SMSDRIP_VERIFY_SIGNATURES=false: webhook signatures are NOT checked; never run this way in production")
    get_library(settings.sequences_dir)  # fail now, not on the first text, when a sequence file is broken

    app = Flask(__name__)
    app.config["SMSDRIP"] = settings
    app.register_blueprint(twilio_routes)
    app.register_blueprint(health_routes)
    app.register_blueprint(api_routes)

    @app.errorhandler(FormError)
    def bad_form(error: FormError) -> Response:
        logger.warning("rejected %s with 400: %s", request.path, error)
        return Response(f"{error}\n", status=400, mimetype="text/plain")

    @app.errorhandler(OperationalError)
    def database_down(error: OperationalError) -> Response:
        # 503 lets the carrier retry or use the fallback URL; the text is not lost.
        logger.error("database unavailable while handling %s: %s", request.path, error.orig)
        return Response("Database unavailable; retry later.\n", status=503, mimetype="text/plain")

    return app
