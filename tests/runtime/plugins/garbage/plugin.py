"""Broken on purpose: prints to stdout before the handshake."""

from __future__ import annotations

from celgate.sdk import Continue, Plugin, PreAuth, RequestContext, serve


class Garbage(Plugin, PreAuth):
    def on_pre_auth(self, ctx: RequestContext) -> Continue:
        return Continue()


if __name__ == "__main__":
    print("Hello! Starting up...", flush=True)
    serve(Garbage())
