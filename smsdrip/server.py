"""Running the webhook app under gunicorn from the `smsdrip serve` command."""

from __future__ import annotations

import logging
from typing import Any

from gunicorn.app.base import BaseApplication

from engine.config import get_settings
from engine.schema import check_schema

logger = logging.getLogger(__name__)


class _SmsdripGunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from webhooks.app import create_app

        return create_app()


def run_gunicorn(host: str, port: int, workers: int) -> None:
    """Check settings and schema in the master first, so a bad start fails once with one message."""
    get_settings()
    check_schema()
    from webhooks.app import create_app

    create_app()
    logger.info("serving webhooks on http://%s:%d with %d gunicorn workers", host, port, workers)
    # No control socket: its default path is one per user, shared by every gunicorn on the host.
    _SmsdripGunicorn({"bind": f"{host}:{port}", "workers": workers, "accesslog": None, "timeout": 30, "control_socket_disable": True}).run()
