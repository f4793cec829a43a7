"""Lowering: typed policy model -> plan (plain JSON-able data) -> decision procedure.

The plan is what `celgate compile` embeds in a generated plugin; the plugin calls
`build(plan)` from `celgate.policies.runtime` and so runs exactly the procedure that
`celgate test` and `celgate explain` run (one interpreter, built from the same data).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from celgate.policies.model import (
    IPFilterSpec,
    ObjectApprovalSpec,
    Policy,
    RateLimitSpec,
    RequestValidationSpec,
)
from celgate.policies.runtime.approval import ObjectApprovalProcedure
from celgate.policies.runtime.base import PlanError, Procedure
from celgate.policies.runtime.ipfilter import IPFilterProcedure
from celgate.policies.runtime.ratelimit import RateLimitProcedure
from celgate.policies.runtime.validation import RequestValidationProcedure

PLAN_VERSION = 1

PROCEDURES: dict[str, type[Procedure]] = {
    "IPFilter": IPFilterProcedure,
    "RequestValidation": RequestValidationProcedure,
    "RateLimit": RateLimitProcedure,
    "ObjectApproval": ObjectApprovalProcedure,
}

AnyProcedure = IPFilterProcedure | RequestValidationProcedure | RateLimitProcedure | ObjectApprovalProcedure


def lower(policy: Policy) -> dict[str, Any]:
    """The plan of one policy (deterministic; only JSON types)."""
    plan: dict[str, Any] = {
        "plan_version": PLAN_VERSION,
        "kind": policy.kind,
        "name": policy.metadata.name,
        "mode": policy.mode,
        "failure_policy": policy.failure_policy,
        "match": policy.match.source if policy.match is not None else None,
        "variables": [{"name": v.name, "expression": v.expression.source} for v in policy.variables],
    }
    spec = policy.spec
    if isinstance(spec, IPFilterSpec):
        plan["spec"] = {
            "trusted_proxies": [c.text for c in spec.trusted_proxies],
            "allow": [c.text for c in spec.allow],
            "deny": [c.text for c in spec.deny],
            "status": spec.status,
            "message": spec.message,
        }
    elif isinstance(spec, RequestValidationSpec):
        plan["phase"] = spec.phase
        plan["spec"] = {
            "body_schema": spec.body_schema,
            "rules": [
                {
                    "name": r.name,
                    "expression": r.expression.source,
                    "message": r.message,
                    "message_expression": r.message_expression.source if r.message_expression else None,
                    "status": r.status,
                }
                for r in spec.rules
            ],
        }
    elif isinstance(spec, RateLimitSpec):
        plan["spec"] = {
            "algorithm": spec.algorithm,
            "status": spec.status,
            "limits": [
                {
                    "name": lim.name,
                    "key": lim.key.source,
                    "window_s": lim.window.seconds,
                    "requests": lim.requests,
                    "tokens": lim.tokens,
                    "cost": lim.cost.source if lim.cost else None,
                    "reserve": lim.reserve.source if lim.reserve else None,
                }
                for lim in spec.limits
            ],
        }
    elif isinstance(spec, ObjectApprovalSpec):
        plan["objects"] = list(spec.objects)
        plan["spec"] = {
            "objects": list(spec.objects),
            "operations": list(spec.operations),
            "rules": [
                {
                    "name": r.name,
                    "when": r.when.source,
                    "action": r.action,
                    "message": r.message,
                    "message_expression": r.message_expression.source if r.message_expression else None,
                    "approvers": list(r.approvers.groups) if r.approvers else [],
                    "min_approvals": r.min_approvals,
                    "expires_after_s": r.expires_after.seconds if r.expires_after else None,
                    "patch": r.patch,
                }
                for r in spec.rules
            ],
        }
    else:  # pragma: no cover - the model's Spec union is closed
        raise PlanError(f"unknown policy kind {policy.kind!r}")
    return plan


def build(plan: Mapping[str, Any]) -> AnyProcedure:
    """The decision procedure of a plan (compiles its CEL once); raises PlanError."""
    if plan.get("plan_version", PLAN_VERSION) != PLAN_VERSION:
        raise PlanError(f"unsupported plan version {plan.get('plan_version')!r}")
    cls = PROCEDURES.get(str(plan.get("kind")))
    if cls is None:
        raise PlanError(f"unknown policy kind {plan.get('kind')!r}")
    try:
        procedure = cls(plan)
    except (KeyError, TypeError) as exc:
        raise PlanError(f"malformed plan for {plan.get('name')!r}: {exc!r}") from exc
    assert isinstance(procedure, AnyProcedure)
    return procedure


def procedure_for(policy: Policy) -> AnyProcedure:
    return build(lower(policy))
