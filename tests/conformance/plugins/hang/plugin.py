"""Broken on purpose: never answers a DELETE request (caught by hooks.deadline)."""

from __future__ import annotations

import asyncio

from celgate.sdk import Continue, Plugin, PreAuth, RequestContext, serve


class Hang(Plugin, PreAuth):
    async def on_pre_auth(self, ctx: RequestContext) -> Continue:
        if ctx.request.method == "DELETE":
            await asyncio.sleep(3600)
        return Continue()


if __name__ == "__main__":
    serve(Hang())
