"""RateLimit (reserve/settle, headers, modes) and ObjectApproval (deny > approval > mutate)."""

from __future__ import annotations

from typing import Any

import pytest

from celgate.policies.runtime import (
    WARNING_HEADER,
    ObjectApprovalProcedure,
    ObjectInputs,
    RateLimitProcedure,
    RequestInputs,
    build,
    merge_patch,
)
from celgate.sdk.counters import MemoryCounters


class Clock:
    t = 0.0

    def __call__(self) -> float:
        return self.t


def ratelimit(limits: list[dict[str, Any]], **common: Any) -> RateLimitProcedure:
    proc = build(
        {"kind": "RateLimit", "name": "rl", "spec": {"limits": limits, **common.pop("spec", {})}, **common}
    )
    assert isinstance(proc, RateLimitProcedure)
    return proc


REQS = {"name": "app", "key": "identity.app_id", "requests": 2, "window_s": 1.0}
TOKENS = {
    "name": "tok",
    "key": "identity.user_id",
    "tokens": 1000,
    "window_s": 3600.0,
    "reserve": "request.body.max_tokens",
}


def inputs(app: str = "a1", user: str = "u1", max_tokens: int = 100) -> RequestInputs:
    return RequestInputs.from_mapping(
        {"request": {"body": {"max_tokens": max_tokens}}, "identity": {"app_id": app, "user_id": user}}
    )


def test_requests_limit_blocks_with_429_and_headers() -> None:
    clock = Clock()
    counters = MemoryCounters(clock)
    proc = ratelimit([REQS])
    first = proc.decide(inputs(), counters)
    assert first.decision == "allow"
    assert first.headers == {"ratelimit-limit": "2", "ratelimit-remaining": "1", "ratelimit-reset": "1"}
    clock.t = 0.5
    proc.decide(inputs(), counters)
    clock.t = 0.7
    denied = proc.decide(inputs(), counters)
    assert (denied.decision, denied.status) == ("deny", 429)
    assert denied.headers["retry-after"] == "1" and denied.headers["ratelimit-remaining"] == "0"
    assert proc.decide(inputs(app="a2"), counters).decision == "allow"


def test_every_matching_limit_must_have_room() -> None:
    counters = MemoryCounters(Clock())
    proc = ratelimit([REQS, {**TOKENS}])
    assert proc.decide(inputs(max_tokens=900), counters).decision == "allow"
    denied = proc.decide(inputs(max_tokens=200), counters)
    assert denied.decision == "deny" and denied.log[0].rule == "tok"
    # nothing was taken from the requests limit by the denied request
    assert proc.decide(inputs(app="a1", user="u2"), counters).headers["ratelimit-remaining"] == "0"


def test_reservation_is_settled_from_the_response() -> None:
    counters = MemoryCounters(Clock())
    proc = ratelimit([TOKENS])
    d = proc.decide(inputs(max_tokens=500), counters)
    assert d.reservation is not None
    done = inputs(max_tokens=500).with_response({"usage": {"total_tokens": 120}})
    assert proc.settle(d.reservation, done, counters) == []
    # 1000 - 120 = 880 left: a reservation of 880 fits, 881 does not
    assert proc.decide(inputs(max_tokens=881), counters).decision == "deny"
    assert proc.decide(inputs(max_tokens=880), counters).decision == "allow"


def test_token_limit_without_reserve_takes_one_then_settles() -> None:
    counters = MemoryCounters(Clock())
    proc = ratelimit([{**TOKENS, "reserve": None, "tokens": 100}])
    d = proc.decide(inputs(), counters)
    proc.settle(d.reservation, inputs().with_response({"usage": {"total_tokens": 100}}), counters)
    assert proc.decide(inputs(), counters).decision == "deny"


def test_unevaluable_cost_keeps_the_reservation() -> None:
    counters = MemoryCounters(Clock())
    proc = ratelimit([{**TOKENS, "cost": "response.body.tokens"}])
    d = proc.decide(inputs(max_tokens=300), counters)
    errors = proc.settle(d.reservation, inputs().with_response({"body": {}}), counters)
    assert errors and "tok.cost" in errors[0]


def test_audit_mode_counts_but_never_blocks_or_shows_headers() -> None:
    counters = MemoryCounters(Clock())
    proc = ratelimit([{**REQS, "requests": 1}], mode="audit")
    proc.decide(inputs(), counters)
    d = proc.decide(inputs(), counters)
    assert (d.decision, d.outcome, d.headers) == ("allow", "audited", {})
    assert d.log[0].verdict == "deny"


def test_warn_mode_counts_and_adds_the_warning_header() -> None:
    counters = MemoryCounters(Clock())
    proc = ratelimit([{**REQS, "requests": 1}], mode="warn")
    proc.decide(inputs(), counters)
    d = proc.decide(inputs(), counters)
    assert d.decision == "allow" and "rate limit app exceeded" in d.headers[WARNING_HEADER]
    assert "ratelimit-remaining" in d.headers


