"""The send rate per sender number or Messaging Service (SMSDRIP_MPS), shared by every worker process through Redis.

Each call to the Messages API first reserves a start time in Redis: the later of now and the
previous reservation plus 1/MPS seconds. A Lua script does the read and the write in one step
on Redis's clock, so calls from all workers on all hosts start at least 1/MPS seconds apart, and
no half-open window of one second holds more than ceil(MPS) calls.

RQ's own `RateLimit` (rq 3.0) bounds how many jobs run at once, not how many start per second,
and RQ refuses it together with `unique=True`, which keeps re-enqueueing a row idempotent; so
the spacing is done here. A worker waits at most `max_wait` seconds for its slot, and since each
worker holds one reservation at a time, the wait is about (busy workers) / MPS.

NOTE: a flush or restart of Redis forgets the last reservation, so the first call after it may
follow the previous one sooner than 1/MPS seconds.
"""

from __future__ import annotations

import logging
from functools import cached_property

import redis

logger = logging.getLogger(__name__)

KEY_PREFIX = "smsdrip:send-slot:"

# KEYS[1]: the sender's key, holding the earliest start (microseconds on Redis's clock) of the next call.
# ARGV[1]: 1/MPS in microseconds. ARGV[2]: the longest wait, in microseconds, worth reserving.
# Returns the wait in microseconds, or -1 (nothing reserved) when the slot is further away than that.
RESERVE_SCRIPT = """
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local interval = tonumber(ARGV[1])
local next_free = tonumber(redis.call('GET', KEYS[1]) or '0')
local start = math.max(now, next_free)
local wait = start - now
if wait > tonumber(ARGV[2]) then
    return -1
end
-- %.0f: Lua's tostring would round a 16-digit number to 14 significant digits.
redis.call('SET', KEYS[1], string.format('%.0f', start + interval), 'PX', math.floor((wait + interval) / 1000) + 1000)
return wait
"""


class SendRateLimiter:
    """Hands out start times for Messages API calls from one sender, at most `mps` per second across all workers."""

    def __init__(self, connection: redis.Redis, sender: str, mps: float, max_wait: float) -> None:
        self.connection = connection
        self.key = KEY_PREFIX + sender
        self.interval_us = round(1_000_000 / mps)
        self.max_wait_us = round(max_wait * 1_000_000)

    @cached_property
    def _script(self):  # type: ignore[no-untyped-def]
        return self.connection.register_script(RESERVE_SCRIPT)

    def reserve(self) -> float | None:
        """Reserve the next start time; returns the seconds to wait before calling, or None when it is over `max_wait` away."""
        wait_us = int(self._script(keys=[self.key], args=[self.interval_us, self.max_wait_us]))
        if wait_us < 0:
            return None
        return wait_us / 1_000_000
