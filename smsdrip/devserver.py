"""`smsdrip dev`: the web server, a worker and the cron scheduler on the embedded defaults, in one command."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time

from engine.config import get_settings, reset_settings
from engine.schema import upgrade_database
from workers.connection import embedded_redis_url

logger = logging.getLogger(__name__)

# Seconds the children get to finish their work after the stop signal, before they are killed.
STOP_GRACE = 10.0
DEFAULT_PORT = 5000  # the port of `smsdrip dev` and of the URL `smsdrip text` posts to


class Terminated(Exception):
    """SIGTERM reached `smsdrip dev`."""


def run_dev(port: int) -> None:
    # Local runs answer `smsdrip text` without a Twilio account and never text real phones by accident.
    os.environ["SMSDRIP_VERIFY_SIGNATURES"] = "false"
    os.environ.setdefault("SMSDRIP_TRANSPORT", "console")
    os.environ.setdefault("SMSDRIP_PUBLIC_URL", f"http://localhost:{port}")
    reset_settings()
    settings = get_settings()

    upgrade_database()
    if settings.redis_url is None:
        # This process keeps the embedded server alive; the children connect to its socket.
        os.environ["REDIS_URL"] = embedded_redis_url()

    command = [sys.executable, "-m", "smsdrip.cli"]
    children = [
        subprocess.Popen([*command, "serve", "--port", str(port), "--workers", "1"]),
        subprocess.Popen([*command, "worker"]),
        subprocess.Popen([*command, "cron"]),
    ]
    # `smsdrip text` in another shell posts to port 5000 unless given --url.
    try_text = "smsdrip text +15550100001 DEMO"
    if port != DEFAULT_PORT:
        try_text += f" --url http://localhost:{port}/twilio/sms"
    logger.info(
        "smsdrip dev: webhooks on http://localhost:%d/twilio/sms, database %s, transport %s. Try: %s. Ctrl-C stops.",
        port, settings.database_url, settings.transport, try_text,
    )

    def terminate(_signum: int, _frame: object) -> None:
        raise Terminated

    signal.signal(signal.SIGTERM, terminate)
    crashed = False
    try:
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        crashed = True
        failed = [child for child in children if child.poll() is not None]
        logger.error("smsdrip dev: a process exited (%s); stopping the others",
                     ", ".join(f"pid {child.pid} code {child.returncode}" for child in failed))
        _stop_children(children, signal.SIGTERM)
    except Terminated:
        logger.info("smsdrip dev: SIGTERM, stopping")
        _stop_children(children, signal.SIGTERM)
    except KeyboardInterrupt:
        logger.info("smsdrip dev: Ctrl-C, stopping")
        _stop_children(children, signal.SIGINT)
    if crashed:
        sys.exit(1)


def _stop_children(children: list[subprocess.Popen[bytes]], signum: signal.Signals) -> None:
    """Pass the stop signal on to the children, wait STOP_GRACE seconds, then kill what still runs.

    Ctrl-C in a terminal also sends SIGINT to the children directly. A worker that gets the same
    signal twice within a second takes it as one (RQ does so for worker pools), whereas a SIGTERM
    after a SIGINT would make it stop at once, in the middle of a send.
    """
    for child in children:
        if child.poll() is None:
            child.send_signal(signum)
    deadline = time.monotonic() + STOP_GRACE
    for child in children:
        try:
            child.wait(timeout=max(0.0, deadline - time.monotonic()))
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            child.kill()
            child.wait()
