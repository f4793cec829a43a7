"""Rate-limit counters in Redis: the `AsyncCounters` shape of `celgate.sdk.counters`, shared
by every gateway process that points at the same Redis, so limits hold across replicas.

Each call is one round trip: a Lua script that the server runs atomically over every limit of
the call, so an acquire over several limits is all-or-nothing (every limit has room and all
are taken, or none is). Time is the Redis server's clock (`TIME`), so replicas agree on window
boundaries. Per counter (identified by algorithm, window and key), the same semantics as
`MemoryCounters`:

- ``fixed-window``: a hash {ws: window start ms, used};
- ``sliding-window``: an exact log (a sorted set of `seq:cost` members scored by time) and
  its running sum in the hash; refunds come off the newest entries;
- ``token-bucket``: a hash {used: tokens missing from a full bucket, stamp: last refill}.

Keys expire when idle. A store that cannot be reached raises `CounterStoreUnavailable`
(the host's counter service turns it into an RPC error; the RateLimit policy's failurePolicy
then decides, and its decision says so). Redis Cluster is not supported (a call's keys would
have to share a hash slot).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError

from celgate.sdk.counters import ALGORITHMS, AcquireResult, CounterLimit, CounterState

DEFAULT_PREFIX = "celgate:ctr:"
DEFAULT_TIMEOUT_S = 0.5  # connecting: an unreachable store is reported quickly
READ_TIMEOUT_S = 2.0  # a reply: generous, since a script that ran but timed out still took its cost
POOL_WAIT_S = 2.0  # longest wait for a free connection under a burst

# Shared by both scripts: load/advance a counter, measure room, take, report its state.
_COMMON = r"""
local EPS = 1e-9
local function num(v, d) if v then return tonumber(v) end return d end

local function load(i, alg, limit, w, now)
  local h = KEYS[2 * i - 1]
  local c = {h = h, log = KEYS[2 * i], alg = alg, limit = limit, w = w}
  local f = redis.call('HMGET', h, 'used', 'ws', 'stamp', 'sum', 'seq')
  if alg == 'fixed-window' then
    local ws = math.floor(now / w) * w
    c.ws = ws
    if num(f[2], -1) == ws then c.used = num(f[1], 0) else c.used = 0 end
  elseif alg == 'sliding-window' then
    local sum = num(f[4], 0)
    local old = redis.call('ZRANGEBYSCORE', c.log, '-inf', now - w)
    for _, m in ipairs(old) do sum = sum - tonumber(string.match(m, ':(.+)$')) end
    if #old > 0 then redis.call('ZREMRANGEBYSCORE', c.log, '-inf', now - w) end
    if redis.call('ZCARD', c.log) == 0 then sum = 0 end
    c.used = sum
    c.seq = num(f[5], 0)
  else
    local rate = limit / w
    local stamp = num(f[3], now)
    local used = num(f[1], 0)
    c.used = math.max(0, used - math.max(0, now - stamp) * rate)
    c.stamp = math.max(stamp, now)
  end
  return c
end

-- 0 when `cost` fits now, else ms until it would (-1: never).
local function wait_for(c, cost, now)
  if c.used + cost <= c.limit + EPS then return 0 end
  if cost > c.limit then
    if c.alg == 'token-bucket' or c.limit == 0 then return -1 end
    return c.w
  end
  if c.alg == 'fixed-window' then return math.max(1, c.ws + c.w - now) end
  if c.alg == 'sliding-window' then
    local need = c.used + cost - c.limit
    local freed = 0
    local log = redis.call('ZRANGE', c.log, 0, -1, 'WITHSCORES')
    for j = 1, #log, 2 do
      freed = freed + tonumber(string.match(log[j], ':(.+)$'))
      if freed >= need - EPS then return math.max(1, tonumber(log[j + 1]) + c.w - now) end
    end
    return c.w
  end
  return math.max(1, (c.used + cost - c.limit) / (c.limit / c.w))
end