def test_key_error_fails_closed_and_fail_open_skips() -> None:
    bad = {**REQS, "key": "request.body.user"}
    closed = ratelimit([bad]).decide(inputs(), MemoryCounters())
    assert closed.status == 503
    opened = ratelimit([bad], failure_policy="fail-open").decide(inputs(), MemoryCounters())
    assert (opened.decision, opened.outcome) == ("allow", "skipped")


@pytest.mark.parametrize("algorithm", ["fixed-window", "token-bucket"])
def test_other_algorithms_block_at_the_limit(algorithm: str) -> None:
    counters = MemoryCounters(Clock())
    proc = ratelimit([REQS], spec={"algorithm": algorithm})
    assert [proc.decide(inputs(), counters).decision for _ in range(3)] == ["allow", "allow", "deny"]


# -- ObjectApproval ---------------------------------------------------------------------------

RULES = [
    {
        "name": "https",
        "when": 'object.api_endpoint.startsWith("http://")',
        "action": "deny",
        "message": "https only",
    },
    {
        "name": "review",
        "when": '!(object.vendor in ["openai"])',
        "action": "require_approval",
        "approvers": ["security"],
        "min_approvals": 2,
        "expires_after_s": 3600.0,
    },
    {
        "name": "legal",
        "when": "object.privacy_score < 50",
        "action": "require_approval",
        "approvers": ["legal", "security"],
        "expires_after_s": 60.0,
    },
    {
        "name": "stamp",
        "when": "true",
        "action": "mutate",
        "patch": {"metadata": {"by": "celgate"}, "owner": None},
    },
    {"name": "stamp2", "when": "true", "action": "mutate", "patch": {"metadata": {"by": "second"}}},
]


def approval(rules: list[dict[str, Any]] = RULES, **common: Any) -> ObjectApprovalProcedure:
    proc = build(
        {
            "kind": "ObjectApproval",
            "name": "oa",
            "objects": ["llm"],
            "spec": {"objects": ["llm"], "operations": ["create", "update"], "rules": rules},
            **common,
        }
    )
    assert isinstance(proc, ObjectApprovalProcedure)
    return proc


def obj(operation: str = "create", **value: Any) -> ObjectInputs:
    return ObjectInputs.from_mapping({"type": "llm", "operation": operation, "value": value})


def test_deny_wins_over_approval_and_mutate() -> None:
    d = approval().decide(obj(vendor="acme", api_endpoint="http://x", privacy_score=10))
    assert (d.decision, d.status, d.message) == ("deny", 403, "https only")


def test_approvals_are_combined() -> None:
    d = approval().decide(obj(vendor="acme", api_endpoint="https://x", privacy_score=10))
    assert d.decision == "pending_approval"
    assert d.approvers is not None
    assert d.approvers.groups == ("security", "legal")
    assert (d.approvers.min_approvals, d.approvers.expires_after_s) == (2, 60.0)


def test_patches_apply_in_rule_order() -> None:
    d = approval().decide(obj(vendor="openai", api_endpoint="https://x", privacy_score=90, owner="bob"))
    assert d.decision == "allow"
    assert d.mutated == {
        "vendor": "openai",
        "api_endpoint": "https://x",
        "privacy_score": 90,
        "metadata": {"by": "second"},
    }


def test_uncovered_operation_or_type_is_not_applicable() -> None:
    d = approval().decide(obj("delete", vendor="acme"))
    assert (d.decision, d.outcome) == ("allow", "not_applicable")
    tool = ObjectInputs.from_mapping({"type": "tool", "operation": "create", "value": {}})
    assert approval().decide(tool).outcome == "not_applicable"


def test_previous_is_null_on_create() -> None:
    proc = approval([{"name": "r", "when": "previous == null", "action": "deny"}])
    assert proc.decide(obj(vendor="x")).decision == "deny"
    upd = ObjectInputs.from_mapping(
        {"type": "llm", "operation": "update", "value": {}, "previous": {"vendor": "a"}}
    )
    assert proc.decide(upd).decision == "allow"


def test_when_error_rejects_the_change_under_fail_closed() -> None:
    rules = [{"name": "r", "when": "object.metadata['missing'] == 'x'", "action": "deny"}]
    assert approval(rules).decide(obj()).status == 503
    d = approval(rules, failure_policy="fail-open").decide(obj())
    assert (d.decision, d.outcome) == ("allow", "skipped")


def test_audit_mode_does_not_park_changes() -> None:
    d = approval(mode="audit").decide(obj(vendor="acme", api_endpoint="https://x", privacy_score=90))
    assert (d.decision, d.outcome) == ("allow", "audited")


def test_merge_patch_follows_rfc_7396() -> None:
    assert merge_patch({"a": {"b": 1, "c": 2}, "d": 1}, {"a": {"b": None, "e": 3}, "d": [1]}) == {
        "a": {"c": 2, "e": 3},
        "d": [1],
    }
    assert merge_patch({"a": 1}, "x") == "x"
