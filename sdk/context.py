"""What a handler receives as `ctx`: who the plugin is, where it runs, and the Service API.

`Context` is given to lifecycle calls and capabilities without a request; `RequestContext`
adds the request, the caller's identity, the LLM and metadata set by earlier plugins.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from celgate.sdk.host import KV, Approvals, Counters, Events, HostConnection, Log, Objects, Schedules
from celgate.sdk.types import LLM, Identity, Request

T = TypeVar("T")


class Services:
    """The Service API clients of one plugin process (built once by `serve()`)."""

    def __init__(self, conn: HostConnection, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.conn = conn
        self.loop = loop
        self.kv = KV(conn)
        self.log = Log(conn, loop)
        self.events = Events(conn)
        self.counters = Counters(conn)
        self.objects = Objects(conn)
        self.schedules = Schedules(conn)
        self.approvals = Approvals(conn)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.log.bind(loop)


_OFFLINE = Services(HostConnection("", "", ""))


@dataclass(slots=True)
class Context:
    plugin_id: str = ""
    runtime: str = ""  # "gateway" | "studio", as given by the host
    services: Services = field(default=_OFFLINE, repr=False, compare=False)

    @property
    def kv(self) -> KV:
        return self.services.kv

    @property
    def log(self) -> Log:
        return self.services.log

    @property
    def events(self) -> Events:
        return self.services.events

    @property
    def counters(self) -> Counters:
        return self.services.counters

    @property
    def objects(self) -> Objects:
        return self.services.objects

    @property
    def schedules(self) -> Schedules:
        return self.services.schedules

    @property
    def approvals(self) -> Approvals:
        return self.services.approvals

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = 30.0) -> T:
        """Run a Service API coroutine from a sync handler (worker thread) and wait for it."""
        loop = self.services.loop
        if loop is None:
            return asyncio.run(coro)
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            coro.close()
            raise RuntimeError("ctx.run() blocks: use `await` inside async handlers")
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)


@dataclass(slots=True)
class RequestContext(Context):
    request: Request = field(default_factory=Request)
    identity: Identity = field(default_factory=Identity)
    llm: LLM = field(default_factory=LLM)
    metadata: dict[str, str] = field(default_factory=dict)
    received_unix_ms: int = 0