local function take(c, amount, now)
  if amount == 0 then return end
  if c.alg == 'sliding-window' then
    if amount > 0 then
      c.seq = c.seq + 1
      redis.call('ZADD', c.log, now, c.seq .. ':' .. string.format('%.17g', amount))
      c.used = c.used + amount
    else
      local left = -amount
      local log = redis.call('ZREVRANGE', c.log, 0, -1, 'WITHSCORES')
      for j = 1, #log, 2 do
        if left <= 0 then break end
        local cost = tonumber(string.match(log[j], ':(.+)$'))
        local part = math.min(left, cost)
        redis.call('ZREM', c.log, log[j])
        if cost - part > EPS then
          c.seq = c.seq + 1
          redis.call('ZADD', c.log, log[j + 1], c.seq .. ':' .. string.format('%.17g', cost - part))
        end
        c.used = c.used - part
        left = left - part
      end
      if c.used < 0 then c.used = 0 end
    end
  else
    c.used = math.max(0, c.used + amount)
  end
end

local function save(c)
  local ttl = math.ceil(c.w * 2) + 1000
  if c.alg == 'fixed-window' then
    redis.call('HSET', c.h, 'used', string.format('%.17g', c.used), 'ws', string.format('%.17g', c.ws))
  elseif c.alg == 'sliding-window' then
    redis.call('HSET', c.h, 'sum', string.format('%.17g', c.used), 'seq', c.seq)
    redis.call('PEXPIRE', c.log, ttl)
  else
    redis.call('HSET', c.h, 'used', string.format('%.17g', c.used), 'stamp', string.format('%.17g', c.stamp))
  end
  redis.call('PEXPIRE', c.h, ttl)
end

local function state(c, now)
  local remaining = math.max(0, c.limit - c.used)
  local reset = 0
  if c.used > 0 then
    if c.alg == 'fixed-window' then reset = c.ws + c.w - now
    elseif c.alg == 'sliding-window' then
      local first = redis.call('ZRANGE', c.log, 0, 0, 'WITHSCORES')
      if #first > 0 then reset = tonumber(first[2]) + c.w - now end
    elseif c.limit > 0 then reset = c.used / (c.limit / c.w)
    else reset = c.w end
  end
  return {string.format('%.17g', remaining), string.format('%.17g', math.max(0, reset))}
end

local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
end
"""

# ARGV: force (0/1), dry_run (0/1), then per limit: algorithm, limit, window_ms, cost.
# Returns {admitted, retry_ms, remaining_1, reset_ms_1, ...}.
ACQUIRE = (
    _COMMON
    + r"""
local now = clock()
local force, dry = ARGV[1] == '1', ARGV[2] == '1'
local n = (#ARGV - 2) / 4
local cs, costs, worst, admitted = {}, {}, 0, true
for i = 1, n do
  local b = 2 + (i - 1) * 4
  local c = load(i, ARGV[b + 1], tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3]), now)
  cs[i], costs[i] = c, tonumber(ARGV[b + 4])
  local wait = wait_for(c, costs[i], now)
  if wait ~= 0 then
    admitted = false
    if wait < 0 or worst < 0 then worst = -1 else worst = math.max(worst, wait) end
  end
