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
    logger.info(
        "smsdrip dev: webhooks on http://localhost:%d/twilio/sms, database %s, transport %s. "
        "Try: smsdrip text +15550100001 DEMO. Ctrl-C stops.",
        port, settings.database_url, settings.transport,
    )

    def stop(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        failed = [child for child in children if child.poll() is not None]
        logger.error("smsdrip dev: a process exited (%s); stopping the others",
                     ", ".join(f"pid {child.pid} code {child.returncode}" for child in failed))
    except KeyboardInterrupt:
        logger.info("smsdrip dev: stopping")
    finally:
        for child in children:
            if child.poll() is None:
                child.terminate()
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
    if any(child.returncode not in (0, -signal.SIGTERM) for child in children):
        sys.exit(1)
