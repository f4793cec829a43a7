"""Rate-limit counters: the `Counters` protocol and a dependency-free in-memory implementation.

The shape mirrors the host's Service API (`CounterAcquire` / `CounterAdjust` in
`protos/celgate/v1/host.proto`) with durations in seconds instead of milliseconds:
`CounterLimit(key, algorithm, limit, window_s, cost)`, `CounterState(limit, remaining, reset_s)`,
`AcquireResult(admitted, states, retry_after_s)`. The host's counter service, a Redis store and
`MemoryCounters` all implement it, so the rate-limit decision procedure runs unchanged on top
of any of them (tests use `MemoryCounters` with a simulated clock).

Algorithms (per counter; a counter is identified by key, algorithm and window):
- ``fixed-window``: usage in the current window `[floor(t / w) * w, ... + w)`; resets at its end.
- ``sliding-window``: exact sliding log: the sum of costs taken in the last `w` seconds.
- ``token-bucket``: capacity `limit`, refilled continuously at `limit / w` per second.

`acquire` is all-or-nothing across the limits given: every limit must have room for its
cost, or nothing is taken. `force=True` takes even when over (audit mode counts without
blocking); `dry_run=True` reports what would happen and takes nothing. `adjust` applies a
signed delta (settlement after the response, refunds) and never rejects.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

Algorithm = Literal["sliding-window", "fixed-window", "token-bucket"]
ALGORITHMS: tuple[str, ...] = ("sliding-window", "fixed-window", "token-bucket")


@dataclass(frozen=True, slots=True)
class CounterLimit:
    """One limit to take from: `cost` units of `limit` per `window_s` seconds under `key`."""

    key: str
    algorithm: Algorithm
    limit: float
    window_s: float
    cost: float = 1.0


@dataclass(frozen=True, slots=True)
class CounterState:
    """A limit after the call: what is left and in how many seconds it has room again."""

    limit: float
    remaining: float
    reset_s: float


@dataclass(frozen=True, slots=True)
class AcquireResult:
    admitted: bool
    states: tuple[CounterState, ...]  # one per limit, in request order
    retry_after_s: float = 0.0  # when not admitted: until every limit has room


@runtime_checkable
class Counters(Protocol):
    """Synchronous counter store."""

    def acquire(
        self, limits: Sequence[CounterLimit], *, dry_run: bool = False, force: bool = False
    ) -> AcquireResult: ...

    def adjust(self, limits: Sequence[CounterLimit]) -> tuple[CounterState, ...]: ...


@runtime_checkable
class AsyncCounters(Protocol):
    """Asynchronous counter store (the host's RPC client, Redis)."""

    async def acquire(
        self, limits: Sequence[CounterLimit], *, dry_run: bool = False, force: bool = False
    ) -> AcquireResult: ...

    async def adjust(self, limits: Sequence[CounterLimit]) -> tuple[CounterState, ...]: ...


@dataclass(slots=True)
class _Counter:
    algorithm: str
    window_s: float
    used: float = 0.0  # fixed window: usage in `window_start`; bucket: tokens *missing*
    window_start: float = -math.inf
    stamp: float = 0.0  # bucket: last refill time
    log: deque[list[float]] = field(default_factory=deque)  # sliding: [time, cost] oldest first
    log_sum: float = 0.0


def _validate(lim: CounterLimit) -> None:
    if lim.algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {lim.algorithm!r}")
    if not (lim.window_s > 0 and math.isfinite(lim.window_s)):
        raise ValueError(f"window must be a positive number of seconds, not {lim.window_s!r}")
    if not (lim.limit >= 0 and math.isfinite(lim.limit)):
        raise ValueError(f"limit must be a non-negative number, not {lim.limit!r}")
    if not math.isfinite(lim.cost):
        raise ValueError(f"cost must be finite, not {lim.cost!r}")


class MemoryCounters:
    """Counters in this process's memory; thread-safe; `clock` returns seconds (monotonic)."""

    SWEEP_EVERY = 4096

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._counters: dict[tuple[str, str, float], _Counter] = {}
        self._ops = 0

    # -- public API ---------------------------------------------------------------------

    def acquire(
        self, limits: Sequence[CounterLimit], *, dry_run: bool = False, force: bool = False
    ) -> AcquireResult:
        for lim in limits:
            _validate(lim)
        if len(limits) == 1:
            return self._acquire_one(limits[0], dry_run, force)
        with self._lock:
            now = self._clock()
            counters = [self._counter(lim, now) for lim in limits]
            waits = [self._wait_for_room(c, lim, now) for c, lim in zip(counters, limits, strict=True)]
            admitted = all(w == 0.0 for w in waits)
            if (admitted or force) and not dry_run:
                for c, lim in zip(counters, limits, strict=True):
                    self._take(c, lim, lim.cost, now)
            states = tuple(self._state(c, lim, now) for c, lim in zip(counters, limits, strict=True))
            self._maybe_sweep(now)
        return AcquireResult(admitted, states, 0.0 if admitted else max(waits))

    def _acquire_one(self, lim: CounterLimit, dry_run: bool, force: bool) -> AcquireResult:
        """`acquire` of a single limit (the common case), without the per-limit lists."""
        with self._lock:
            now = self._clock()
            c = self._counter(lim, now)
            wait = self._wait_for_room(c, lim, now)
            if (wait == 0.0 or force) and not dry_run:
                self._take(c, lim, lim.cost, now)
            state = self._state(c, lim, now)
            self._maybe_sweep(now)
        return AcquireResult(wait == 0.0, (state,), wait)

    def adjust(self, limits: Sequence[CounterLimit]) -> tuple[CounterState, ...]:
        for lim in limits:
            _validate(lim)
        with self._lock:
            now = self._clock()
            states = []
            for lim in limits:
                c = self._counter(lim, now)
                self._take(c, lim, lim.cost, now)
                states.append(self._state(c, lim, now))
        return tuple(states)

    def __len__(self) -> int:
        return len(self._counters)

    # -- internals ------------------------------------------------------------------------

    def _counter(self, lim: CounterLimit, now: float) -> _Counter:
        ident = (lim.key, lim.algorithm, lim.window_s)
        c = self._counters.get(ident)
        if c is None:
            c = _Counter(lim.algorithm, lim.window_s, stamp=now)
            self._counters[ident] = c
        self._advance(c, lim, now)
        return c

    def _advance(self, c: _Counter, lim: CounterLimit, now: float) -> None:
        w = c.window_s
        if c.algorithm == "fixed-window":
            start = math.floor(now / w) * w
            if start != c.window_start:
                c.window_start, c.used = start, 0.0
        elif c.algorithm == "sliding-window":
            horizon = now - w
            while c.log and c.log[0][0] <= horizon:
                c.log_sum -= c.log.popleft()[1]
            if not c.log:
                c.log_sum = 0.0  # drop float drift
            c.used = c.log_sum
        else:  # token bucket: `used` is what is missing from a full bucket
            rate = lim.limit / w
            elapsed = max(0.0, now - c.stamp)
            c.used = max(0.0, c.used - elapsed * rate)
            c.stamp = max(c.stamp, now)

    def _wait_for_room(self, c: _Counter, lim: CounterLimit, now: float) -> float:
        """0 if `lim.cost` fits now, else seconds until it would (inf if it never can)."""
        if c.used + lim.cost <= lim.limit + 1e-9:
            return 0.0
        if lim.cost > lim.limit:
            return math.inf if c.algorithm == "token-bucket" or lim.limit == 0 else c.window_s
        if c.algorithm == "fixed-window":
            return max(1e-3, c.window_start + c.window_s - now)
        if c.algorithm == "sliding-window":
            need = c.used + lim.cost - lim.limit
            freed = 0.0
            for stamp, cost in c.log:
                freed += cost
                if freed >= need - 1e-9:
                    return max(1e-3, stamp + c.window_s - now)
            return c.window_s
        rate = lim.limit / c.window_s
        return max(1e-3, (c.used + lim.cost - lim.limit) / rate)

    def _take(self, c: _Counter, lim: CounterLimit, amount: float, now: float) -> None:
        if amount == 0:
            return
        if c.algorithm == "sliding-window":
            if amount > 0:
                c.log.append([now, amount])
                c.log_sum += amount
            else:  # refunds come off the newest entries (settlement follows its reservation)
                left = -amount
                while left > 0 and c.log:
                    newest = c.log[-1]
                    part = min(left, newest[1])
                    newest[1] -= part
                    c.log_sum -= part
                    left -= part
                    if newest[1] <= 0:
                        c.log.pop()
            c.used = c.log_sum
        else:
            c.used = max(0.0, c.used + amount)

    def _state(self, c: _Counter, lim: CounterLimit, now: float) -> CounterState:
        remaining = max(0.0, lim.limit - c.used)
        if c.used <= 0:
            reset = 0.0
        elif c.algorithm == "fixed-window":
            reset = c.window_start + c.window_s - now
        elif c.algorithm == "sliding-window":
            reset = c.log[0][0] + c.window_s - now if c.log else 0.0
        else:
            reset = c.used / (lim.limit / c.window_s) if lim.limit > 0 else c.window_s
        return CounterState(lim.limit, remaining, max(0.0, reset))

    def _maybe_sweep(self, now: float) -> None:
        self._ops += 1
        if self._ops % self.SWEEP_EVERY:
            return
        stale = []
        for ident, c in self._counters.items():
            if c.algorithm == "fixed-window":
                idle = now >= c.window_start + c.window_s
            elif c.algorithm == "sliding-window":
                idle = not c.log or c.log[-1][0] + c.window_s <= now
            else:
                idle = c.used <= 0 or now - c.stamp >= c.window_s
            if idle:
                stale.append(ident)
        for ident in stale:
            del self._counters[ident]


class AsyncMemoryCounters:
    """`MemoryCounters` behind the async protocol (for hosts that code against AsyncCounters)."""

    def __init__(self, inner: MemoryCounters | None = None) -> None:
        self.inner = inner if inner is not None else MemoryCounters()  # an empty store is falsy (__len__)

    async def acquire(
        self, limits: Sequence[CounterLimit], *, dry_run: bool = False, force: bool = False
    ) -> AcquireResult:
        return self.inner.acquire(limits, dry_run=dry_run, force=force)

    async def adjust(self, limits: Sequence[CounterLimit]) -> tuple[CounterState, ...]:
        return self.inner.adjust(limits)
