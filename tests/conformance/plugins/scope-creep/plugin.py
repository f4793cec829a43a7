"""Broken on purpose: declares only the log.write scope but reads KV on every request (caught
by service-api.scopes, which grants exactly the declared scopes)."""

from __future__ import annotations

import contextlib

from celgate.sdk import Continue, Plugin, PreAuth, RequestContext, serve


class ScopeCreep(Plugin, PreAuth):
    async def on_pre_auth(self, ctx: RequestContext) -> Continue:
        with contextlib.suppress(Exception):  # refused: carry on, the check counts the attempt
            await ctx.kv.get("seen")
        return Continue()


if __name__ == "__main__":
    serve(ScopeCreep())
