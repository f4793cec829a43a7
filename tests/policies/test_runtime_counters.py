"""sdk.counters.MemoryCounters on a simulated clock: the three algorithms, all-or-nothing, adjust."""

from __future__ import annotations

import math
import threading

import pytest

from celgate.sdk.counters import AsyncCounters, AsyncMemoryCounters, CounterLimit, Counters, MemoryCounters


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def lim(
    key: str = "k", algorithm: str = "sliding-window", limit: float = 2, window: float = 1.0, cost: float = 1
) -> CounterLimit:
    return CounterLimit(key, algorithm, limit, window, cost)  # type: ignore[arg-type]


def test_memory_counters_implement_the_protocols() -> None:
    assert isinstance(MemoryCounters(), Counters)
    assert isinstance(AsyncMemoryCounters(), AsyncCounters)


def test_sliding_window_frees_each_request_one_window_after_it() -> None:
    clock = Clock()
    c = MemoryCounters(clock)
    assert c.acquire([lim()]).admitted
    clock.t = 0.5
    assert c.acquire([lim()]).admitted
    clock.t = 0.9
    denied = c.acquire([lim()])
    assert not denied.admitted
    assert denied.retry_after_s == pytest.approx(0.1)
    assert denied.states[0].remaining == 0
    clock.t = 1.0  # the first request left the window
    assert c.acquire([lim()]).admitted
    clock.t = 1.2
    assert not c.acquire([lim()]).admitted


def test_fixed_window_resets_at_the_boundary() -> None:
    clock = Clock()
    c = MemoryCounters(clock)
    f = lim(algorithm="fixed-window", limit=2, window=10)
    clock.t = 8
    assert c.acquire([f]).admitted and c.acquire([f]).admitted
    denied = c.acquire([f])
    assert not denied.admitted and denied.retry_after_s == pytest.approx(2)
    clock.t = 10
    state = c.acquire([f])
    assert state.admitted and state.states[0].remaining == 1
    assert state.states[0].reset_s == pytest.approx(10)


def test_token_bucket_refills_continuously() -> None:
    clock = Clock()
    c = MemoryCounters(clock)
    b = lim(algorithm="token-bucket", limit=10, window=10, cost=10)  # 1 token per second
    assert c.acquire([b]).admitted
    one = lim(algorithm="token-bucket", limit=10, window=10, cost=1)
    denied = c.acquire([one])
    assert not denied.admitted and denied.retry_after_s == pytest.approx(1)
    clock.t = 3
    r = c.acquire([one])
    assert r.admitted and r.states[0].remaining == pytest.approx(2)


def test_acquire_is_all_or_nothing() -> None:
    c = MemoryCounters(Clock())
    small, big = lim("a", limit=1), lim("b", limit=5)
    assert c.acquire([small, big]).admitted
    denied = c.acquire([small, big])
    assert not denied.admitted
    assert denied.states[1].remaining == 4  # nothing taken from b
    assert c.acquire([big]).states[0].remaining == 3


def test_dry_run_takes_nothing_and_force_takes_anyway() -> None:
    c = MemoryCounters(Clock())
    one = lim(limit=1)
    assert c.acquire([one], dry_run=True).admitted
    assert c.acquire([one]).admitted
    forced = c.acquire([one], force=True)
    assert not forced.admitted  # reported as over the limit...
    assert c.adjust([lim(limit=1, cost=-1)])[0].remaining == 0  # ...and it was counted (2 taken, 1 refunded)


def test_adjust_settles_and_refunds() -> None:
    clock = Clock()
    c = MemoryCounters(clock)
    tok = lim(algorithm="fixed-window", limit=1000, window=60, cost=400)
    c.acquire([tok])
    assert c.adjust([lim(algorithm="fixed-window", limit=1000, window=60, cost=200)])[0].remaining == 400
    assert c.adjust([lim(algorithm="fixed-window", limit=1000, window=60, cost=-550)])[0].remaining == 950


def test_sliding_window_refund_comes_off_the_newest_entries() -> None:
    clock = Clock()
    c = MemoryCounters(clock)
    c.acquire([lim(limit=100, window=10, cost=30)])
    clock.t = 5
    c.acquire([lim(limit=100, window=10, cost=50)])
    assert c.adjust([lim(limit=100, window=10, cost=-40)])[0].remaining == 60
    clock.t = 10.5  # the first entry (30) expires; 10 of the second remain
    assert c.acquire([lim(limit=100, window=10, cost=0)]).states[0].remaining == 90


def test_cost_above_the_limit_never_fits() -> None:
    c = MemoryCounters(Clock())
    r = c.acquire([lim(algorithm="token-bucket", limit=5, cost=6)])
    assert not r.admitted and math.isinf(r.retry_after_s)


@pytest.mark.parametrize(
    "bad",
    [
        lim(algorithm="leaky"),
        lim(window=0),
        lim(limit=-1),
        lim(cost=math.nan),
    ],
)
def test_invalid_limits_raise_value_error(bad: CounterLimit) -> None:
    with pytest.raises(ValueError):
        MemoryCounters().acquire([bad])


def test_concurrent_acquires_admit_exactly_the_limit() -> None:
    c = MemoryCounters(Clock())
    admitted = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        for _ in range(50):
            admitted.append(c.acquire([lim(limit=100, window=60)]).admitted)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(admitted) == 100


def test_idle_counters_are_swept() -> None:
    clock = Clock()
    c = MemoryCounters(clock)
    c.SWEEP_EVERY = 10
    for i in range(9):
        c.acquire([lim(f"k{i}", algorithm="fixed-window")])
    assert len(c) == 9
    clock.t = 100
    c.acquire([lim("fresh", algorithm="fixed-window")])
    assert len(c) == 1


async def test_async_wrapper_delegates() -> None:
    c = AsyncMemoryCounters(MemoryCounters(Clock()))
    assert (await c.acquire([lim(limit=1)])).admitted
    assert not (await c.acquire([lim(limit=1)])).admitted
    assert (await c.adjust([lim(limit=1, cost=-1)]))[0].remaining == 1
