"""Logging set-up for every smsdrip process: one line per record, with the process id."""

from __future__ import annotations

import logging
import sys

LOG_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def configure_logging(level: str = "INFO") -> None:
    """Send smsdrip's and the libraries' logs to stderr once, at `level` (one of LEVELS)."""
    if level.upper() not in LEVELS:
        raise ValueError(f"log level {level!r} is invalid: use one of {', '.join(LEVELS)}")
    root = logging.getLogger()
    if not any(getattr(handler, "smsdrip_handler", False) for handler in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        handler.smsdrip_handler = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level.upper())
    # The twilio client logs each request's parameters (To, Body) at INFO: phone numbers must not reach the logs.
    logging.getLogger("twilio.http_client").setLevel(logging.WARNING)
    # Per-transition and per-migration log lines carry nothing an operator needs.
    logging.getLogger("transitions").setLevel(logging.WARNING)
    logging.getLogger("alembic.runtime").setLevel(logging.WARNING)
    if level.upper() != "DEBUG":
        # The cron scheduler and RQ's scheduler log every periodic run and lock renewal, burying smsdrip's own lines.
        logging.getLogger("rq.cron").setLevel(logging.WARNING)
        logging.getLogger("rq.scheduler").setLevel(logging.WARNING)
