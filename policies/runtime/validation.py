"""RequestValidation: the body's JSON Schema first, then every rule; all violations collected.

A schema failure is one violation (rule `body`, status 400) and the rules are then not
evaluated (they may rely on the body's shape). A rule passes when its expression is `true`.
Without tracing, `match` and the rules are first evaluated as one fused expression (one CEL
call); only when some rule does not hold (or on an error) are they evaluated one by one to
collect the exact violations - same result, one call on the hot path. A rule that errors
makes the policy fail per failurePolicy (fail-closed: 503; fail-open: that rule is recorded
as skipped, the others still apply).
Reply on violation: the first violation's status and
`{"error": {"type": "policy_violation", "policy": NAME, "violations": [{"rule", "message"}]}}`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jsonschema_rs

from celgate.policies.cel import Program
from celgate.policies.runtime.base import PlanError, Procedure
from celgate.policies.runtime.decision import Decision, RuleTrace, Violation
from celgate.policies.runtime.inputs import RequestInputs

SCHEMA_RULE = "body"


@dataclass(frozen=True, slots=True)
class _Rule:
    name: str
    program: Program
    message: str
    message_program: Program | None
    status: int


class RequestValidationProcedure(Procedure):
    kind = "RequestValidation"

    def __init__(self, plan: Mapping[str, Any]) -> None:
        super().__init__(plan)
        spec = plan["spec"]
        schema = spec.get("body_schema")
        self.validator: Any = None
        if schema is not None:
            try:
                self.validator = jsonschema_rs.Draft202012Validator(schema)
            except Exception as exc:  # jsonschema_rs raises ValidationError / ValueError
                raise PlanError(f"body.schema: invalid JSON Schema: {exc}") from exc
        self.rules: list[_Rule] = []
        for raw in spec.get("rules", ()):
            name = raw["name"]
            program = self.compile(raw["expression"], "rule", f"rules.{name}")
            msg_src = raw.get("message_expression")
            msg_program = (
                self.compile(msg_src, "message", f"rules.{name}.messageExpression") if msg_src else None
            )
            message = raw.get("message") or f"rule {name} failed"
            self.rules.append(_Rule(name, program, message, msg_program, int(raw.get("status", 400))))
        # The hot path: match and every rule fused into one expression (one CEL call):
        # 0 = match is false, 1 = every rule holds, 2 = some rule is violated (then the rules
        # are evaluated one by one for the exact violations; an error also takes that path).
        conj = " && ".join(f"({r.program.source})" for r in self.rules) or "true"
        fused = f"({conj}) ? 1 : 2"
        if match := plan.get("match"):
            fused = f"({match}) ? (({conj}) ? 1 : 2) : 0"
        self.fused: Program = self.compile(fused, "rule", "rules")

    def rule_names(self) -> list[str]:
        """The coverage items: the body schema (if any) and every rule; each fires when violated."""
        return ([SCHEMA_RULE] if self.validator is not None else []) + [r.name for r in self.rules]

    def decide(self, inputs: RequestInputs, *, trace: bool = False) -> Decision:
        rid = inputs.request_id
        ev = self.begin(inputs.data, trace, inputs)
        if not trace:
            fast = ev.run(self.fused, "rules")
            if fast == 0:
                return self.conclude(
                    ev, "allow", not_applicable=True, reason="match is false", request_id=rid
                )
            if fast == 1 and (self.validator is None or self._schema_ok(inputs.body)):
                return self.conclude(ev, "allow", reason="all rules hold", request_id=rid)
            ev.error = None  # the exact path below finds the violations or the error
        matched = self.matches(ev)
        if matched is None:
            return self.conclude(ev, "deny", request_id=rid)
        if not matched:
            return self.conclude(ev, "allow", not_applicable=True, reason="match is false", request_id=rid)
        if self.validator is not None:
            problem = self._schema_problem(inputs.body)
            if trace:
                ev.trace.append(
                    RuleTrace(SCHEMA_RULE, problem is not None, detail=problem or "body matches the schema")
                )
            if problem is not None:
                return self._violations(ev, (Violation(SCHEMA_RULE, problem, 400),), rid)
        violations: list[Violation] = []
        for rule in self.rules:
            value = ev.run(rule.program, rule.name, bool)
            if value is None:
                if self.failure_policy == "fail-closed":
                    return self.conclude(ev, "deny", request_id=rid)
                continue  # fail-open: this rule is skipped (recorded in the trace)
            if trace:
                ev.trace.append(
                    RuleTrace(rule.name, not value, value=value, detail="holds" if value else "violated")
                )
            if not value:
                violations.append(Violation(rule.name, self._message(ev, rule), rule.status))
        if ev.error is not None and not violations:
            return self.conclude(ev, "allow", request_id=rid)  # fail-open, recorded as skipped
        ev.error = None
        if violations:
            return self._violations(ev, tuple(violations), rid)
        return self.conclude(ev, "allow", reason="all rules hold", request_id=rid)

    def _schema_ok(self, body: Any) -> bool:
        try:
            return bool(self.validator.is_valid(body))
        except Exception:  # a body that cannot be converted: the exact path reports it
            return False

    def _schema_problem(self, body: Any) -> str | None:
        try:
            error = next(iter(self.validator.iter_errors(body)), None)
        except Exception as exc:  # a body that cannot be converted for validation
            return f"request body cannot be validated: {exc}"
        if error is None:
            return None
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.instance_path)
        return f"request body{path}: {error.message}" if path else f"request body: {error.message}"

    def _message(self, ev: Any, rule: _Rule) -> str:
        if rule.message_program is None:
            return rule.message
        saved = ev.error, ev.error_rule
        value = ev.run(rule.message_program, f"{rule.name}.messageExpression", str)
        ev.error, ev.error_rule = saved  # a failed message falls back to the static one
        return value if isinstance(value, str) and value else rule.message

    def _violations(self, ev: Any, violations: tuple[Violation, ...], rid: str) -> Decision:
        first = violations[0]
        body = {
            "error": {
                "type": "policy_violation",
                "policy": self.name,
                "violations": [{"rule": v.rule, "message": v.message} for v in violations],
            }
        }
        return self.conclude(
            ev,
            "deny",
            rule=first.rule,
            reason=first.message,
            status=first.status,
            message=first.message,
            body=body,
            violations=violations,
            request_id=rid,
        )
