"""apikey-auth: API keys from the plugin's config -> identities; unknown keys are rejected.

Config:

    keys:
      - key_sha256: "<hex sha256 of the key>"   # preferred: the key itself is never stored
        app_id: billing
        user_id: alice
        groups: [finance]
        claims: {tier: gold}
      - key_env: DEMO_KEY                        # or: the key is in this environment variable
        app_id: demo
      - key: "sk-demo-only"                      # or: inline (development only)
        app_id: demo

Keys are compared by their SHA-256 digest, so lookups do not depend on how much of a
presented key matches a stored one.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from celgate.sdk import (
    Auth,
    Authenticated,
    ConfigProvider,
    Context,
    Identity,
    Plugin,
    Rejected,
    RequestContext,
    serve,
)

CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "keys": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "key": {"type": "string", "minLength": 1},
                    "key_sha256": {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"},
                    "key_env": {"type": "string", "minLength": 1},
                    "app_id": {"type": "string"},
                    "user_id": {"type": "string"},
                    "groups": {"type": "array", "items": {"type": "string"}},
                    "claims": {"type": "object", "additionalProperties": {"type": "string"}},
                },
            },
        }
    },
}


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeyAuth(Plugin, Auth, ConfigProvider):
    inline_sync = True  # a dict lookup: no need for a worker thread

    def __init__(self) -> None:
        self.identities: dict[str, Identity] = {}

    def config_schema(self) -> dict[str, Any]:
        return CONFIG_SCHEMA

    def configure(self, ctx: Context, config: dict[str, Any]) -> None:
        identities: dict[str, Identity] = {}
        for i, entry in enumerate(config.get("keys") or []):
            if not isinstance(entry, dict):
                raise ValueError(f"keys[{i}] must be a mapping")
            if entry.get("key_sha256"):
                digest = str(entry["key_sha256"]).lower()
            elif entry.get("key_env"):
                value = os.environ.get(str(entry["key_env"]), "")
                if not value:
                    raise ValueError(f"keys[{i}]: environment variable {entry['key_env']} is not set")
                digest = _digest(value)
            elif entry.get("key"):
                digest = _digest(str(entry["key"]))
            else:
                raise ValueError(f"keys[{i}] needs one of key_sha256, key_env or key")
            identities[digest] = Identity(
                authenticated=True,
                app_id=str(entry.get("app_id", "")),
                user_id=str(entry.get("user_id", "")),
                groups=[str(g) for g in entry.get("groups") or []],
                claims={str(k): str(v) for k, v in (entry.get("claims") or {}).items()},
            )
        self.identities = identities

    def authenticate(self, ctx: RequestContext, credential: str) -> Authenticated | Rejected:
        if not credential:
            return Rejected(401, "missing API key")
        identity = self.identities.get(_digest(credential))
        if identity is None:
            return Rejected(401, "invalid API key")
        return Authenticated(identity)


if __name__ == "__main__":
    serve(ApiKeyAuth())
