"""Per-key token bucket in Redis, counted in events, so every gateway replica shares it.

The whole check is one Lua script (one round trip, atomic across replicas) and
uses Redis' clock, so replicas with skewed clocks still agree.

Redis is not on the gateway's critical path: when it fails, requests are
admitted (fail open), counted in ``logriver_ingest_rate_limiter_unavailable_total``
and logged as a warning (at most once per ``WARN_EVERY_S``), and for
``RETRY_AFTER_FAILURE_S`` the limiter does not call Redis at all, so a Redis that
hangs costs each request nothing. The gateway's readiness does not include Redis.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

UNAVAILABLE = Counter(
    "logriver_ingest_rate_limiter_unavailable_total",
    "Requests admitted without a rate-limit check because Redis failed (fail open).",
)
RETRY_AFTER_FAILURE_S = 1.0
WARN_EVERY_S = 30.0

# KEYS[1]: the bucket. ARGV: refill rate (tokens/s), capacity, cost of this request.
# Returns {allowed (0/1), seconds until `cost` tokens are available (as a string:
# Lua numbers are truncated to integers on their way back to Redis)}.
BUCKET_SCRIPT = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or capacity
local ts = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate)
local allowed = 0
local wait = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  wait = (cost - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens),
           'ts', string.format('%.6f', now))
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / rate * 1000) + 1000)
return {allowed, string.format('%.6f', wait)}
"""


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    retry_after_s: float


class RateLimiter:
    def __init__(
        self, redis: Redis, *, key_prefix: str, events_per_s: float, burst_events: int
    ) -> None:
        self._script = redis.register_script(BUCKET_SCRIPT)
        self._prefix = f"{key_prefix}ingest:bucket:"
        self._rate = events_per_s
        self._burst = burst_events
        self._skip_until = 0.0
        self._warned_at = -WARN_EVERY_S

    async def take(self, key_id: str, cost: int) -> Decision:
        """Take ``cost`` tokens from the key's bucket.

        If Redis fails, the request is let through (counted and logged): a rate
        limiter outage must not stop logs, which are most needed during outages.
        """
        now = time.monotonic()
        if now < self._skip_until:
            UNAVAILABLE.inc()
            return Decision(allowed=True, retry_after_s=0.0)
        try:
            allowed, wait = await self._script(
                keys=[self._prefix + key_id], args=[self._rate, self._burst, cost]
            )
        except (RedisError, OSError) as exc:
            UNAVAILABLE.inc()
            now = time.monotonic()
            self._skip_until = now + RETRY_AFTER_FAILURE_S
            if now - self._warned_at >= WARN_EVERY_S:
                self._warned_at = now
                log.warning(
                    "rate limiter unavailable (Redis: %s); admitting requests unlimited", exc
                )
            return Decision(allowed=True, retry_after_s=0.0)
        return Decision(allowed=bool(int(allowed)), retry_after_s=float(wait))
