"""Bundle: several policies from plans, run per phase with sync and async counters."""

from __future__ import annotations

import json
from typing import Any

from celgate.policies.runtime import RequestInputs
from celgate.policies.runtime.bundle import Bundle
from celgate.sdk.counters import AsyncMemoryCounters, MemoryCounters

PLANS: list[dict[str, Any]] = [
    {
        "kind": "RateLimit",
        "name": "tokens",
        "spec": {
            "limits": [
                {
                    "name": "tok",
                    "key": "identity.user_id",
                    "tokens": 100,
                    "window_s": 60.0,
                    "reserve": "request.body.max_tokens",
                }
            ]
        },
    },
    {"kind": "IPFilter", "name": "ips", "spec": {"allow": ["10.0.0.0/8"]}},
    {
        "kind": "RequestValidation",
        "name": "val",
        "spec": {
            "rules": [{"name": "small", "expression": "request.body.max_tokens <= 80", "message": "too big"}]
        },
    },
    {
        "kind": "RequestValidation",
        "name": "early",
        "phase": "pre_auth",
        "spec": {"rules": [{"name": "post", "expression": 'request.method == "POST"'}]},
    },
    {
        "kind": "ObjectApproval",
        "name": "oa",
        "objects": ["tool"],
        "spec": {
            "objects": ["tool"],
            "rules": [{"name": "stamp", "when": "true", "action": "mutate", "patch": {"owner": "sec"}}],
        },
    },
]


def inputs(max_tokens: int = 50, ip: str = "10.0.0.1") -> RequestInputs:
    return RequestInputs.from_mapping(
        {"request": {"client_ip": ip, "body": {"max_tokens": max_tokens}}, "identity": {"user_id": "u"}}
    )


def test_plans_are_json_and_phases_are_derived() -> None:
    bundle = Bundle.from_plans(json.loads(json.dumps(PLANS)))
    assert bundle.phases() == {"pre_auth", "post_auth", "response", "object_hooks"}
    assert [p.name for p in bundle.request] == ["ips", "early", "val", "tokens"]


def test_phases_run_separately_and_stop_at_the_first_deny() -> None:
    bundle = Bundle.from_plans(PLANS)
    counters = MemoryCounters()
    pre = bundle.decide_request(inputs(ip="8.8.8.8"), counters, phase="pre_auth")
    assert pre.decision.policy == "ips" and pre.decision.decision == "deny"
    assert [d.policy for d in pre.decisions] == ["ips"]
    post = bundle.decide_request(inputs(max_tokens=90), counters, phase="post_auth")
    assert post.decision.policy == "val" and post.reservations == []


def test_settle_and_release() -> None:
    bundle = Bundle.from_plans(PLANS)
    counters = MemoryCounters()
    first = bundle.decide_request(inputs(max_tokens=50), counters, phase="post_auth")
    assert first.decision.allowed and len(first.reservations) == 1
    bundle.release(first.reservations, counters)  # the upstream failed: all 50 come back
    second = bundle.decide_request(inputs(max_tokens=80), counters, phase="post_auth")
    done = inputs().with_response({"usage": {"total_tokens": 90}})
    assert bundle.settle(second.reservations, done, counters) == []
    third = bundle.decide_request(inputs(max_tokens=20), counters, phase="post_auth")
    assert third.decision.decision == "deny" and third.decision.status == 429


async def test_async_counters_decide_the_same() -> None:
    bundle = Bundle.from_plans(PLANS)
    counters = AsyncMemoryCounters(MemoryCounters(lambda: 0.0))
    first = await bundle.decide_request_async(inputs(max_tokens=60), counters)
    assert first.decision.allowed
    done = inputs().with_response({"usage": {"total_tokens": 70}})
    assert await bundle.settle_async(first.reservations, done, counters) == []
    second = await bundle.decide_request_async(inputs(max_tokens=40), counters)
    assert second.decision.decision == "deny" and second.decision.headers["retry-after"]


def test_object_changes_go_through_object_policies_only() -> None:
    bundle = Bundle.from_plans(PLANS)
    combined, decisions = bundle.decide_object(
        {"type": "tool", "operation": "create", "value": {"name": "t"}}
    )
    assert combined.mutated == {"name": "t", "owner": "sec"}
    assert [d.policy for d in decisions] == ["oa"]


def test_client_ip_variable_uses_the_bundles_trusted_proxies() -> None:
    plans: list[dict[str, Any]] = [
        {"kind": "IPFilter", "name": "ips", "spec": {"trusted_proxies": ["10.0.0.0/8"]}},
        {
            "kind": "RequestValidation",
            "name": "val",
            "spec": {
                "rules": [
                    {"name": "office", "expression": 'cidr("192.168.0.0/16").containsIP(request.client_ip)'}
                ]
            },
        },
    ]
    bundle = Bundle.from_plans(plans)
    raw = {"request": {"remote_addr": "10.1.1.1", "headers": {"X-Forwarded-For": "192.168.4.4"}}}
    assert bundle.decide_request(bundle.inputs(raw), MemoryCounters()).decision.allowed


def test_large_limits_are_plain_integers_in_headers() -> None:
    plans: list[dict[str, Any]] = [
        {
            "kind": "RateLimit",
            "name": "big",
            "spec": {"limits": [{"name": "n", "key": '"k"', "requests": 1_000_000, "window_s": 60.0}]},
        }
    ]
    d = Bundle.from_plans(plans).decide_request(inputs(), MemoryCounters()).decision
    assert d.headers["ratelimit-limit"] == "1000000" and d.headers["ratelimit-remaining"] == "999999"
