"""Combining several policies' decisions on one input, as the host's pipeline does.

Request kinds run in pipeline order (IPFilter and pre_auth RequestValidation, then
post_auth RequestValidation, then RateLimit) and stop at the first deny; of several
policies' RateLimit-* headers the tightest (least remaining) is kept. Object decisions:
deny > pending_approval > allow, patches chained in policy order. Used by `celgate test`
and by bundled plugins.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from celgate.policies.runtime.base import Procedure
from celgate.policies.runtime.decision import Decision

_ORDER = {"IPFilter": 0, "RequestValidation": 1, "RateLimit": 2}


def pipeline_order(proc: Procedure) -> int:
    """Sort key: the phase a request policy runs in."""
    if proc.kind == "RequestValidation" and proc.phase != "pre_auth":
        return 1
    return 0 if proc.kind in ("IPFilter", "RequestValidation") else _ORDER.get(proc.kind, 3)


def combine_request(decisions: Sequence[Decision]) -> Decision:
    """The first non-allow decision (headers of all before it merged), else the last allow."""
    if not decisions:
        return Decision(policy="", kind="", decision="allow", outcome="not_applicable")
    headers: dict[str, str] = {}
    for d in decisions:
        merge_headers(headers, d.headers)
        if d.decision != "allow":
            return _with(d, headers=headers)
    return _with(decisions[-1], headers=headers)


RATELIMIT_HEADERS = ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset")


def merge_headers(into: dict[str, str], new: Mapping[str, str]) -> None:
    """Add `new`; of several policies' RateLimit-* headers the one with least remaining wins."""
    incoming = dict(new)
    both = "ratelimit-remaining" in incoming and "ratelimit-remaining" in into
    if both and float(incoming["ratelimit-remaining"]) >= float(into["ratelimit-remaining"]):
        for name in RATELIMIT_HEADERS:
            incoming.pop(name, None)
    into.update(incoming)


def combine_object(decisions: Sequence[Decision], final_value: dict[str, Any] | None) -> Decision:
    if not decisions:
        return Decision(policy="", kind="", decision="allow", outcome="not_applicable")
    for verdict in ("deny", "pending_approval"):
        for d in decisions:
            if d.decision == verdict:
                return _with(d, mutated=final_value if any(x.mutated for x in decisions) else None)
    patched = [d for d in decisions if d.mutated is not None]
    base = patched[-1] if patched else decisions[-1]
    return _with(base, mutated=final_value if patched else None)


def _with(d: Decision, **changes: Any) -> Decision:
    return replace(d, **changes)
