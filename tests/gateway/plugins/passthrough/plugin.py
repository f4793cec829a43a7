"""passthrough: a post_auth plugin that always continues (the benchmark's one-hop plugin)."""

from __future__ import annotations

from celgate.sdk import Continue, Plugin, PostAuth, RequestContext, serve

_CONTINUE = Continue()


class PassThrough(Plugin, PostAuth):
    inline_sync = True  # no work: answer on the event loop, no thread hop

    def on_post_auth(self, ctx: RequestContext) -> Continue:
        return _CONTINUE


if __name__ == "__main__":
    serve(PassThrough())
