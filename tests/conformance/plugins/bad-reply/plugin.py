"""Broken on purpose: refuses requests that carry an authorization header with a reply whose
content type says JSON but whose body is not (caught by hooks.reply-valid)."""

from __future__ import annotations

from celgate.sdk import Continue, Plugin, PreAuth, RequestContext, Respond, serve


class BadReply(Plugin, PreAuth):
    inline_sync = True

    def on_pre_auth(self, ctx: RequestContext) -> Continue | Respond:
        if "authorization" in ctx.request.headers:
            return Respond(403, [("content-type", "application/json")], b"{error: forbidden")
        return Continue()


if __name__ == "__main__":
    serve(BadReply())
