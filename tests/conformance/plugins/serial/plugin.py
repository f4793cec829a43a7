"""Broken on purpose: handles one hook call at a time and takes 250 ms over each, so a burst
of calls queues up past the deadline (caught by hooks.concurrent). One call alone is fast
enough for hooks.deadline."""

from __future__ import annotations

import asyncio

from celgate.sdk import Continue, Plugin, PreAuth, RequestContext, serve


class Serial(Plugin, PreAuth):
    def __init__(self) -> None:
        self.lock: asyncio.Lock | None = None

    async def on_pre_auth(self, ctx: RequestContext) -> Continue:
        self.lock = self.lock or asyncio.Lock()
        async with self.lock:
            await asyncio.sleep(0.25)
        return Continue()


if __name__ == "__main__":
    serve(Serial())
