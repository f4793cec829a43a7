"""Broken on purpose: its shutdown() never returns, so the process outlives the grace period
(caught by lifecycle.shutdown)."""

from __future__ import annotations

import asyncio

from celgate.sdk import Continue, Plugin, PreAuth, RequestContext, serve


class IgnoresShutdown(Plugin, PreAuth):
    async def shutdown(self) -> None:
        await asyncio.sleep(3600)

    async def on_pre_auth(self, ctx: RequestContext) -> Continue:
        return Continue()


if __name__ == "__main__":
    serve(IgnoresShutdown())
