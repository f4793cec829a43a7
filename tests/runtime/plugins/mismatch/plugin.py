"""Broken on purpose: implements pre_auth and post_auth but its manifest declares pre_auth and auth."""

from __future__ import annotations

from celgate.sdk import Continue, Plugin, PostAuth, PreAuth, RequestContext, serve


class Mismatch(Plugin, PreAuth, PostAuth):
    def on_pre_auth(self, ctx: RequestContext) -> Continue:
        return Continue()

    def on_post_auth(self, ctx: RequestContext) -> Continue:
        return Continue()


if __name__ == "__main__":
    serve(Mismatch())
