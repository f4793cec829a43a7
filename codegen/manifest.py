"""The manifest of a compiled plugin: identity, version (content hash), capabilities derived
from the policy kinds, the permissions they need and the config schema.

Capabilities: IPFilter -> pre_auth; RequestValidation -> post_auth (pre_auth with `phase:
pre_auth`); RateLimit -> post_auth + response (response only with token limits, the ones settled
from the response); ObjectApproval -> object_hooks; every compiled
plugin also answers config_provider (its config schema: no settings). Service API scopes
(`scopes`, docs/protocol.md): RateLimit needs `counters.use`. ObjectApproval declares the object
hooks it registers (`permissions.object_hooks`, which the studio requires).
"""

from __future__ import annotations

import json
from typing import Any

from celgate.codegen.bundle import Bundle
from celgate.codegen.policy_plugin import CONFIG_SCHEMA, capabilities_for, object_hook_pairs, plan_phase

ENTRYPOINT = "plugin.py"
COMPILER = "celgate compile"


def runtimes_for(plans: list[dict[str, Any]]) -> list[str]:
    kinds = {p["kind"] for p in plans}
    out = []
    if kinds - {"ObjectApproval"}:
        out.append("gateway")
    if "ObjectApproval" in kinds:
        out.append("studio")
    return out


def manifest_for(bundle: Bundle) -> dict[str, Any]:
    plans = bundle.plans
    kinds = sorted({p["kind"] for p in plans})
    scopes = ["counters.use"] if "RateLimit" in kinds else []
    permissions: dict[str, Any] = {}
    hooks = object_hook_pairs(plans)
    if hooks:
        permissions["object_hooks"] = [f"{t}.{h}" for t, h in hooks]
    return {
        "id": bundle.id,
        "name": f"celgate policies: {bundle.id}",
        "version": bundle.content_hash,
        "description": f"Compiled from {len(plans)} polic{'y' if len(plans) == 1 else 'ies'} "
        f"({', '.join(kinds)}) by {COMPILER}.",
        "entrypoint": ENTRYPOINT,
        "runtimes": runtimes_for(plans),
        "capabilities": capabilities_for(plans),
        "scopes": scopes,
        "permissions": permissions,
        "config_schema": dict(CONFIG_SCHEMA),
        "generated": {
            "by": COMPILER,
            "content_hash": bundle.content_hash,
            "sources": [s.display for s in bundle.sources],
            "policies": [
                {
                    "kind": e.policy.kind,
                    "name": e.policy.metadata.name,
                    "phase": plan_phase(e.plan),
                    "source": e.source.display,
                    "line": e.policy.span.line,
                }
                for e in bundle.entries
            ],
        },
    }


def manifest_text(bundle: Bundle) -> str:
    """Deterministic JSON (ASCII only, two-space indent, trailing newline)."""
    return json.dumps(manifest_for(bundle), indent=2, ensure_ascii=True) + "\n"
