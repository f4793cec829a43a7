"""The plugin side of benchmarks/hook_hop.py: a pre_auth hook that looks at one header."""

from __future__ import annotations

from celgate.sdk import Continue, Plugin, PreAuth, RequestContext, Respond, serve


class Bench(Plugin, PreAuth):
    inline_sync = True

    def on_pre_auth(self, ctx: RequestContext) -> Continue | Respond:
        if ctx.request.headers.get("x-block"):
            return Respond(403)
        return Continue()


if __name__ == "__main__":
    serve(Bench())
