"""Builds the JSON Schema (draft 2020-12) of every policy kind and writes `<Kind>.json`.

Run `python -m celgate.policies.schemas.build` after changing this file. Every object has
`additionalProperties: false`, so unknown fields are errors. Checks a schema cannot express
well (duplicate names, CIDR validity, CEL) live in the linter with their own codes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
BASE_ID = "https://celgate.dev/schemas/v1/"

NAME_PATTERN = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DURATION_PATTERN = "^[0-9]+(\\.[0-9]+)?(ms|s|m|h|d)$"
IDENT_PATTERN = "^[A-Za-z_][A-Za-z0-9_]*$"
OBJECT_TYPES = ["llm", "app", "tool", "datasource", "user"]
OPERATIONS = ["create", "update", "delete"]

Schema = dict[str, Any]


def obj(properties: dict[str, Schema], required: list[str] | None = None, description: str = "") -> Schema:
    out: Schema = {"type": "object"}
    if description:
        out["description"] = description
    out["properties"] = properties
    if required:
        out["required"] = required
    out["additionalProperties"] = False
    return out


def s(description: str, **extra: Any) -> Schema:
    return {"type": "string", "description": description, **extra}


def expr(description: str) -> Schema:
    return {"$ref": "#/$defs/expression", "description": description}


def strings(description: str, **extra: Any) -> Schema:
    return {"type": "array", "description": description, "items": {"type": "string"}, **extra}


def string_map(description: str) -> Schema:
    return {"type": "object", "description": description, "additionalProperties": {"type": "string"}}


COMMON_DEFS: dict[str, Schema] = {
    "expression": {"type": "string", "minLength": 1, "description": "A CEL expression."},
    "duration": {
        "type": "string",
        "pattern": DURATION_PATTERN,
        "description": "A number and a unit: 250ms, 0.5s, 1m, 1h, 7d.",
    },
    "status": {"type": "integer", "minimum": 100, "maximum": 599, "description": "An HTTP status."},
    "metadata": obj(
        {
            "name": s(
                "Lowercase letters, digits and '-'; unique per kind in a policy set.",
                pattern=NAME_PATTERN,
                minLength=1,
                maxLength=63,
            ),
            "description": s("What the policy is for."),
            "labels": string_map("Free-form string labels."),
        },
        ["name"],
    ),
    "variables": {
        "type": "array",
        "description": "Named CEL values; later ones may use earlier ones as variables.<name>.",
        "items": obj(
            {
                "name": s("The variable's name.", pattern=IDENT_PATTERN),
                "expression": expr("Its value."),
            },
            ["name", "expression"],
        ),
    },
}

REQUEST_COMMON: dict[str, Schema] = {
    "match": expr("CEL bool; the policy applies only where it is true (default: everywhere)."),
    "mode": {"enum": ["enforce", "warn", "audit"], "description": "enforce (block), warn, audit."},
    "failurePolicy": {"enum": ["fail-closed", "fail-open"], "description": "On a CEL evaluation error."},
    "variables": {"$ref": "#/$defs/variables"},
}

IPFILTER_SPEC = obj(
    {
        "trustedProxies": strings("CIDR ranges whose X-Forwarded-For is honoured."),
        "allow": strings("CIDR ranges allowed; when non-empty, every other address is denied."),
        "deny": strings("CIDR ranges always denied."),
        "status": {"$ref": "#/$defs/status"},
        "message": s("The reply's message (default 'forbidden')."),
        **REQUEST_COMMON,
    }
)

VALIDATION_RULE = obj(
    {
        "name": s("The rule's name, unique in the policy.", minLength=1),
        "expression": expr("CEL bool; must be true for the request to pass."),
        "message": s("The violation message."),
        "messageExpression": expr("CEL string computing the violation message."),
        "status": {"$ref": "#/$defs/status"},
    },
    ["name", "expression"],
)

REQUEST_VALIDATION_SPEC = obj(
    {
        "phase": {"enum": ["pre_auth", "post_auth"], "description": "Default post_auth."},
        "body": obj({"schema": {"type": "object", "description": "JSON Schema for the parsed body."}}),
        "rules": {"type": "array", "items": VALIDATION_RULE},
        **REQUEST_COMMON,
    }
)

LIMIT = obj(
    {
        "name": s("The limit's name, unique in the policy.", minLength=1),
        "key": expr("CEL string; equal keys share a counter."),
        "requests": {"type": "integer", "minimum": 1, "description": "Requests per window."},
        "tokens": {"type": "integer", "minimum": 1, "description": "LLM tokens per window."},
        "window": {"$ref": "#/$defs/duration"},
        "cost": expr("CEL int: tokens charged (default: the response's total tokens)."),
        "reserve": expr("CEL int: tokens held before the call, settled after."),
    },
    ["name", "key", "window"],
)

RATE_LIMIT_SPEC = obj(
    {
        "algorithm": {"enum": ["sliding-window", "fixed-window", "token-bucket"]},
        "limits": {"type": "array", "items": LIMIT},
        "status": {"$ref": "#/$defs/status"},
        **REQUEST_COMMON,
    }
)

APPROVAL_RULE = obj(
    {
        "name": s("The rule's name, unique in the policy.", minLength=1),
        "when": expr("CEL bool; the rule applies when true."),
        "action": {"enum": ["deny", "require_approval", "mutate"]},
        "message": s("Why the change is denied or parked."),
        "messageExpression": expr("CEL string computing the message."),
        "approvers": obj({"groups": strings("Groups whose members may approve.")}),
        "minApprovals": {"type": "integer", "description": "Approvals needed (at least 1)."},
        "expiresAfter": {"$ref": "#/$defs/duration"},
        "patch": {"type": "object", "description": "JSON merge patch applied to the object."},
    },
    ["name", "when", "action"],
)

OBJECT_APPROVAL_SPEC = obj(
    {
        "objects": {"type": "array", "items": {"enum": OBJECT_TYPES}, "minItems": 1, "uniqueItems": True},
        "operations": {"type": "array", "items": {"enum": OPERATIONS}, "minItems": 1, "uniqueItems": True},
        "rules": {"type": "array", "items": APPROVAL_RULE},
        "mode": REQUEST_COMMON["mode"],
        "failurePolicy": REQUEST_COMMON["failurePolicy"],
        "variables": REQUEST_COMMON["variables"],
    },
)

# -- PolicyTest ---------------------------------------------------------------------------

TEST_REQUEST = obj(
    {
        "id": {"type": "string"},
        "method": {"type": "string"},
        "path": {"type": "string"},
        "query": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
        "body": {"description": "The JSON body (any value)."},
        "size": {"type": "integer", "minimum": 0},
        "remote_addr": {"type": "string"},
        "client_ip": {"type": "string"},
        "host": {"type": "string"},
    },
    description="The request, with the fields of the CEL `request` variable.",
)
TEST_IDENTITY = obj(
    {
        "authenticated": {"type": "boolean"},
        "app_id": {"type": "string"},
        "user_id": {"type": "string"},
        "groups": strings("Groups."),
        "claims": {"type": "object"},
    }
)
TEST_LLM = obj({k: {"type": "string"} for k in ("id", "slug", "vendor", "model")})
TEST_RESPONSE = obj(
    {
        "status": {"type": "integer"},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
        "body": {},
        "usage": obj(
            {
                k: {"type": "integer", "minimum": 0}
                for k in ("prompt_tokens", "completion_tokens", "total_tokens")
            }
        ),
    }
)
TEST_OBJECT = obj(
    {
        "type": {"enum": OBJECT_TYPES},
        "operation": {"enum": OPERATIONS},
        "actor": obj({"id": {"type": "string"}, "email": {"type": "string"}, "groups": strings("Groups.")}),
        "value": {"type": "object", "description": "The object after the change."},
        "previous": {"type": ["object", "null"], "description": "The object before the change."},
    },
    ["type", "operation"],
)
EXPECT = obj(
    {
        "decision": {"enum": ["allow", "deny", "pending_approval"]},
        "status": {"$ref": "#/$defs/status"},
        "message": s("A substring of the reply's message."),
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
        "violations": {"type": "array"},
        "mutated": {"type": "object"},
        "approvers": obj({"groups": strings("Groups.")}),
    },
    ["decision"],
)
INPUTS: dict[str, Schema] = {
    "request": TEST_REQUEST,
    "identity": TEST_IDENTITY,
    "llm": TEST_LLM,
    "response": TEST_RESPONSE,
}
STEP = obj({"at": {"$ref": "#/$defs/duration"}, **INPUTS, "expect": EXPECT}, ["expect"])
CASE = obj(
    {
        "name": s("The case's name, unique in the test.", minLength=1),
        **INPUTS,
        "object": TEST_OBJECT,
        "sequence": {"type": "array", "items": STEP, "minItems": 1},
        "expect": EXPECT,
    },
    ["name"],
)
POLICY_TEST_SPEC = obj(
    {
        "policies": {"type": "array", "items": {"type": "string", "pattern": NAME_PATTERN}, "minItems": 1},
        "cases": {"type": "array", "items": CASE},
    },
    ["policies", "cases"],
)

SPECS: dict[str, tuple[Schema, str]] = {
    "IPFilter": (IPFILTER_SPEC, "Allow or deny requests by client address (pre_auth)."),
    "RequestValidation": (REQUEST_VALIDATION_SPEC, "Validate requests with a body schema and CEL rules."),
    "RateLimit": (RATE_LIMIT_SPEC, "Request and token rate limits (post_auth + response)."),
    "ObjectApproval": (OBJECT_APPROVAL_SPEC, "Deny, park for approval or patch studio object changes."),
    "PolicyTest": (POLICY_TEST_SPEC, "Test cases for policies (celgate test)."),
}


def build(kind: str) -> Schema:
    spec, description = SPECS[kind]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{BASE_ID}{kind}.json",
        "title": f"celgate {kind}",
        "description": description,
        "type": "object",
        "properties": {
            "apiVersion": {"const": "celgate.dev/v1"},
            "kind": {"const": kind},
            "metadata": {"$ref": "#/$defs/metadata"},
            "spec": spec,
        },
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": False,
        "$defs": COMMON_DEFS,
    }


def render(kind: str) -> str:
    return json.dumps(build(kind), indent=2) + "\n"


def main() -> int:
    for kind in SPECS:
        (HERE / f"{kind}.json").write_text(render(kind), encoding="utf-8")
    print(f"wrote {len(SPECS)} schemas to {HERE}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
