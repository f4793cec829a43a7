"""The in-process event bus: topics, exact and prefix (`x.*`) subscriptions, bounded queues.

Publishing never blocks: a subscriber whose queue is full loses the oldest event (and the loss
is counted), so a slow plugin cannot stall the host.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("celgate.events")

QUEUE_SIZE = 1000


@dataclass(frozen=True, slots=True)
class BusEvent:
    topic: str
    payload: bytes  # JSON
    origin: str  # the publishing plugin id, or "host"
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    unix_ms: int = field(default_factory=lambda: int(time.time() * 1000))


def matches(pattern: str, topic: str) -> bool:
    """`a.b` matches only `a.b`; `a.*` matches `a.b` and `a.b.c`; `*` matches everything."""
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return topic.startswith(pattern[:-1])
    return pattern == topic


def valid_pattern(pattern: str) -> bool:
    body = pattern[:-2] if pattern.endswith(".*") else pattern
    return pattern == "*" or (bool(body) and "*" not in body)


class Subscription:
    def __init__(self, bus: EventBus, patterns: Sequence[str], size: int) -> None:
        self.id = next(bus._ids)
        self.patterns = tuple(patterns)
        self.queue: asyncio.Queue[BusEvent] = asyncio.Queue(maxsize=size)
        self.dropped = 0
        self._bus = bus

    def offer(self, event: BusEvent) -> None:
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(event)

    async def get(self) -> BusEvent:
        return await self.queue.get()

    def close(self) -> None:
        self._bus._subs.pop(self.id, None)

    async def __aiter__(self) -> AsyncIterator[BusEvent]:
        try:
            while True:
                yield await self.queue.get()
        finally:
            self.close()


class EventBus:
    def __init__(self) -> None:
        self._subs: dict[int, Subscription] = {}
        self._ids = itertools.count(1)

    def subscribe(self, patterns: Sequence[str], size: int = QUEUE_SIZE) -> Subscription:
        bad = [p for p in patterns if not valid_pattern(p)]
        if bad or not patterns:
            raise ValueError(
                f"invalid topic patterns {bad or list(patterns)}: use exact topics or a 'prefix.*'"
            )
        sub = Subscription(self, patterns, size)
        self._subs[sub.id] = sub
        return sub

    def publish(self, topic: str, payload: Any, origin: str = "host") -> int:
        """Publish a JSON value (or JSON bytes) on `topic`; returns how many subscriptions got it."""
        data = bytes(payload) if isinstance(payload, bytes | bytearray) else json.dumps(payload).encode()
        return self.publish_event(BusEvent(topic=topic, payload=data, origin=origin))

    def publish_event(self, event: BusEvent) -> int:
        delivered = 0
        for sub in list(self._subs.values()):
            if any(matches(p, event.topic) for p in sub.patterns):
                sub.offer(event)
                delivered += 1
        return delivered

    @property
    def subscriber_count(self) -> int:
        return len(self._subs)