end
local out = {admitted and 1 or 0, string.format('%.17g', admitted and 0 or worst)}
for i = 1, n do
  if (admitted or force) and not dry then
    take(cs[i], costs[i], now)
    save(cs[i])
  end
  local s = state(cs[i], now)
  out[#out + 1] = s[1]
  out[#out + 1] = s[2]
end
return out
"""
)

# ARGV: per limit: algorithm, limit, window_ms, delta. Returns {remaining_1, reset_ms_1, ...}.
ADJUST = (
    _COMMON
    + r"""
local now = clock()
local out = {}
for i = 1, #ARGV / 4 do
  local b = (i - 1) * 4
  local c = load(i, ARGV[b + 1], tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3]), now)
  take(c, tonumber(ARGV[b + 4]), now)
  save(c)
  local s = state(c, now)
  out[#out + 1] = s[1]
  out[#out + 1] = s[2]
end
return out
"""
)


class CounterStoreUnavailable(RuntimeError):
    """The counter store could not be reached or failed; the RateLimit failurePolicy decides."""


def redact(url: str) -> str:
    """The URL without its password (for messages and logs)."""
    return re.sub(r"//([^:@/]*):[^@/]*@", r"//\1:***@", url)


def _validate(lim: CounterLimit) -> None:
    if lim.algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {lim.algorithm!r}")
    if not (lim.window_s > 0 and math.isfinite(lim.window_s)):
        raise ValueError(f"window must be a positive number of seconds, not {lim.window_s!r}")
    if not (lim.limit >= 0 and math.isfinite(lim.limit)):
        raise ValueError(f"limit must be a non-negative number, not {lim.limit!r}")
    if not math.isfinite(lim.cost):
        raise ValueError(f"cost must be finite, not {lim.cost!r}")


def _num(x: float) -> str:
    return repr(float(x))


class RedisCounters:
    """`AsyncCounters` on Redis; one EVALSHA per call. `url` as redis-py takes it."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_connections: int = 64,
        client: Any = None,
    ) -> None:
        self.url = url
        self.prefix = prefix
        if client is None:
            # Blocking pool: a burst of concurrent calls waits for a connection (bounded)
            # instead of failing with "too many connections".
            pool = aioredis.BlockingConnectionPool.from_url(
                url,
                max_connections=max_connections,
                timeout=POOL_WAIT_S,
                socket_timeout=max(timeout_s, READ_TIMEOUT_S),
                socket_connect_timeout=timeout_s,
                decode_responses=True,
            )
            client = aioredis.Redis(connection_pool=pool)
        self.client: Any = client
        self._sha: dict[str, str] = {}

    def keys_of(self, lim: CounterLimit) -> list[str]:
        base = f"{self.prefix}{lim.algorithm}:{round(lim.window_s * 1000)}:{lim.key}"
        return [base, base + ":log"]

    async def _run(self, name: str, script: str, keys: list[str], args: list[str]) -> list[Any]:
        try:
            sha = self._sha.get(name)
            if sha is None:
                sha = self._sha[name] = await self.client.script_load(script)
            try:
                reply = await self.client.evalsha(sha, len(keys), *keys, *args)
            except NoScriptError:  # the server restarted or its script cache was flushed
                self._sha[name] = await self.client.script_load(script)
                reply = await self.client.evalsha(self._sha[name], len(keys), *keys, *args)
        except (RedisError, OSError) as exc:
            raise CounterStoreUnavailable(f"redis counter store {redact(self.url)}: {exc}") from exc
        return list(reply)

    async def acquire(
        self, limits: Sequence[CounterLimit], *, dry_run: bool = False, force: bool = False
    ) -> AcquireResult:
        if not limits:
            return AcquireResult(True, ())
        for lim in limits:
            _validate(lim)
        keys: list[str] = []
        args = ["1" if force else "0", "1" if dry_run else "0"]
        for lim in limits:
            keys += self.keys_of(lim)
            args += [lim.algorithm, _num(lim.limit), _num(lim.window_s * 1000), _num(lim.cost)]
        reply = await self._run("acquire", ACQUIRE, keys, args)
        admitted = int(reply[0]) == 1
        retry_ms = float(reply[1])
        states = _states(limits, reply[2:])
        retry = 0.0 if admitted else (math.inf if retry_ms < 0 else retry_ms / 1000)
        return AcquireResult(admitted, states, retry)

    async def adjust(self, limits: Sequence[CounterLimit]) -> tuple[CounterState, ...]:
        if not limits:
            return ()
        for lim in limits:
            _validate(lim)
        keys: list[str] = []
        args: list[str] = []
        for lim in limits:
            keys += self.keys_of(lim)
            args += [lim.algorithm, _num(lim.limit), _num(lim.window_s * 1000), _num(lim.cost)]
        return _states(limits, await self._run("adjust", ADJUST, keys, args))

    async def ping(self) -> None:
        """Raise CounterStoreUnavailable unless the store answers."""
        try:
            await self.client.ping()
        except (RedisError, OSError) as exc:
            raise CounterStoreUnavailable(f"redis counter store {redact(self.url)}: {exc}") from exc

    async def close(self) -> None:
        await self.client.aclose(close_connection_pool=True)


def _states(limits: Sequence[CounterLimit], flat: Sequence[Any]) -> tuple[CounterState, ...]:
    return tuple(
        CounterState(lim.limit, float(flat[2 * i]), float(flat[2 * i + 1]) / 1000)
        for i, lim in enumerate(limits)
    )


def counters_from_config(backend: str, redis_url: str) -> Any:
    """The host's counter store for `counters: {backend, redis_url}` (None: the default memory store)."""
    if backend == "redis":
        return RedisCounters(redis_url)
    return None
