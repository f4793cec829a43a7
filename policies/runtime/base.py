"""What every decision procedure shares: the lowered plan's common part (name, mode,
failurePolicy, match, variables) and how a verdict becomes a Decision under the policy's mode.

Modes: `enforce` returns the verdict; `warn` allows and adds a `celgate-warning` header;
`audit` allows and only records. An evaluation error is first turned into a verdict by the
failurePolicy (`fail-closed`: deny with 503; `fail-open`: allow, recorded as skipped), then
the mode applies (so an audit-mode policy never blocks, even on errors).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from celgate.policies.cel import CelEvalError, ExprContext, Program, compile_program
from celgate.policies.cel.env import activation_of, variable_refs
from celgate.policies.runtime.decision import (
    WARNING_HEADER,
    ApproverSpec,
    Decision,
    LogRecord,
    Outcome,
    RuleTrace,
    Verdict,
    Violation,
)

ERROR_STATUS = 503


class PlanError(ValueError):
    """A lowered plan that cannot be built (bad CEL, bad ranges, bad schema)."""


def compile_in(source: str, ctx: ExprContext, where: str) -> Program:
    try:
        return compile_program(source, ctx)
    except ValueError as exc:
        raise PlanError(f"{where}: {exc}") from exc


def closure(refs: set[str], deps: dict[str, set[str]], order: tuple[str, ...]) -> tuple[str, ...]:
    """`refs` with every variable they read, transitively, in declaration order."""
    seen: set[str] = set()
    stack = list(refs)
    while stack:
        name = stack.pop()
        if name in seen or name not in deps:
            continue
        seen.add(name)
        stack.extend(deps[name])
    return tuple(n for n in order if n in seen)


@dataclass(slots=True)
class Evaluation:
    """The per-decision scratch state: activation, lazily computed variables, trace, first error.

    Variables are evaluated on first use, like Kubernetes' admission policy variables: an
    expression that does not read a failing variable is not affected by it.
    """

    activation: dict[str, Any]
    variables: dict[str, Program] = field(default_factory=dict)
    trace: list[RuleTrace] = field(default_factory=list)
    error: str | None = None
    error_rule: str = ""
    tracing: bool = True
    var_errors: dict[str, str] = field(default_factory=dict)
    source: Any = None  # the inputs: `source.activation()` is their shared, prebuilt cel.Activation
    shared: Any = None
    var_activation: tuple[int, Any] | None = None  # (variables computed, activation with them)

    def _ensure(self, needs: tuple[str, ...]) -> str | None:
        values = self.activation["variables"]
        for name in needs:
            if name in values:
                continue
            if name in self.var_errors:
                return self.var_errors[name]
            program = self.variables[name]
            try:
                values[name] = program.evaluate(self.activation)
            except CelEvalError as exc:
                self.var_errors[name] = f"variables.{name}: {exc}"
                if self.tracing:
                    self.trace.append(RuleTrace(f"variables.{name}", None, error=str(exc)))
                return self.var_errors[name]
            if self.tracing:
                self.trace.append(RuleTrace(f"variables.{name}", None, value=values[name]))
        return None

    def run(self, program: Program, rule: str, expect: type | tuple[type, ...] | None = None) -> Any:
        """Evaluate; on error (or a value of the wrong type) record it and return None."""
        try:
            if program.needs:
                problem = self._ensure(program.needs)
                if problem is not None:
                    raise CelEvalError(problem)
                if self.var_activation is None or self.var_activation[0] != len(self.activation["variables"]):
                    count = len(self.activation["variables"])
                    self.var_activation = (count, activation_of(self.activation))
                value = program.evaluate(self.var_activation[1])
            else:
                if self.shared is None:
                    self.shared = self.source.activation() if self.source is not None else self.activation
                value = program.evaluate(self.shared)
            if expect is not None and not isinstance(value, expect):
                raise CelEvalError(f"expected {_type_names(expect)}, got {type(value).__name__} {value!r}")
        except CelEvalError as exc:
            if self.error is None:
                self.error, self.error_rule = str(exc), rule
            if self.tracing:
                self.trace.append(RuleTrace(rule, None, error=str(exc)))
            return None
        return value


def _type_names(expect: type | tuple[type, ...]) -> str:
    types = expect if isinstance(expect, tuple) else (expect,)
    return " or ".join(t.__name__ for t in types)


class Procedure:
    """Base of the four decision procedures; built from a plan (plain, JSON-able data)."""

    kind = ""

    def __init__(self, plan: Mapping[str, Any]) -> None:
        self.plan = plan
        self.name: str = plan["name"]
        self.mode: str = plan.get("mode", "enforce")
        self.failure_policy: str = plan.get("failure_policy", "fail-closed")
        self.phase: str = plan.get("phase", "")
        self.object_types: tuple[str, ...] = tuple(plan.get("objects", ()))
        names: list[str] = []
        self.variables: dict[str, Program] = {}
        self._deps: dict[str, set[str]] = {}
        for var in plan.get("variables", ()):
            ctx = self.context("variable", tuple(names))
            program = compile_in(var["expression"], ctx, f"variables.{var['name']}")
            self._deps[var["name"]] = variable_refs(program.source)
            names.append(var["name"])
            program.needs = closure(self._deps[var["name"]], self._deps, tuple(names[:-1]))
            self.variables[var["name"]] = program
        self.variable_names = tuple(names)
        match = plan.get("match")
        self.match = self.compile(match, "match", "match") if match else None

    def compile(self, source: str, role: str, where: str) -> Program:
        """Compile an expression of this policy (its variable needs resolved)."""
        program = compile_in(source, self.context(role), where)
        program.needs = closure(variable_refs(source), self._deps, self.variable_names)
        return program

    def context(self, role: str, variables: tuple[str, ...] | None = None) -> ExprContext:
        return ExprContext(
            self.kind,
            role,
            self.variable_names if variables is None else variables,
            self.object_types,
            self.phase,
        )

    def rule_names(self) -> list[str]:
        """What coverage counts for this policy (a trace entry of that name with matched=True fires it)."""
        return []

    # -- shared steps ---------------------------------------------------------------------

    def begin(self, data: Mapping[str, Any], tracing: bool, source: Any = None) -> Evaluation:
        """A fresh evaluation; variables are computed when first read.

        `source` (the inputs) provides a prebuilt activation (`source.activation()`), built on
        first use and shared by every expression that reads no policy variable."""
        # positional: activation, variables, trace, error, error_rule, tracing, var_errors, source
        return Evaluation({**data, "variables": {}}, self.variables, [], None, "", tracing, {}, source)

    def matches(self, ev: Evaluation) -> bool | None:
        """True/False, or None on an evaluation error (recorded in `ev`)."""
        if ev.error is not None:
            return None
        if self.match is None:
            return True
        value = ev.run(self.match, "match", bool)
        if value is None:
            return None
        if ev.tracing:
            ev.trace.append(RuleTrace("match", bool(value), value=value))
        return bool(value)

    def conclude(
        self,
        ev: Evaluation | None,
        verdict: Verdict,
        *,
        rule: str = "",
        reason: str = "",
        status: int = 200,
        message: str = "",
        headers: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        violations: tuple[Violation, ...] = (),
        mutated: dict[str, Any] | None = None,
        approvers: ApproverSpec | None = None,
        not_applicable: bool = False,
        request_id: str = "",
        reservation: Any = None,
    ) -> Decision:
        """Apply failurePolicy (if `ev` holds an error) and then the mode."""
        if verdict == "allow" and (ev is None or ev.error is None):
            # The hot path (what the general path below yields for an allow without an error;
            # the mode does not apply to an allow), with positional construction.
            outcome_: Outcome = "not_applicable" if not_applicable else "passed"
            log = (
                LogRecord(
                    self.name, self.kind, rule, "allow", "allow", self.mode, outcome_, reason, request_id
                ),
            )
            return Decision(
                self.name,
                self.kind,
                "allow",
                outcome_,
                self.mode,
                self.failure_policy,
                status,
                message,
                dict(headers) if headers else {},
                None,
                violations,
                tuple(ev.trace) if ev is not None else (),
                mutated,
                approvers,
                log,
                reservation,
            )
        headers = dict(headers or {})
        outcome: Outcome
        if ev is not None and ev.error is not None:
            rule, reason = ev.error_rule, f"evaluation error: {ev.error}"
            if self.failure_policy == "fail-open":
                verdict, outcome = "allow", "skipped"
                status, message, body, violations, mutated, approvers = 200, "", None, (), None, None
            else:
                verdict, outcome, status = "deny", "error", ERROR_STATUS
                message = f"policy {self.name} could not be evaluated"
                body = {"error": {"type": "policy_error", "policy": self.name, "message": message}}
                violations, approvers = (), None
        elif not_applicable:
            outcome = "not_applicable"
        elif verdict == "allow":
            outcome = "passed"
        else:
            outcome = "enforced"
        decision = verdict
        if verdict != "allow" and self.mode != "enforce":
            decision = "allow"
            outcome = "warned" if self.mode == "warn" else "audited"
            if self.mode == "warn":
                headers[WARNING_HEADER] = f"{self.name}: {message or reason}"
            status, body = 200, None
        record = LogRecord(
            policy=self.name,
            kind=self.kind,
            rule=rule,
            decision=decision,
            verdict=verdict,
            mode=self.mode,
            outcome=outcome,
            reason=reason,
            request_id=request_id,
        )
        return Decision(
            policy=self.name,
            kind=self.kind,
            decision=decision,
            outcome=outcome,
            mode=self.mode,
            failure_policy=self.failure_policy,
            status=status,
            message=message,
            headers=headers,
            body=body if decision != "allow" else None,
            violations=violations,
            trace=tuple(ev.trace) if ev is not None else (),
            mutated=mutated,
            approvers=approvers,
            log=(record,),
            reservation=reservation,
        )
