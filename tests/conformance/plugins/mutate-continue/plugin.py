"""Broken on purpose: "continues" by re-setting every header (values joined) and re-encoding
the body as UTF-8, which changes bytes but not meaning (caught by hooks.continue-preserves)."""

from __future__ import annotations

from celgate.sdk import Modify, Plugin, PreAuth, RequestContext, serve


class MutateContinue(Plugin, PreAuth):
    inline_sync = True

    def on_pre_auth(self, ctx: RequestContext) -> Modify:
        joined: dict[str, str] = {}
        for name, value in ctx.request.headers.items():
            key = name.lower()
            joined[key] = f"{joined[key]}, {value}" if key in joined else value
        body = ctx.request.body.decode("utf-8", "replace").encode()
        return Modify(set_headers=joined, body=body)


if __name__ == "__main__":
    serve(MutateContinue())
