"""Broken on purpose: takes far longer to start than any handshake timeout."""

from __future__ import annotations

import time

from celgate.sdk import Continue, Plugin, PreAuth, RequestContext, serve


class Slow(Plugin, PreAuth):
    def on_pre_auth(self, ctx: RequestContext) -> Continue:
        return Continue()


if __name__ == "__main__":
    time.sleep(30)
    serve(Slow())
