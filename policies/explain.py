"""Explain: one input through one or more policies, rule by rule (what `celgate explain` prints).

Runs the same decision procedures as `celgate test` with tracing on; each rule is shown
with whether it matched (fired) and why: the evaluated value, or the evaluation error.
Rules a decision never reached (after a schema failure, when `match` is false) are listed
as not evaluated.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from celgate.policies.model import Policy
from celgate.policies.runtime import (
    AnyProcedure,
    Decision,
    InputError,
    RuleTrace,
    procedure_for,
)
from celgate.policies.runtime.bundle import Bundle
from celgate.policies.runtime.decision import LogRecord
from celgate.sdk.counters import MemoryCounters


@dataclass(frozen=True, slots=True)
class RuleLine:
    rule: str
    expression: str
    status: str  # "fired", "not fired", "true"/"false" (match), "error", "not evaluated", "value"
    value: Any = None
    error: str | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Explanation:
    policy: str
    kind: str
    decision: Decision
    lines: tuple[RuleLine, ...]


def _expressions(proc: AnyProcedure) -> dict[str, str]:
    plan = proc.plan
    out: dict[str, str] = {}
    if plan.get("match"):
        out["match"] = plan["match"]
    for v in plan.get("variables", ()):
        out[f"variables.{v['name']}"] = v["expression"]
    spec = plan.get("spec", {})
    for r in spec.get("rules", ()):
        out[r["name"]] = r.get("expression") or r.get("when") or ""
    for lim in spec.get("limits", ()):
        out[lim["name"]] = f"key: {lim['key']}"
    return out


def _lines(proc: AnyProcedure, trace: Sequence[RuleTrace]) -> tuple[RuleLine, ...]:
    exprs = _expressions(proc)
    seen: set[str] = set()
    lines: list[RuleLine] = []
    for t in trace:
        seen.add(t.rule)
        base = t.rule.split(".messageExpression")[0]
        if t.error is not None:
            status = "error"
        elif t.matched is None:
            status = "value"
        elif t.rule == "match":
            status = "true" if t.matched else "false"
        else:
            status = "fired" if t.matched else "not fired"
        lines.append(
            RuleLine(t.rule, exprs.get(t.rule, exprs.get(base, "")), status, t.value, t.error, t.detail)
        )
    for name in proc.rule_names():
        if name not in seen:
            lines.append(RuleLine(name, exprs.get(name, ""), "not evaluated"))
    return tuple(lines)


def explain(policies: Sequence[Policy], raw: Mapping[str, Any]) -> tuple[list[Explanation], Decision]:
    """Each policy's traced decision on `raw` (request inputs or `{"object": ...}`), and the combined one.

    Raises InputError for an input of the wrong shape and PlanError for a policy that cannot be built.
    """
    procs = [procedure_for(p) for p in policies]
    bundle = Bundle(procs)
    by_key = {(p.name, p.kind): p for p in procs}
    if "object" in raw:
        if set(raw) - {"object", "now"}:
            raise InputError("an object input takes only `object` (and `now`)")
        obj_raw = raw["object"]
        if not isinstance(obj_raw, Mapping):
            raise InputError("object must be a mapping")
        combined, decisions = bundle.decide_object(obj_raw, now=raw.get("now"), trace=True)
    else:
        result = bundle.decide_request(bundle.inputs(raw), MemoryCounters(), trace=True)
        combined, decisions = result.decision, result.decisions
    results = [
        Explanation(d.policy, d.kind, d, _lines(by_key[(d.policy, d.kind)], d.trace)) for d in decisions
    ]
    reached = {(d.policy, d.kind) for d in decisions}
    candidates = bundle.objects if "object" in raw else bundle.request
    for proc in candidates:
        if (proc.name, proc.kind) not in reached:  # after a deny, later policies do not run
            unreached = Decision(
                policy=proc.name,
                kind=proc.kind,
                decision="allow",
                outcome="not_applicable",
                mode=proc.mode,
                failure_policy=proc.failure_policy,
                log=(
                    LogRecord(
                        proc.name,
                        proc.kind,
                        "",
                        "allow",
                        "allow",
                        proc.mode,
                        "not_applicable",
                        "not reached: an earlier policy denied",
                    ),
                ),
            )
            results.append(Explanation(proc.name, proc.kind, unreached, _lines(proc, ())))
    return results, combined


def _show(value: Any) -> str:
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    try:
        return json.dumps(value, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return repr(value)


def _decision_text(d: Decision) -> str:
    text: str = d.decision
    if d.decision != "allow" or d.status != 200:
        text += f" {d.status}"
    if d.message:
        text += f": {d.message}"
    if d.log and d.log[0].reason:
        text += f" ({d.outcome}; {d.log[0].reason})"
    else:
        text += f" ({d.outcome})"
    return text


def format_text(results: Sequence[Explanation], combined: Decision) -> str:
    out: list[str] = []
    for e in results:
        d = e.decision
        out.append(f"policy {e.policy} ({e.kind}, mode {d.mode}, failurePolicy {d.failure_policy})")
        for line in e.lines:
            expr = f"  [{line.expression}]" if line.expression else ""
            if line.status == "error":
                out.append(f"  {line.rule}: ERROR {line.error}{expr}")
            elif line.status == "value":
                out.append(f"  {line.rule} = {_show(line.value)}{expr}")
            elif line.status == "not evaluated":
                out.append(f"  {line.rule}: not evaluated{expr}")
            else:
                value = f" (value {_show(line.value)})" if line.value is not None else ""
                detail = f" - {line.detail}" if line.detail else ""
                out.append(f"  {line.rule}: {line.status}{value}{detail}{expr}")
        for v in d.violations:
            out.append(f"  violation {v.rule}: {v.message} (status {v.status})")
        if d.headers:
            out.append("  headers: " + ", ".join(f"{k}: {v}" for k, v in sorted(d.headers.items())))
        if d.mutated is not None:
            out.append(f"  mutated: {_show(d.mutated)}")
        if d.approvers is not None:
            out.append(f"  approvers: groups {list(d.approvers.groups)}, min {d.approvers.min_approvals}")
        out.append(f"  decision: {_decision_text(d)}")
    out.append(f"decision: {_decision_text(combined)}")
    return "\n".join(out) + "\n"


def format_json(results: Sequence[Explanation], combined: Decision) -> str:
    def dec(d: Decision) -> dict[str, Any]:
        return {
            "decision": d.decision,
            "status": d.status,
            "message": d.message,
            "outcome": d.outcome,
            "mode": d.mode,
            "headers": d.headers,
            "body": d.body,
            "mutated": d.mutated,
            "violations": [{"rule": v.rule, "message": v.message, "status": v.status} for v in d.violations],
            "approvers": None
            if d.approvers is None
            else {
                "groups": list(d.approvers.groups),
                "min_approvals": d.approvers.min_approvals,
                "expires_after_s": d.approvers.expires_after_s,
            },
            "log": [
                {
                    "policy": r.policy,
                    "rule": r.rule,
                    "decision": r.decision,
                    "verdict": r.verdict,
                    "mode": r.mode,
                    "outcome": r.outcome,
                    "reason": r.reason,
                }
                for r in d.log
            ],
        }

    data = {
        "decision": dec(combined),
        "policies": [
            {
                "policy": e.policy,
                "kind": e.kind,
                "decision": dec(e.decision),
                "rules": [
                    {
                        "rule": ln.rule,
                        "expression": ln.expression,
                        "status": ln.status,
                        "value": json.loads(_show(ln.value)) if ln.status != "not evaluated" else None,
                        "error": ln.error,
                        "detail": ln.detail,
                    }
                    for ln in e.lines
                ],
            }
            for e in results
        ],
    }
    return json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"
