"""Broken on purpose: its config schema names a type that does not exist (caught by
config.schema-valid)."""

from __future__ import annotations

from typing import Any

from celgate.sdk import ConfigProvider, Continue, Plugin, PreAuth, RequestContext, serve


class InvalidSchema(Plugin, PreAuth, ConfigProvider):
    inline_sync = True

    def config_schema(self) -> dict[str, Any]:
        return {"type": "object", "properties": {"limit": {"type": "integr", "minimum": "one"}}}

    def on_pre_auth(self, ctx: RequestContext) -> Continue:
        return Continue()


if __name__ == "__main__":
    serve(InvalidSchema())
