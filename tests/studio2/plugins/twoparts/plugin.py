"""A test plugin run as two processes, one per runtime: the studio part's task publishes
`twoparts.from-studio`; the gateway part records it in KV and answers `twoparts.from-gateway`,
which the studio part records too. Both parts share one KV namespace (one plugin identity)."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from celgate.sdk import EventSubscriber, Plugin, ScheduledTasks, serve
from celgate.sdk.types import Event, ScheduledTask


class TwoParts(Plugin, EventSubscriber, ScheduledTasks):
    subscriptions: ClassVar[list[str]] = ["twoparts.*"]

    async def run_task(self, ctx: Any, task: ScheduledTask) -> str:
        await ctx.events.publish("twoparts.from-studio", {"run": task.run_id, "runtime": ctx.runtime})
        return "published"

    async def on_event(self, ctx: Any, event: Event) -> None:
        mine = f"twoparts.from-{ctx.runtime}"
        if event.topic == mine:
            return  # our own publication, echoed back by the bus
        record = {"topic": event.topic, "origin": event.origin, "payload": event.payload}
        await ctx.kv.set(f"seen-by-{ctx.runtime}", json.dumps(record))
        if ctx.runtime == "gateway":
            await ctx.events.publish("twoparts.from-gateway", {"echo": event.payload, "runtime": ctx.runtime})


if __name__ == "__main__":
    serve(TwoParts())
