"""The send rate per sender number or Messaging Service (SMSDRIP_MPS), shared by every worker process through Redis.

Two Lua scripts, each a read and a write in one step on Redis's clock, space the calls to the
Messages API from all workers on all hosts:

- `reserve` hands a send job a slot when it starts: the later of now and the previous slot plus
  1/MPS seconds. Jobs sleep until their slot, so the waiting happens before any work, and a slot
  further away than `max_wait` is refused so the job can give its send back to the sweep.
- `start_call` runs right before the HTTP request, after any database check made on waking up:
  the call starts at the later of now and the previous call's start plus 1/MPS seconds.

So call starts for one sender are at least 1/MPS seconds apart, and no half-open window of one
second contains more than ceil(MPS) of them, whatever the database checks in between cost. The
spacing is 2% longer than 1/MPS (SPACING_MARGIN): calls that start exactly 1/MPS apart can still
reach the carrier closer together, since each request's trip through the network and the client
varies by a few milliseconds. At MPS=50 the margin is 0.4 ms a call, so 50 calls take 1.02 s and
any one text may arrive 10 ms early or late without putting 51 texts in one second. A worker
holds one slot at a time, so a slot is about (busy workers) / MPS seconds away.

RQ's own `RateLimit` (rq 3.0) bounds how many jobs run at once, not how many start per second,
and RQ refuses it together with `unique=True`, which keeps re-enqueueing a row idempotent; so the
spacing is done here.

NOTE: a flush or restart of Redis forgets the last call, so the first call after it may follow the
previous one sooner than 1/MPS seconds.
"""

from __future__ import annotations

import logging
import time
from functools import cached_property

import redis

logger = logging.getLogger(__name__)

# Hash tags keep a sender's two keys in one Redis Cluster slot, as a script touching both needs.
SLOT_KEY = "smsdrip:send-slot:{%s}"  # earliest start of the next slot, microseconds on Redis's clock
CALL_KEY = "smsdrip:send-call:{%s}"  # start of the latest call, microseconds on Redis's clock
SPACING_MARGIN = 0.02  # calls are spaced (1 + margin) / MPS apart, room for jitter on the way to the carrier

# KEYS[1]: the slot key. ARGV[1]: 1/MPS in microseconds. ARGV[2]: the longest wait, in microseconds.
# Returns the wait in microseconds, or -1 (nothing reserved) when the slot is further away than that.
RESERVE_SCRIPT = """
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local interval = tonumber(ARGV[1])
local start = math.max(now, tonumber(redis.call('GET', KEYS[1]) or '0'))
local wait = start - now
if wait > tonumber(ARGV[2]) then
    return -1
end
-- %.0f: Lua's tostring would round a 16-digit number to 14 significant digits.
redis.call('SET', KEYS[1], string.format('%.0f', start + interval), 'PX', math.floor((wait + interval) / 1000) + 1000)
return wait
"""

# KEYS[1]: the call key, KEYS[2]: the slot key. ARGV as for RESERVE_SCRIPT. Returns the wait in
# microseconds before the call may start, or -1 when that is further away than the longest wait.
START_CALL_SCRIPT = """
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local interval = tonumber(ARGV[1])
local start = math.max(now, tonumber(redis.call('GET', KEYS[1]) or '0') + interval)
local wait = start - now
if wait > tonumber(ARGV[2]) then
    return -1
end
local ttl = math.floor((wait + interval) / 1000) + 1000
redis.call('SET', KEYS[1], string.format('%.0f', start), 'PX', ttl)
-- Slots handed out from now on start after this call, even if it runs late.
if start + interval > tonumber(redis.call('GET', KEYS[2]) or '0') then
    redis.call('SET', KEYS[2], string.format('%.0f', start + interval), 'PX', ttl)
end
return wait
"""


class SendRateLimiter:
    """Spaces Messages API calls from one sender at least 1/`mps` seconds apart, across all workers."""

    def __init__(self, connection: redis.Redis, sender: str, mps: float, max_wait: float) -> None:
        self.connection = connection
        self.slot_key = SLOT_KEY % sender
        self.call_key = CALL_KEY % sender
        self.interval_us = round(1_000_000 * (1 + SPACING_MARGIN) / mps)
        self.max_wait_us = round(max_wait * 1_000_000)

    @cached_property
    def _reserve(self):  # type: ignore[no-untyped-def]
        return self.connection.register_script(RESERVE_SCRIPT)

    @cached_property
    def _start_call(self):  # type: ignore[no-untyped-def]
        return self.connection.register_script(START_CALL_SCRIPT)

    def reserve(self) -> float | None:
        """Reserve the next slot; returns the seconds to wait for it, or None when it is over `max_wait` away."""
        return self._seconds(self._reserve(keys=[self.slot_key], args=[self.interval_us, self.max_wait_us]))

    def start_call(self) -> float | None:
        """Claim the start of a call; returns the seconds to wait before making it, or None when that is over `max_wait`."""
        return self._seconds(self._start_call(keys=[self.call_key, self.slot_key], args=[self.interval_us, self.max_wait_us]))

    def wait_for_call(self) -> bool:
        """Sleep until this process may call the Messages API; False when the wait would be over `max_wait`.

        For texts with nothing to re-check between the slot and the call, such as rep notifications.
        """
        wait = self.reserve()
        if wait is None:
            return False
        time.sleep(wait)
        call_wait = self.start_call()
        if call_wait is None:
            return False
        time.sleep(call_wait)
        return True

    @staticmethod
    def _seconds(wait_us: int) -> float | None:
        return None if int(wait_us) < 0 else int(wait_us) / 1_000_000
