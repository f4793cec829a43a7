"""Helpers for the studio tests: a real SQLite file, a real uvicorn server, an HTTP client.

`studio_server(path, ...)` opens the studio on a SQLite file, serves its routes on a free
loopback port, and yields a `Studio` with an aiohttp client and the admin's token.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from starlette.applications import Starlette

from celgate.engine.eventbus import EventBus, Subscription
from celgate.engine.httpserver import AsgiServer, bind
from celgate.engine.objecthooks import HookRegistration, StaticTargets
from celgate.engine.studio_api import studio_routes
from celgate.engine.studio_state import StudioState, open_studio
from celgate.v1 import common_pb2, plugin_pb2

ADMIN_TOKEN = "cgt_test-admin-token-0123456789abcdef"


@dataclass
class Reply:
    status: int
    headers: Any  # case-insensitive (CIMultiDict)
    body: Any


@dataclass
class Studio:
    state: StudioState
    server: AsgiServer
    session: aiohttp.ClientSession
    bus: EventBus
    events: Subscription
    token: str = ADMIN_TOKEN

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> Reply:
        h = {"Authorization": f"Bearer {token or self.token}", **(headers or {})}
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if data is not None:
            h.setdefault("Content-Type", "application/json")
        async with self.session.request(method, self.server.url + path, data=data, headers=h) as resp:
            text = await resp.text()
            parsed = json.loads(text) if text else None
            return Reply(resp.status, resp.headers.copy(), parsed)

    async def user(self, uid: str, role: str = "member", groups: Sequence[str] = ()) -> str:
        """Create a user and return a fresh token for it."""
        r = await self.call(
            "POST",
            "/api/v1/users",
            {"id": uid, "email": f"{uid}@example.com", "role": role, "groups": list(groups)},
        )
        assert r.status == 201, r.body
        t = await self.call("POST", f"/api/v1/users/{uid}/tokens", {"name": "test"})
        assert t.status == 201, t.body
        return str(t.body["token"])

    async def next_event(self, topic: str, timeout: float = 5.0) -> dict[str, Any]:
        """The next event on `topic` (other topics are skipped), within a bounded wait."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {topic} event within {timeout}s")
            ev = await asyncio.wait_for(self.events.get(), remaining)
            if ev.topic == topic:
                payload: dict[str, Any] = json.loads(ev.payload)
                return payload

    def drain_topics(self) -> list[str]:
        topics = []
        while not self.events.queue.empty():
            topics.append(self.events.queue.get_nowait().topic)
        return topics


@contextlib.asynccontextmanager
async def studio_server(
    db: Path, targets: StaticTargets | None = None, **kwargs: Any
) -> AsyncIterator[Studio]:
    bus = EventBus()
    sub = bus.subscribe(["system.*"])
    kwargs.setdefault("admin_token", ADMIN_TOKEN)
    state = await open_studio(str(db), plugins=targets, events=bus, **kwargs)
    server = AsgiServer(Starlette(routes=studio_routes(state)), bind("127.0.0.1", 0), name="studio-test")
    await server.start()
    session = aiohttp.ClientSession()
    try:
        yield Studio(state, server, session, bus, sub)
    finally:
        await session.close()
        await server.stop()
        await state.close()


# ---------------------------------------------------------------------- in-process hook targets


Verdict = plugin_pb2.ObjectVerdict
Handler = Callable[[plugin_pb2.ObjectHookRequest], Any]


@dataclass
class FakeTarget:
    """An in-process `HookTarget`; `handler` returns an ObjectVerdict (or raises / hangs)."""

    plugin_id: str
    handler: Handler
    registrations: list[HookRegistration] = field(default_factory=list)
    failure_policy: str = "fail-closed"
    timeout: float = 2.0
    seen: list[plugin_pb2.ObjectHookRequest] = field(default_factory=list)

    async def call(self, request: plugin_pb2.ObjectHookRequest, timeout: float) -> plugin_pb2.ObjectVerdict:
        self.seen.append(request)
        result = self.handler(request)
        if asyncio.iscoroutine(result):
            result = await result
        assert isinstance(result, plugin_pb2.ObjectVerdict)
        return result


def regs(object_type: str, *hooks: str, priority: int = 100) -> list[HookRegistration]:
    return [HookRegistration(object_type, h, priority) for h in hooks]


def allow(_: plugin_pb2.ObjectHookRequest) -> plugin_pb2.ObjectVerdict:
    return Verdict(allow=common_pb2.Empty())
