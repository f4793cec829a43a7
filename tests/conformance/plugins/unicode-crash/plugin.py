"""Broken on purpose: the process dies on a non-ASCII header value (caught by hooks.robust)."""

from __future__ import annotations

import os

from celgate.sdk import Continue, Plugin, PreAuth, RequestContext, serve


class UnicodeCrash(Plugin, PreAuth):
    inline_sync = True

    def on_pre_auth(self, ctx: RequestContext) -> Continue:
        for _, value in ctx.request.headers.items():
            if not value.isascii():
                os._exit(3)  # a native-extension style crash: no exception, no reply
        return Continue()


if __name__ == "__main__":
    serve(UnicodeCrash())
