"""Test plugin for the Service API fast path: acquires counters and uses KV through ctx, and says
which transport its Service API client holds.

Actions (header x-test-action): acquire (a 3-per-minute fixed window on key x-key) | kv |
transport. Service API errors come back as {"code": NAME, "details": TEXT}.
"""

from __future__ import annotations

from typing import Any

import grpc

from celgate.sdk import CounterLimit, Plugin, PreAuth, RequestContext, Respond, serve


class FastCounter(Plugin, PreAuth):
    async def on_pre_auth(self, ctx: RequestContext) -> Any:
        action = ctx.request.headers.get("x-test-action", "")
        try:
            if action == "acquire":
                limit = CounterLimit(ctx.request.headers.get("x-key") or "k", "fixed-window", 3, 60.0)
                result = await ctx.counters.acquire([limit])
                return Respond.json(
                    200, {"admitted": result.admitted, "remaining": result.states[0].remaining}
                )
            if action == "kv":
                await ctx.kv.set("k", "v")
                return Respond.json(200, {"value": (await ctx.kv.get("k") or b"").decode()})
            if action == "transport":
                fast = ctx.services.conn._fast  # the fast client, if the host announced a socket
                return Respond.json(200, {"fast": fast.address if fast is not None else ""})
        except grpc.aio.AioRpcError as exc:
            return Respond.json(200, {"code": exc.code().name, "details": exc.details()})
        return Respond.json(400, {"error": f"unknown action {action!r}"})


if __name__ == "__main__":
    serve(FastCounter())
