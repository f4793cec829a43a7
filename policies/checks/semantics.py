"""Semantic checks inside one document: what is well-formed but cannot be what was meant.

Duplicate names (rules, limits, variables, test cases), IPFilter ranges that can never
matter, rules that can never apply (constant conditions, rules after an unconditional deny),
rate limits that count nothing, approvals nobody can give, fields that have no effect.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from celgate.policies.checks.constants import constant_value
from celgate.policies.checks.expressions import sites
from celgate.policies.codes import diag
from celgate.policies.diagnostics import Diagnostic
from celgate.policies.model import (
    CidrEntry,
    Document,
    IPFilterSpec,
    ObjectApprovalSpec,
    Policy,
    PolicyTestDoc,
    RateLimitSpec,
    RequestValidationSpec,
    Span,
)
from celgate.policies.parse import parse_network
from celgate.policies.source import PathKey, RawDocument

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _duplicates(items: Iterable[tuple[str, Span]], what: str, policy: str | None) -> list[Diagnostic]:
    seen: dict[str, Span] = {}
    out = []
    for name, span in items:
        if name in seen:
            first = seen[name]
            out.append(
                diag(
                    "CG302",
                    f"duplicate {what} name {name!r} (first at line {first.line})",
                    span,
                    policy=policy,
                    rule_name=name,
                )
            )
        else:
            seen[name] = span
    return out


def check_document(document: Document, raw: RawDocument) -> list[Diagnostic]:
    if isinstance(document, PolicyTestDoc):
        return _duplicates(
            ((c.name, raw.at(("spec", "cases", i, "name"))) for i, c in enumerate(document.cases)),
            "test case",
            document.metadata.name,
        )
    policy = document
    name = policy.metadata.name
    out = _duplicates(
        ((v.name, raw.at(("spec", "variables", i, "name"))) for i, v in enumerate(policy.variables)),
        "variable",
        name,
    )
    out.extend(_unused_variables(policy, raw))
    if policy.match is not None and constant_value(policy.match.source) is False:
        out.append(
            diag("CG305", "match is always false: this policy never applies", policy.match.span, policy=name)
        )
    spec = policy.spec
    if isinstance(spec, IPFilterSpec):
        out.extend(_ip_filter(spec, name))
    elif isinstance(spec, RequestValidationSpec):
        out.extend(_request_validation(spec, raw, name))
    elif isinstance(spec, RateLimitSpec):
        out.extend(_rate_limit(spec, raw, name))
    elif isinstance(spec, ObjectApprovalSpec):
        out.extend(_object_approval(spec, raw, name))
    return out


def _unused_variables(policy: Policy, raw: RawDocument) -> list[Diagnostic]:
    """Variables that no expression of the policy refers to (`variables.NAME`)."""
    used: set[str] = set()
    for site in sites(policy):
        used.update(_VARIABLE_REF.findall(site.expr.source))
    return [
        diag(
            "CG315",
            f"variable {v.name!r} is never used",
            raw.at(("spec", "variables", i, "name")),
            policy=policy.metadata.name,
            rule_name=v.name,
        )
        for i, v in enumerate(policy.variables)
        if v.name not in used
    ]


_VARIABLE_REF = re.compile(r"\bvariables\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)")


def _networks(entries: tuple[CidrEntry, ...]) -> list[tuple[CidrEntry, Network]]:
    """Parsed ranges; IPv4-mapped IPv6 ranges become IPv4 ones, as the runtime matches them."""
    out: list[tuple[CidrEntry, Network]] = []
    for entry in entries:
        net = parse_network(entry.text)
        if isinstance(net, str):
            continue
        if isinstance(net, ipaddress.IPv6Network) and net.prefixlen >= 96 and net.subnet_of(_MAPPED):
            mapped = net.network_address.ipv4_mapped
            assert mapped is not None
            net = ipaddress.IPv4Network(f"{mapped}/{net.prefixlen - 96}")
        out.append((entry, net))
    return out


_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


def _overlaps(a: Network, b: Network) -> bool:
    return a.version == b.version and a.overlaps(b)


def _inside(a: Network, b: Network) -> bool:
    return a.version == b.version and a.subnet_of(b)  # type: ignore[arg-type]


def _ip_filter(spec: IPFilterSpec, policy: str) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    allow, deny = _networks(spec.allow), _networks(spec.deny)
    if allow:
        for entry, net in deny:
            if not any(_overlaps(net, a) for _, a in allow):
                out.append(
                    diag(
                        "CG303",
                        f"deny range {entry.text} contains no address of the allow list, "
                        "so it never changes a decision",
                        entry.span,
                        policy=policy,
                    )
                )
    for label, nets in (("deny", deny), ("allow", allow)):
        for i, (entry, net) in enumerate(nets):
            for j, (other, other_net) in enumerate(nets):
                if i != j and _inside(net, other_net) and (net != other_net or j < i):
                    out.append(
                        diag(
                            "CG304",
                            f"{label} range {entry.text} is already covered by {other.text} "
                            f"(line {other.span.line})",
                            entry.span,
                            policy=policy,
                        )
                    )
                    break
    return out


def _request_validation(spec: RequestValidationSpec, raw: RawDocument, policy: str) -> list[Diagnostic]:
    out = _duplicates(
        ((r.name, raw.at(("spec", "rules", i, "name"))) for i, r in enumerate(spec.rules)), "rule", policy
    )
    for i, r in enumerate(spec.rules):
        path: PathKey = ("spec", "rules", i)
        if r.message is not None and r.message_expression is not None:
            out.append(
                diag(
                    "CG311",
                    f"rule {r.name!r} has both message and messageExpression",
                    raw.key_at((*path, "messageExpression")),
                    policy=policy,
                    rule_name=r.name,
                )
            )
        if constant_value(r.expression.source) is True:
            out.append(
                diag(
                    "CG305",
                    f"rule {r.name!r} is always true, so it can never be violated",
                    r.expression.span,
                    policy=policy,
                    rule_name=r.name,
                )
            )
    return out


def _rate_limit(spec: RateLimitSpec, raw: RawDocument, policy: str) -> list[Diagnostic]:
    if not spec.limits:
        where = raw.key_at(("spec", "limits")) if ("spec", "limits") in raw.index else raw.key_at(("spec",))
        return [diag("CG306", "RateLimit has no limits", where, policy=policy)]
    out = _duplicates(
        ((lim.name, raw.at(("spec", "limits", i, "name"))) for i, lim in enumerate(spec.limits)),
        "limit",
        policy,
    )
    for i, lim in enumerate(spec.limits):
        path: PathKey = ("spec", "limits", i)
        if lim.requests is None and lim.tokens is None:
            out.append(
                diag(
                    "CG307",
                    f"limit {lim.name!r} has neither requests nor tokens",
                    lim.span,
                    policy=policy,
                    rule_name=lim.name,
                )
            )
        elif lim.tokens is None:
            for key in ("cost", "reserve"):
                if (*path, key) in raw.index:
                    out.append(
                        diag(
                            "CG313",
                            f"limit {lim.name!r}: {key} has no effect without tokens",
                            raw.key_at((*path, key)),
                            policy=policy,
                            rule_name=lim.name,
                        )
                    )
    return out


def _object_approval(spec: ObjectApprovalSpec, raw: RawDocument, policy: str) -> list[Diagnostic]:
    out = _duplicates(
        ((r.name, raw.at(("spec", "rules", i, "name"))) for i, r in enumerate(spec.rules)), "rule", policy
    )
    unconditional_deny: str | None = None
    for r in spec.rules:
        if r.action == "deny" and constant_value(r.when.source) is True:
            unconditional_deny = r.name
            break
    for i, r in enumerate(spec.rules):
        path: PathKey = ("spec", "rules", i)
        rule = r.name
        constant = constant_value(r.when.source)
        if constant is False:
            out.append(
                diag(
                    "CG305",
                    f"rule {rule!r} never applies: its condition is always false",
                    r.when.span,
                    policy=policy,
                    rule_name=rule,
                )
            )
        elif unconditional_deny is not None and r.action != "deny":
            out.append(
                diag(
                    "CG305",
                    f"rule {rule!r} never takes effect: rule {unconditional_deny!r} denies every change",
                    raw.at(path),
                    policy=policy,
                    rule_name=rule,
                )
            )
        if r.message is not None and r.message_expression is not None:
            out.append(
                diag(
                    "CG311",
                    f"rule {rule!r} has both message and messageExpression",
                    raw.key_at((*path, "messageExpression")),
                    policy=policy,
                    rule_name=rule,
                )
            )
        if r.action == "require_approval":
            if r.approvers is None or not r.approvers.groups:
                where = raw.key_at((*path, "approvers")) if r.approvers is not None else r.span
                out.append(
                    diag(
                        "CG308",
                        f"rule {rule!r} requires approval but names no approver groups",
                        where,
                        policy=policy,
                        rule_name=rule,
                    )
                )
            if r.min_approvals < 1:
                out.append(
                    diag(
                        "CG309",
                        f"rule {rule!r}: minApprovals is {r.min_approvals}, must be at least 1",
                        raw.at((*path, "minApprovals")),
                        policy=policy,
                        rule_name=rule,
                    )
                )
        else:
            for key in ("approvers", "minApprovals", "expiresAfter"):
                if (*path, key) in raw.index:
                    out.append(
                        diag(
                            "CG313",
                            f"rule {rule!r}: {key} has no effect with action {r.action}",
                            raw.key_at((*path, key)),
                            policy=policy,
                            rule_name=rule,
                        )
                    )
        if r.action == "mutate" and r.patch is None:
            out.append(
                diag(
                    "CG314", f"rule {rule!r} mutates but has no patch", r.span, policy=policy, rule_name=rule
                )
            )
        if r.action != "mutate" and (*path, "patch") in raw.index:
            out.append(
                diag(
                    "CG313",
                    f"rule {rule!r}: patch has no effect with action {r.action}",
                    raw.key_at((*path, "patch")),
                    policy=policy,
                    rule_name=rule,
                )
            )
    return out


__all__ = ["check_document"]
