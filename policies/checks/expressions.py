"""CEL checks: every expression of a policy, type-checked in its context.

Each expression is checked by the CEL environment (`celgate.policies.cel.check`) with the
variables its position declares; issues are mapped from offsets in the expression to line
and column in the YAML file. Also: the result type of each role, size and cost limits, and
regex literals passed to `matches()`. Results are cached per (source, context), since the
same expressions recur across the files of a policy set.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from celgate.policies.checks.constants import regex_literals, regex_problem
from celgate.policies.codes import diag
from celgate.policies.diagnostics import Diagnostic
from celgate.policies.model import (
    Expr,
    ObjectApprovalSpec,
    Policy,
    RateLimitSpec,
    RequestValidationSpec,
)

MAX_EXPRESSION_LENGTH = 4096
MAX_EXPRESSION_COST = 50_000

BOOL_ROLES = ("match", "rule", "when")
_ACCEPTED: dict[str, tuple[str, ...]] = {
    "match": ("bool", "dyn"),
    "rule": ("bool", "dyn"),
    "when": ("bool", "dyn"),
    "message": ("string", "dyn"),
    "key": ("string", "dyn"),
    "cost": ("int", "uint", "double", "dyn"),
    "reserve": ("int", "uint", "double", "dyn"),
}
_ROLE_WORDS = {
    "match": "match",
    "rule": "a rule's expression",
    "when": "when",
    "message": "messageExpression",
    "key": "a limit's key",
    "cost": "cost",
    "reserve": "reserve",
    "variable": "a variable",
}


@dataclass(frozen=True, slots=True)
class Site:
    """One expression of a policy and the context it is checked in."""

    expr: Expr
    role: str
    variables: tuple[str, ...]
    rule: str | None = None


def sites(policy: Policy) -> Iterator[Site]:
    """Every expression of `policy`, with the policy variables visible to it."""
    names = tuple(v.name for v in policy.variables)
    for i, v in enumerate(policy.variables):
        yield Site(v.expression, "variable", names[:i], v.name)
    if policy.match is not None:
        yield Site(policy.match, "match", names)
    spec = policy.spec
    if isinstance(spec, RequestValidationSpec):
        for vr in spec.rules:
            yield Site(vr.expression, "rule", names, vr.name)
            if vr.message_expression is not None:
                yield Site(vr.message_expression, "message", names, vr.name)
    elif isinstance(spec, RateLimitSpec):
        for lim in spec.limits:
            yield Site(lim.key, "key", names, lim.name)
            if lim.cost is not None:
                yield Site(lim.cost, "cost", names, lim.name)
            if lim.reserve is not None:
                yield Site(lim.reserve, "reserve", names, lim.name)
    elif isinstance(spec, ObjectApprovalSpec):
        for ar in spec.rules:
            yield Site(ar.when, "when", names, ar.name)
            if ar.message_expression is not None:
                yield Site(ar.message_expression, "message", names, ar.name)


def _cel() -> Any:
    try:
        from celgate.policies import cel
    except ImportError:  # the CEL environment failed to import: report it once, check the rest
        return None
    return cel


@lru_cache(maxsize=8192)
def _check(
    source: str, kind: str, role: str, variables: tuple[str, ...], object_types: tuple[str, ...], phase: str
) -> tuple[tuple[tuple[int, str], ...], str, int]:
    cel = _cel()
    ctx = cel.ExprContext(kind=kind, role=role, variables=variables, object_types=object_types, phase=phase)
    result = cel.check(source, ctx)
    return tuple((i.offset, i.message) for i in result.issues), result.output_type, int(result.cost)


def _phase(policy: Policy) -> str:
    return policy.spec.phase if isinstance(policy.spec, RequestValidationSpec) else ""


def check_expressions(policy: Policy) -> list[Diagnostic]:
    """CEL diagnostics for every expression of `policy`."""
    out: list[Diagnostic] = []
    name = policy.metadata.name
    cel_available = _cel() is not None
    if not cel_available:
        out.append(
            diag(
                "CG207",
                "the CEL environment could not be loaded; expressions were not checked",
                policy.span,
                policy=name,
            )
        )
    object_types = policy.spec.objects if isinstance(policy.spec, ObjectApprovalSpec) else ()
    for site in sites(policy):
        expr = site.expr
        source = expr.source

        def at(offset: int, code: str, message: str, _site: Site = site) -> None:
            out.append(diag(code, message, _site.expr.position_of(offset), policy=name, rule_name=_site.rule))

        if len(source) > MAX_EXPRESSION_LENGTH:
            at(0, "CG205", f"expression is {len(source)} characters long (limit {MAX_EXPRESSION_LENGTH})")
            continue
        for offset, pattern in regex_literals(source):
            problem = regex_problem(pattern)
            if problem is not None:
                at(offset, "CG110", f"invalid regular expression {pattern!r} in matches(): {problem}")
        if not cel_available:
            continue
        try:
            issues, output_type, cost = _check(
                source, policy.kind, site.role, site.variables, object_types, _phase(policy)
            )
        except Exception as exc:  # the checker must never take the linter down
            at(0, "CG202", f"the CEL checker failed on this expression: {exc}")
            continue
        for offset, message in issues:
            code = "CG201" if message.startswith("Syntax error") else "CG202"
            at(offset, code, message.removeprefix("Syntax error: "))
        if issues:
            continue
        accepted = _ACCEPTED.get(site.role)
        if accepted is not None and output_type not in accepted:
            wanted = " or ".join(t for t in accepted if t != "dyn")
            code = "CG203" if site.role in BOOL_ROLES else "CG204"
            at(0, code, f"{_ROLE_WORDS[site.role]} must be {wanted}, but this expression is {output_type}")
        if cost > MAX_EXPRESSION_COST:
            at(0, "CG206", f"estimated cost {cost} exceeds the limit of {MAX_EXPRESSION_COST}")
    return out


__all__ = ["MAX_EXPRESSION_COST", "MAX_EXPRESSION_LENGTH", "Site", "check_expressions", "sites"]
