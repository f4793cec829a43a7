"""Redis counters (engine/counters_redis.py) against the real Redis on 127.0.0.1:6379.

Skipped with a reason when no Redis answers there, except in CI (`CI` set), where that fails.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator

import pytest
from codegen_helpers import REDIS_URL, require_redis

from celgate.engine.counters_redis import CounterStoreUnavailable, RedisCounters
from celgate.sdk.counters import CounterLimit


@pytest.fixture
async def store() -> AsyncIterator[RedisCounters]:
    require_redis()
    prefix = f"celgate:test:{uuid.uuid4().hex}:"
    counters = RedisCounters(REDIS_URL, prefix=prefix)
    yield counters
    keys = [k async for k in counters.client.scan_iter(match=prefix + "*")]
    if keys:
        await counters.client.delete(*keys)
    await counters.close()


def lim(key: str, algorithm: str = "fixed-window", limit: float = 3, window_s: float = 60, cost: float = 1):
    return CounterLimit(key, algorithm, limit, window_s, cost)  # type: ignore[arg-type]


@pytest.mark.parametrize("algorithm", ["fixed-window", "sliding-window", "token-bucket"])
async def test_limit_admits_exactly_its_capacity_then_says_when(store: RedisCounters, algorithm: str) -> None:
    results = [await store.acquire([lim("k", algorithm)]) for _ in range(5)]
    assert [r.admitted for r in results] == [True, True, True, False, False]
    # (a token bucket refills continuously: a few microseconds of refill show up)
    assert [r.states[0].remaining for r in results[:3]] == pytest.approx([2, 1, 0], abs=0.01)
    denied = results[3]
    assert 0 < denied.retry_after_s <= 60
    assert denied.states[0].reset_s > 0


async def test_acquire_is_all_or_nothing_across_limits(store: RedisCounters) -> None:
    small, big = lim("small", limit=1), lim("big", limit=10)
    assert (await store.acquire([small, big])).admitted
    refused = await store.acquire([small, big])
    assert not refused.admitted
    assert refused.states[1].remaining == 9  # nothing was taken from the limit that had room
    assert (await store.acquire([big])).states[0].remaining == 8


async def test_force_takes_over_the_limit_and_dry_run_takes_nothing(store: RedisCounters) -> None:
    one = lim("f", limit=1)
    assert (await store.acquire([one], dry_run=True)).states[0].remaining == 1
    assert (await store.acquire([one])).admitted
    forced = await store.acquire([one], force=True)
    assert not forced.admitted and forced.states[0].remaining == 0
    assert not (await store.acquire([one], dry_run=True)).admitted


@pytest.mark.parametrize("algorithm", ["fixed-window", "sliding-window", "token-bucket"])
async def test_adjust_settles_reservations_both_ways(store: RedisCounters, algorithm: str) -> None:
    tokens = lim("t", algorithm, limit=1000, window_s=3600, cost=400)
    assert (await store.acquire([tokens])).admitted
    (after_refund,) = await store.adjust([lim("t", algorithm, 1000, 3600, -150)])
    assert after_refund.remaining == pytest.approx(750, abs=0.5)
    (after_charge,) = await store.adjust([lim("t", algorithm, 1000, 3600, 500)])
    assert after_charge.remaining == pytest.approx(250, abs=0.5)
    assert not (await store.acquire([lim("t", algorithm, 1000, 3600, 300)])).admitted


async def test_sliding_window_frees_room_as_entries_age(store: RedisCounters) -> None:
    short = lim("s", "sliding-window", limit=2, window_s=0.2)
    assert (await store.acquire([short])).admitted
    assert (await store.acquire([short])).admitted
    refused = await store.acquire([short])
    assert not refused.admitted and refused.retry_after_s <= 0.2
    deadline = asyncio.get_running_loop().time() + 5
    while not (await store.acquire([short])).admitted:  # bounded wait on the condition
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.02)


async def test_bad_limits_are_value_errors(store: RedisCounters) -> None:
    with pytest.raises(ValueError, match="window"):
        await store.acquire([lim("x", window_s=0)])
    with pytest.raises(ValueError, match="algorithm"):
        await store.acquire([lim("x", "leaky")])


async def test_unreachable_store_raises_a_clear_error() -> None:
    counters = RedisCounters("redis://:secret@127.0.0.1:1/0", timeout_s=0.2)
    with pytest.raises(CounterStoreUnavailable) as info:
        await counters.acquire([lim("x")])
    assert "127.0.0.1:1" in str(info.value) and "secret" not in str(info.value)
    await counters.close()


WORKER = textwrap.dedent(
    """
    import asyncio, sys
    from celgate.engine.counters_redis import RedisCounters
    from celgate.sdk.counters import CounterLimit

    async def main(url, prefix, n):
        store = RedisCounters(url, prefix=prefix)
        limit = CounterLimit("shared", "sliding-window", 100, 60, 1)
        results = await asyncio.gather(*(store.acquire([limit]) for _ in range(n)))
        print(sum(r.admitted for r in results))
        await store.close()

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
    """
)


async def test_two_processes_admit_exactly_the_limit(store: RedisCounters) -> None:
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", WORKER, REDIS_URL, store.prefix, "500", stdout=subprocess.PIPE
        )
        for _ in range(2)
    ]
    outputs = [await asyncio.wait_for(p.communicate(), 60) for p in procs]
    admitted = [int(out.decode()) for out, _ in outputs]
    assert sum(admitted) == 100, admitted


async def test_each_acquire_and_adjust_is_one_round_trip(store: RedisCounters) -> None:
    await store.acquire([lim("warm")])  # loads the script once
    await store.adjust([lim("warm", cost=-1)])
    sent: list[str] = []
    original = store.client.execute_command

    async def counting(*args: object, **kwargs: object) -> object:
        sent.append(str(args[0]))
        return await original(*args, **kwargs)

    store.client.execute_command = counting
    three = [lim("a"), lim("b", "sliding-window"), lim("c", "token-bucket")]
    await store.acquire(three)
    await store.adjust(three)
    assert sent == ["EVALSHA", "EVALSHA"]
