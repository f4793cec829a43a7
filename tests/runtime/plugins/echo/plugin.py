"""A well-behaved test plugin: every request hook plus endpoints, data collection and events.

Headers steer it: x-test-action = block | modify | raise | sleep | kill | sync-sleep | kv | log |
counters | publish | runtime.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from typing import Any

from celgate.sdk import (
    Auth,
    Authenticated,
    ConfigProvider,
    Context,
    Continue,
    CounterLimit,
    CustomEndpoints,
    DataCollector,
    DataRecord,
    EndpointRequest,
    Event,
    EventSubscriber,
    HttpResponse,
    Identity,
    Modify,
    Plugin,
    PostAuth,
    PreAuth,
    Rejected,
    RequestContext,
    Respond,
    Response,
    ResponseChunk,
    ResponseEnd,
    ResponseHead,
    Route,
    StreamResponse,
    serve,
)


class Echo(
    Plugin, PreAuth, Auth, PostAuth, Response, DataCollector, CustomEndpoints, ConfigProvider, EventSubscriber
):
    response_chunks = True
    subscriptions = ["test.*"]

    def __init__(self) -> None:
        self.config: dict[str, Any] = {}
        self.runtime = ""
        self.collected: list[DataRecord] = []
        self.events: list[Event] = []
        self.heard: list[Event] = []
        self.listener: asyncio.Task[None] | None = None

    async def configure(self, ctx: Context, config: dict[str, Any]) -> None:
        self.config = config
        self.runtime = ctx.runtime
        if config.get("fail_configure"):
            raise ValueError("configure was told to fail")

    def config_schema(self) -> dict[str, Any]:
        return {"type": "object", "properties": {"greeting": {"type": "string"}}}

    async def on_pre_auth(self, ctx: RequestContext) -> Any:
        action = ctx.request.headers.get("x-test-action", "")
        if action == "block":
            return Respond.json(403, {"error": "blocked", "runtime": ctx.runtime})
        if action == "modify":
            return Modify(set_headers={"x-seen": "echo"}, metadata={"seen": "1"})
        if action == "raise":
            raise RuntimeError("the handler failed on purpose")
        if action == "sleep":
            await asyncio.sleep(float(ctx.request.headers.get("x-sleep", "5")))
        if action == "freeze":  # block the whole event loop: health checks fail too
            time.sleep(float(ctx.request.headers.get("x-sleep", "60")))
        if action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if action == "runtime":
            return Respond(200, [], json.dumps({"runtime": ctx.runtime, "configured": self.runtime}).encode())
        if action == "kv":
            key = ctx.request.headers.get("x-key", "k")
            value = ctx.request.headers.get("x-value")
            if value is not None:
                await ctx.kv.set(key, value)
            got = await ctx.kv.get(key)
            keys, _ = await ctx.kv.list("")
            return Respond.json(200, {"value": got.decode() if got else None, "keys": keys})
        if action == "log":
            ctx.log.warning("hello from the plugin", request=ctx.request.id)
        if action == "counters":
            limit = CounterLimit("c", "fixed-window", 2, 60.0)
            result = await ctx.counters.acquire([limit])
            return Respond.json(200, {"admitted": result.admitted, "remaining": result.states[0].remaining})
        if action == "publish":
            await ctx.events.publish("test.ping", {"from": ctx.plugin_id})
        if action == "print":
            print("printed line one", flush=True)  # stdout is reserved: serve() sends this to stderr
            print("stderr line two", file=sys.stderr, flush=True)
        if action == "child":
            import subprocess

            child = subprocess.Popen(["sleep", "60"])
            return Respond.json(200, {"pid": child.pid})
        if action == "listen":
            self.listener = asyncio.create_task(self._listen(ctx))
        if action == "heard":
            return Respond.json(200, {"heard": [[e.topic, e.payload, e.origin] for e in self.heard]})
        if action == "events":
            return Respond.json(200, {"events": [[e.topic, e.payload, e.origin] for e in self.events]})
        return Continue()

    async def _listen(self, ctx: RequestContext) -> None:
        async for event in ctx.events.subscribe(["sub.*"]):
            self.heard.append(event)

    async def authenticate(self, ctx: RequestContext, credential: str) -> Any:
        if credential == "good":
            return Authenticated(Identity(app_id="app1", user_id="u1", groups=["g"]))
        return Rejected(401, "bad credential")

    def on_post_auth(self, ctx: RequestContext) -> Any:  # a sync handler: runs in a worker thread
        if ctx.request.headers.get("x-test-action") == "sync-kv":
            ctx.run(ctx.kv.set("from-thread", "yes"))
            value = ctx.run(ctx.kv.get("from-thread"))
            return Respond(200, [], value or b"")
        if ctx.request.headers.get("x-test-action") == "sync-sleep":
            time.sleep(float(ctx.request.headers.get("x-sleep", "5")))
        return Modify(add_headers=[("x-post", ctx.identity.app_id)])

    def on_response_headers(self, ctx: RequestContext, head: ResponseHead) -> ResponseHead | None:
        head.headers.add("x-echo", "1")
        return head

    async def on_response_chunk(self, ctx: RequestContext, chunk: ResponseChunk) -> bytes | None:
        return chunk.data.upper() + f"#{chunk.index}".encode()

    async def on_response_end(self, ctx: RequestContext, end: ResponseEnd) -> bytes | None:
        return f"[end {end.chunks}]".encode()

    def collect(self, ctx: Context, records: list[DataRecord]) -> int:
        for record in records:  # "/block-until:PATH": a slow call the test releases by creating PATH
            if record.path.startswith("/block-until:"):
                gate = record.path.split(":", 1)[1]
                deadline = time.monotonic() + 20
                while not os.path.exists(gate) and time.monotonic() < deadline:
                    time.sleep(0.01)
        self.collected.extend(records)
        return len(records)

    def routes(self) -> list[Route]:
        return [Route("/hello", ["GET"]), Route("/stream", ["GET"], stream=True)]

    async def handle_endpoint(self, ctx: Context, request: EndpointRequest) -> HttpResponse | StreamResponse:
        if request.path == "/stream":

            async def chunks() -> Any:
                for i in range(3):
                    yield f"part{i};".encode()

            return StreamResponse(chunks(), status=200, headers=[("content-type", "text/plain")])
        return HttpResponse.json(
            {"hello": self.config.get("greeting", "world"), "collected": len(self.collected)}
        )

    def on_event(self, ctx: Context, event: Event) -> None:
        self.events.append(event)


if __name__ == "__main__":
    serve(Echo())
