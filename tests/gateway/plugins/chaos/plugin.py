"""chaos: a pre_auth test plugin that misbehaves on request.

A request header `x-chaos-<plugin id>` chooses: `hang` (sleep far past any deadline), `crash`
(the process exits at once, mid-request), `error` (the handler raises); anything else, or no
header, continues. The same file serves several ids: tests copy the folder and change the id.
"""

from __future__ import annotations

import asyncio
import os

from celgate.sdk import Continue, Plugin, PreAuth, RequestContext, serve


class Chaos(Plugin, PreAuth):
    async def on_pre_auth(self, ctx: RequestContext) -> Continue:
        action = ctx.request.headers.get(f"x-chaos-{self.id}", "")
        if action == "hang":
            await asyncio.sleep(60)
        elif action == "crash":
            os._exit(17)
        elif action == "error":
            raise RuntimeError("chaos: asked to fail")
        return Continue()


if __name__ == "__main__":
    serve(Chaos())
