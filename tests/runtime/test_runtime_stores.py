"""KV stores (memory and SQLite) and the event bus, without processes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from celgate.engine.eventbus import EventBus, matches
from celgate.engine.kv import KVError, KVStore, MemoryKV, SQLiteKV


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[KVStore, Clock]]:
    clock = Clock()
    kv: KVStore = MemoryKV(clock) if request.param == "memory" else SQLiteKV(tmp_path / "kv.db", clock)
    yield kv, clock
    await kv.close()


async def test_set_get_delete(store: tuple[KVStore, Clock]) -> None:
    kv, _ = store
    assert await kv.set("p1", "a", b"1") is True
    assert await kv.set("p1", "a", b"2") is False
    assert await kv.get("p1", "a") == b"2"
    assert await kv.get("p2", "a") is None
    assert await kv.delete("p1", "a") is True
    assert await kv.delete("p1", "a") is False


async def test_ttl_expires(store: tuple[KVStore, Clock]) -> None:
    kv, clock = store
    await kv.set("p", "short", b"x", ttl_ms=500)
    await kv.set("p", "forever", b"y")
    clock.now += 0.4
    assert await kv.get("p", "short") == b"x"
    clock.now += 0.2
    assert await kv.get("p", "short") is None
    assert await kv.list("p") == (["forever"], False)
    assert await kv.set("p", "short", b"z") is True  # an expired key counts as new


async def test_list_pages_by_prefix(store: tuple[KVStore, Clock]) -> None:
    kv, _ = store
    for i in range(5):
        await kv.set("p", f"user:{i}", b"v")
    await kv.set("p", "other", b"v")
    await kv.set("q", "user:9", b"v")
    keys, more = await kv.list("p", "user:", limit=2)
    assert (keys, more) == (["user:0", "user:1"], True)
    keys, more = await kv.list("p", "user:", limit=2, after="user:1")
    assert (keys, more) == (["user:2", "user:3"], True)
    assert await kv.list("p", "user:", limit=2, after="user:3") == (["user:4"], False)


async def test_bad_keys_are_refused(store: tuple[KVStore, Clock]) -> None:
    kv, _ = store
    with pytest.raises(KVError):
        await kv.set("p", "", b"v")
    with pytest.raises(KVError):
        await kv.set("p", "k" * 600, b"v")


def test_sqlite_kv_survives_reopen(tmp_path: Path) -> None:
    import asyncio

    async def run() -> bytes | None:
        first = SQLiteKV(tmp_path / "kv.db")
        await first.set("p", "k", b"kept")
        await first.close()
        second = SQLiteKV(tmp_path / "kv.db")
        try:
            return await second.get("p", "k")
        finally:
            await second.close()

    assert asyncio.run(run()) == b"kept"


@pytest.mark.parametrize(
    ("pattern", "topic", "expected"),
    [
        ("a.b", "a.b", True),
        ("a.b", "a.bc", False),
        ("a.*", "a.b", True),
        ("a.*", "a.b.c", True),
        ("a.*", "ab", False),
        ("a.*", "a", False),
        ("*", "anything", True),
    ],
)
def test_topic_matching(pattern: str, topic: str, expected: bool) -> None:
    assert matches(pattern, topic) is expected


async def test_bus_delivers_to_matching_subscribers_and_drops_oldest_when_full() -> None:
    bus = EventBus()
    system = bus.subscribe(["system.*"], size=2)
    exact = bus.subscribe(["system.app.created"])
    assert bus.publish("system.app.created", {"id": 1}) == 2
    assert bus.publish("system.llm.deleted", {"id": 2}) == 1
    assert bus.publish("system.tool.updated", {"id": 3}) == 1
    assert bus.publish("user.x", {}) == 0
    assert system.dropped == 1
    assert [(await system.get()).topic for _ in range(2)] == ["system.llm.deleted", "system.tool.updated"]
    assert (await exact.get()).payload == b'{"id": 1}'
    system.close()
    assert bus.subscriber_count == 1
    with pytest.raises(ValueError):
        bus.subscribe(["a*b"])
